//! A fault-injecting HTTP proxy for object-storage tests, in process.
//!
//! Put it in front of the S3 server (point a store's `endpoint` at [`FaultProxy::url`])
//! and it forwards each request, except that a configurable share of them fail the
//! way object stores fail in production:
//! - **unavailable**: answered `503 Service Unavailable` with an S3 error body,
//!   without reaching the server (its request body is read first, as a server would);
//! - **reset**: forwarded, then the connection is reset (TCP RST) halfway through the
//!   response body, so the client sees a truncated answer to a request the server
//!   did carry out;
//! - **stall**: the request is read and never answered, not one byte, until the
//!   client gives up (only a client-side timeout ends it);
//! - **down**: every connection is reset as soon as it is accepted (a store that
//!   stays down).
//!
//! It understands just enough HTTP/1.1 for that: request heads, bodies framed by
//! `Content-Length` or chunked encoding, and the response's `Content-Length`. Each
//! accepted connection carries one request (`Connection: close` both ways), so
//! counting and deciding per request is exact. Shares are drawn from a seeded
//! generator; [`Counts`] says what was injected, so a test can check its faults
//! really happened.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which faults to inject, as shares of requests (0.0 – 1.0, drawn per request).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Answered 503 without being forwarded.
    pub unavailable: f64,
    /// Forwarded; the connection is reset halfway through the response.
    pub reset: f64,
    /// Never answered.
    pub stall: f64,
    /// Every connection reset at once (overrides the shares).
    pub down: bool,
}

impl Faults {
    /// No faults: a transparent proxy.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every connection refused (reset on accept).
    pub fn down() -> Self {
        Self {
            down: true,
            ..Self::default()
        }
    }
}

/// What the proxy saw and did since the last [`FaultProxy::reset_counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests read (including the faulted ones; not the refused connections).
    pub requests: u64,
    /// Requests forwarded to the server and answered in full.
    pub forwarded: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// Responses cut by a reset.
    pub resets: u64,
    /// Requests left unanswered.
    pub stalls: u64,
    /// Connections reset on accept (down).
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    unavailable: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
    refused: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    counters: Counters,
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Forward,
    Unavailable,
    Reset,
    Stall,
}

