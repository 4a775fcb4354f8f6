//! The fake's two HTTP ports, hand-written HTTP/1.1 (one request per connection):
//! - management (9091): GC pause and resume per version (`MILVUS-24-26.md` e.2);
//! - proxy REST: `POST /v2/vectordb/segments/describe` from 2.5.8 (e.1; request and
//!   answer keys as `request_v2.go` `GetSegmentsInfoReq` and `handler_v2.go`
//!   `getSegmentsInfo` spell them), naming only the files the fake's own metadata
//!   holds for a segment, so a file a test drops beside them stays an orphan.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::behaviour::GcPauseMode;
use super::model::{SegLevel, SegState};
use super::{FakeMilvus, GcPause, HttpExchange, HttpPort};

/// Serves one port; returns `http://addr`.
pub(super) async fn serve(fake: FakeMilvus, port: HttpPort) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let fake = fake.clone();
            tokio::spawn(async move {
                let _ = handle(fake, port, sock).await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn handle(fake: FakeMilvus, port: HttpPort, mut sock: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body =
        String::from_utf8_lossy(&buf[head_end..(head_end + length).min(buf.len())]).to_string();
    let (status, answer) = match port {
        HttpPort::Management => fake.management(&target),
        HttpPort::Rest => fake.rest(&method, &target, &body),
    };
    {
        let mut m = fake.lock();
        if port == HttpPort::Management {
            m.rec.http.push(target.clone());
        }
        m.rec.exchanges.push(HttpExchange {
            port,
            method,
            target,
            request_body: body,
            status,
            body: answer.clone(),
        });
    }
    let (reason, kind) = match status {
        200 => ("OK", "application/json; charset=utf-8"),
        404 => ("Not Found", "text/plain"),
        _ => ("Internal Server Error", "application/json; charset=utf-8"),
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path and query parameters of a request target.
fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path.to_owned(), params)
}

/// A member of a JSON request object the way Go's `encoding/json` (gin's binding)
/// finds it: the exact key first, else one equal but for case (`collectionId` reaches
/// `collectionID`).
fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn msg(text: impl Into<String>) -> String {
    json!({ "msg": text.into() }).to_string()
}

impl FakeMilvus {
    /// The management port: `(status, body)`.
    fn management(&self, target: &str) -> (u16, String) {
        let (path, params) = split_target(target);
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mode = self.behaviour.gc_pause;
        let not_found = (404, "404 page not found".to_owned());
        if mode == GcPauseMode::None {
            return not_found;
        }
        match path.as_str() {
            "/management/datacoord/garbage_collection/pause" => {
                let raw = param("pause_seconds").unwrap_or_default();
                let secs = match raw.parse::<i64>() {
                    Ok(s) if s > 0 => s as u64,
                    _ => {
                        return (
                            500,
                            msg(format!(
                                "failed to pause garbage collection, invalid pause seconds({raw})"
                            )),
                        );
                    }
                };
                let mut m = self.lock();
                match mode {
                    GcPauseMode::Ticketed => {
                        let raw_id = param("collection_id").unwrap_or_default();
                        let id = if raw_id.is_empty() {
                            0
                        } else {
                            match raw_id.parse::<i64>() {
                                Ok(v) => v.max(0),
                                Err(_) => {
                                    return (
                                        500,
                                        msg(format!(
                                            "failed to pause garbage collection, strconv.ParseInt: parsing \"{raw_id}\": invalid syntax"
                                        )),
                                    );
                                }
                            }
                        };
                        m.pause_seq += 1;
                        let ticket = format!("{id}-{}-{:08x}", m.pause_seq, rand::random::<u32>());
                        m.pause(GcPause {
                            ticket: Some(ticket.clone()),
                            collection_id: id,
                            pause_seconds: secs,
                        });
                        (200, json!({ "msg": "OK", "ticket": ticket }).to_string())
                    }
                    _ => {
                        // One global pause; a new call never shortens it.
                        let longest = m
                            .active_pauses()
                            .iter()
                            .map(|p| p.pause_seconds)
                            .max()
                            .unwrap_or(0);
                        m.pauses.clear();
                        m.pause(GcPause {
                            ticket: None,
                            collection_id: 0,
                            pause_seconds: secs.max(longest),
                        });
                        (200, msg("OK"))
                    }
                }
            }
            "/management/datacoord/garbage_collection/resume" => {
                let mut m = self.lock();
                match mode {
                    GcPauseMode::Ticketed => {
                        let ticket = param("ticket").unwrap_or_default();
                        if ticket.is_empty() {
                            return (
                                500,
                                msg(
                                    "failed to resume garbage collection, strconv.ParseInt: parsing \"\": invalid syntax",
                                ),
                            );
                        }
                        // An unknown ticket is no error [NC].
                        m.pauses
                            .retain(|p| p.pause.ticket.as_deref() != Some(ticket.as_str()));
                        (200, msg("OK"))
                    }
                    _ => {
                        m.pauses.clear();
                        (200, msg("OK"))
                    }
                }
            }
            _ => not_found,
        }
    }

    /// The proxy REST port: `(status, body)`; errors are HTTP 200 with a non-zero `code`.
    fn rest(&self, method: &str, target: &str, body: &str) -> (u16, String) {
        let (path, _) = split_target(target);
        let b = &self.behaviour;
        if path != "/v2/vectordb/segments/describe" || !b.segments_describe || method != "POST" {
            return (404, "404 page not found".to_owned());
        }
        let req: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    200,
                    json!({"code": 1801, "message": format!("can only accept json format request, error: {e}")})
                        .to_string(),
                );
            }
        };
        let db = field(&req, "dbName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        // `GetSegmentsInfoReq{dbName, collectionID, segmentIDs}`, no field required: a
        // missing id is 0, which names no collection.
        let cid = field(&req, "collectionID")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let ids: Vec<i64> = field(&req, "segmentIDs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let m = self.lock();
        let Some(c) = m.collections.iter().find(|c| c.id == cid && c.db == db) else {
            return (
                200,
                json!({"code": 100, "message": format!("collection not found[collection={cid}]")})
                    .to_string(),
            );
        };
        let mut infos = Vec::new();
        for id in ids {
            let Some(s) = c.segments.iter().find(|s| s.id == id) else {
                return (
                    200,
                    json!({"code": 600, "message": format!("segment not found[segment={id}]")})
                        .to_string(),
                );
            };
            let files = s.files.clone().unwrap_or_default();
            infos.push(json!({
                "segmentID": s.id,
                "collectionID": c.id,
                "partitionID": s.partition_id,
                "vChannel": format!("by-dev-rootcoord-dml_0_{}v0", c.id),
                "numRows": s.num_rows(),
                "state": match s.state { SegState::Growing => 2, SegState::Flushed => 4 },
                "level": match s.level { SegLevel::L1 => 2, SegLevel::L0 => 1 },
                "isSorted": s.state == SegState::Flushed,
                "insertLogs": files.insert.iter().map(|(f, logs)| json!({"fieldID": f, "logIDs": logs})).collect::<Vec<_>>(),
                "deltaLogs": if files.delta.is_empty() { json!([]) } else { json!([{"fieldID": 0, "logIDs": files.delta}]) },
                "statsLogs": [],
            }));
        }
        (
            200,
            json!({"code": 0, "data": {"segmentInfos": infos}}).to_string(),
        )
    }
}