impl Shared {
    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fate(&self) -> Fate {
        let f = self.faults();
        let draw: f64 = self.rng.lock().unwrap_or_else(|p| p.into_inner()).random();
        if draw < f.unavailable {
            Fate::Unavailable
        } else if draw < f.unavailable + f.reset {
            Fate::Reset
        } else if draw < f.unavailable + f.reset + f.stall {
            Fate::Stall
        } else {
            Fate::Forward
        }
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (an `http://host:port`
    /// URL), with no faults; `seed` makes the draws repeatable.
    pub async fn start(upstream: &str, seed: u64) -> Result<Self> {
        let hostport = upstream
            .strip_prefix("http://")
            .with_context(|| format!("{upstream}: only http:// upstreams"))?
            .trim_end_matches('/');
        let upstream: SocketAddr = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .with_context(|| format!("{hostport} does not resolve"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(Faults::none()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counters: Counters::default(),
        });
        let accept = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let shared = accept.clone();
                tokio::spawn(async move {
                    // Errors are the client's or server's business: the connection ends.
                    let _ = serve(shared, conn).await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`, for a store's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the faults for the requests that follow.
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// What was seen and injected.
    pub fn counts(&self) -> Counts {
        let c = &self.shared.counters;
        Counts {
            requests: c.requests.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// Sets every count back to zero.
    pub fn reset_counts(&self) {
        let c = &self.shared.counters;
        for a in [
            &c.requests,
            &c.forwarded,
            &c.unavailable,
            &c.resets,
            &c.stalls,
            &c.refused,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Ends a connection with a TCP reset instead of an orderly close.
// tokio deprecates SO_LINGER because a non-zero linger blocks the thread on drop; a
// zero linger never blocks: the kernel sends RST and discards the socket at once.
#[allow(deprecated)]
fn reset(conn: TcpStream) {
    let _ = conn.set_linger(Some(Duration::ZERO));
    drop(conn);
}

/// One request head, as read.
struct Head {
    /// The head's bytes with `Connection: close` in place of any connection header.
    bytes: Vec<u8>,
    /// How the body after it is framed.
    body: Framing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// No body (requests) or until the connection closes (responses).
    None,
}

/// Reads a message head (up to the blank line) into `buf`; returns its length, or
/// `None` at a clean end of stream before any byte.
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<usize>> {
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > 64 * 1024 {
            bail!("message head over 64 KiB");
        }
        let n = conn.read(&mut tmp).await?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            bail!("stream ended inside a message head");
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a head, rewriting its connection header to `Connection: close`.
fn parse_head(raw: &[u8]) -> Result<Head> {
    let text = std::str::from_utf8(raw).context("head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut out = format!("{first}\r\n");
    let mut body = Framing::None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name_lc, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name_lc.as_str() {
            "connection" | "keep-alive" | "proxy-connection" => continue,
            "content-length" => body = Framing::Length(value.parse().context("content-length")?),
            "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                body = Framing::Chunked
            }
            _ => {}
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Head {
        bytes: out.into_bytes(),
        body,
    })
}

/// Reads a whole body framed as `framing` from `conn` (`already` holds bytes read
/// past the head) and returns its raw bytes, framing included.
async fn read_body(conn: &mut TcpStream, framing: Framing, already: Vec<u8>) -> Result<Vec<u8>> {
    let mut buf = already;
    let mut tmp = vec![0u8; 64 * 1024];
    match framing {
        Framing::None => Ok(buf),
        Framing::Length(n) => {
            while (buf.len() as u64) < n {
                let got = conn.read(&mut tmp).await?;
                if got == 0 {
                    bail!("body ended early");
                }
                buf.extend_from_slice(&tmp[..got]);
            }
            buf.truncate(n as usize);
            Ok(buf)
        }
        Framing::Chunked => {
            let mut pos = 0;
            loop {
                // One chunk: "<hex size>[;ext]\r\n<data>\r\n"; size 0 ends (trailers, CRLF).
                let line_end = loop {
                    if let Some(i) = find(&buf[pos..], b"\r\n") {
                        break pos + i;
                    }
                    let got = conn.read(&mut tmp).await?;
                    if got == 0 {
                        bail!("chunked body ended early");
                    }
                    buf.extend_from_slice(&tmp[..got]);
                };
                let size_text = std::str::from_utf8(&buf[pos..line_end])?;
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .context("chunk size")?;
                if size == 0 {
                    // Trailers end with an empty line.
                    loop {
                        if let Some(i) = find(&buf[line_end..], b"\r\n\r\n") {
                            buf.truncate(line_end + i + 4);
                            return Ok(buf);
                        }
                        let got = conn.read(&mut tmp).await?;
                        if got == 0 {
                            bail!("chunked body ended early");
                        }
                        buf.extend_from_slice(&tmp[..got]);
                    }
                }
                let next = line_end + 2 + size + 2;
                while buf.len() < next {
                    let got = conn.read(&mut tmp).await?;
                    if got == 0 {
                        bail!("chunked body ended early");
                    }
                    buf.extend_from_slice(&tmp[..got]);
                }
                pos = next;
            }
        }
    }
}

const UNAVAILABLE_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>injected by the fault proxy</Message></Error>";

async fn serve(shared: Arc<Shared>, mut client: TcpStream) -> Result<()> {
    let c = &shared.counters;
    if shared.faults().down {
        c.refused.fetch_add(1, Ordering::Relaxed);
        reset(client);
        return Ok(());
    }
    let mut buf = Vec::new();
    let Some(head_len) = read_head(&mut client, &mut buf).await? else {
        return Ok(());
    };
    let head = parse_head(&buf[..head_len])?;
    let rest = buf.split_off(head_len);
    c.requests.fetch_add(1, Ordering::Relaxed);
    match shared.fate() {
        Fate::Stall => {
            c.stalls.fetch_add(1, Ordering::Relaxed);
            // Take whatever the client sends, answer nothing, until it gives up.
            let mut sink = vec![0u8; 64 * 1024];
            while client.read(&mut sink).await.unwrap_or(0) > 0 {}
            Ok(())
        }
        Fate::Unavailable => {
            read_body(&mut client, head.body, rest).await?;
            c.unavailable.fetch_add(1, Ordering::Relaxed);
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n{UNAVAILABLE_BODY}",
                UNAVAILABLE_BODY.len()
            );
            client.write_all(answer.as_bytes()).await?;
            client.shutdown().await?;
            Ok(())
        }
        fate => {
            let is_head = buf.starts_with(b"HEAD ");
            let body = read_body(&mut client, head.body, rest).await?;
            let mut server = TcpStream::connect(shared.upstream).await?;
            server.write_all(&head.bytes).await?;
            server.write_all(&body).await?;
            let mut resp = Vec::new();
            let resp_head_len = read_head(&mut server, &mut resp)
                .await?
                .context("the server closed without answering")?;
            let resp_head = parse_head(&resp[..resp_head_len])?;
            let status = resp
                .get(9..12)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            // Answers to HEAD, 1xx, 204 and 304 have no body whatever their headers say.
            let framing = if is_head || status < 200 || status == 204 || status == 304 {
                Framing::Length(0)
            } else {
                resp_head.body
            };
            let pending = resp.split_off(resp_head_len);
            if fate == Fate::Reset {
                c.resets.fetch_add(1, Ordering::Relaxed);
                match framing {
                    Framing::Length(n) if n > 0 => {
                        // The head and half the body, then a reset.
                        client.write_all(&resp_head.bytes).await?;
                        let half = (n / 2).max(1) as usize;
                        let mut part =
                            read_body(&mut server, Framing::Length(half as u64), pending)
                                .await
                                .unwrap_or_default();
                        part.truncate(half);
                        client.write_all(&part).await?;
                    }
                    // Without a known body: half the head.
                    _ => {
                        client
                            .write_all(&resp_head.bytes[..resp_head.bytes.len() / 2])
                            .await?
                    }
                }
                client.flush().await?;
                reset(client);
                return Ok(());
            }
            client.write_all(&resp_head.bytes).await?;
            match framing {
                Framing::None => {
                    client.write_all(&pending).await?;
                    tokio::io::copy(&mut server, &mut client).await?;
                }
                framing => {
                    let body = read_body(&mut server, framing, pending).await?;
                    client.write_all(&body).await?;
                }
            }
            client.shutdown().await?;
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_rewritten_and_framed() {
        let h = parse_head(
            b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
        )
        .expect("head");
        let text = String::from_utf8(h.bytes).expect("utf8");
        assert!(
            text.starts_with("PUT /b/k HTTP/1.1\r\nHost: x\r\n"),
            "{text}"
        );
        assert!(!text.contains("keep-alive"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        assert_eq!(h.body, Framing::Length(12));
        let chunked =
            parse_head(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").expect("head");
        assert_eq!(chunked.body, Framing::Chunked);
    }
}
