//! The proxy's REST API, for the one call gRPC does not have: `POST
//! /v2/vectordb/segments/describe` (Milvus 2.5.8+, [`Features::segment_describe_rest`]).
//!
//! It answers from Milvus's own metadata which log files each segment owns, so a
//! backup can copy exactly those instead of whatever a listing of the segment's
//! folders finds (a retried write may leave orphans there, milvus#40341). It is an
//! improvement, never a requirement: any failure here (REST disabled, a proxy that
//! predates the route, a bad answer) is returned as a [`DescribeError`] and the backup
//! lists storage instead, saying so in a warning.
//!
//! Facts (`internal/distributed/proxy/httpserver`, `request_v2.go` `GetSegmentsInfoReq`
//! and `handler_v2.go` `getSegmentsInfo`): the body is `{"dbName", "collectionID",
//! "segmentIDs"}`; the answer is `{"code": 0, "data": {"segmentInfos": [{"segmentID",
//! "partitionID", "numRows", "level", "insertLogs": [{"fieldID", "logIDs"}],
//! "deltaLogs": [...], "statsLogs": [...]}]}}`, errors as a non-zero `code` with a
//! `message`. The REST API is served on the gRPC port by default.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::features::Features;
use crate::config::ClusterConfig;

/// Segments asked for in one call (the call takes a list; milvus-backup asks one at a
/// time, which is slow on big collections).
const BATCH: usize = 100;

/// Why a description could not be used; the backup then lists storage.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DescribeError {
    /// No answer (connection refused, timeout, TLS this build does not speak).
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP error status (404: the proxy has no such route, or REST is off).
    #[error("{url}: HTTP {status}")]
    Http { url: String, status: u16 },
    /// Milvus answered with an error code.
    #[error("{url}: Milvus code {code}: {message}")]
    Milvus {
        url: String,
        code: i64,
        message: String,
    },
    /// An answer this client cannot read, or one that leaves out a segment asked for.
    #[error("{url}: {detail}")]
    Malformed { url: String, detail: String },
}

/// Which files of one kind a segment owns: field (or column group) → log ids.
pub(crate) type Logs = BTreeMap<i64, BTreeSet<i64>>;

/// The files Milvus's metadata says one segment owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DescribedSegment {
    /// Segment id.
    pub(crate) id: i64,
    /// Partition id (−1 for an L0 segment of every partition).
    pub(crate) partition_id: i64,
    /// Rows Milvus counts in it.
    pub(crate) num_rows: i64,
    /// `insert_log/<c>/<p>/<s>/<field>/<log>`.
    pub(crate) insert: Logs,
    /// `delta_log/<c>/<p>/<s>/<log>` (Milvus files them under one field id, ignored).
    pub(crate) delta: BTreeSet<i64>,
    /// `stats_log/<c>/<p>/<s>/<field>/<log>`.
    pub(crate) stats: Logs,
}

impl DescribedSegment {
    /// Whether the segment owns the file of `kind` (`insert_log`, `delta_log`,
    /// `stats_log`) with this field and log id.
    pub(crate) fn owns(&self, kind: &str, field_id: i64, log_id: i64) -> bool {
        match kind {
            "insert_log" => self
                .insert
                .get(&field_id)
                .is_some_and(|l| l.contains(&log_id)),
            "delta_log" => self.delta.contains(&log_id),
            "stats_log" => self
                .stats
                .get(&field_id)
                .is_some_and(|l| l.contains(&log_id)),
            _ => false,
        }
    }

    /// The keys it owns that are not in `present` (keys relative to the storage root):
    /// Milvus names a file that storage does not hold.
    pub(crate) fn missing(&self, collection: i64, present: &BTreeSet<&str>) -> Vec<String> {
        self.keys(collection)
            .into_iter()
            .filter(|k| !present.contains(k.as_str()))
            .collect()
    }

    /// Every file key it owns, relative to the storage root, for a segment of
    /// `collection` in its partition.
    pub(crate) fn keys(&self, collection: i64) -> Vec<String> {
        let base = format!("{collection}/{}/{}", self.partition_id, self.id);
        let per_field = |kind: &str, logs: &Logs| -> Vec<String> {
            logs.iter()
                .flat_map(|(f, ids)| ids.iter().map(move |l| (*f, *l)))
                .map(|(f, l)| format!("{kind}/{base}/{f}/{l}"))
                .collect()
        };
        let mut out = per_field("insert_log", &self.insert);
        out.extend(self.delta.iter().map(|l| format!("delta_log/{base}/{l}")));
        out.extend(per_field("stats_log", &self.stats));
        out
    }
}

/// A client of one cluster's REST API.
#[derive(Clone, Debug)]
pub(crate) struct RestClient {
    /// `http://host:port`, no trailing slash.
    base: String,
    /// `Bearer <user:password | token>`; never logged or shown.
    auth: Option<String>,
    http: reqwest::Client,
}

impl RestClient {
    /// The REST client of a cluster whose server is `features`, or `None` when the
    /// version has no `segments/describe`. The address is the cluster's `rest` key,
    /// else its gRPC `address` (Milvus serves REST on the same port by default).
    pub(crate) fn for_cluster(config: &ClusterConfig, features: Features) -> Option<Self> {
        if !features.segment_describe_rest() {
            return None;
        }
        let base = config
            .rest
            .as_deref()
            .unwrap_or(&config.address)
            .trim_end_matches('/')
            .to_owned();
        let auth = match (&config.token, &config.username) {
            (Some(t), _) => Some(format!("Bearer {}", t.expose())),
            (None, Some(u)) => Some(format!(
                "Bearer {u}:{}",
                config.password.as_ref().map(|p| p.expose()).unwrap_or("")
            )),
            (None, None) => None,
        };
        // Building a client without TLS or proxies cannot fail in practice; if it
        // does, there is no description and the backup lists storage.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .ok()?;
        Some(Self { base, auth, http })
    }

    /// The URL the client posts to (for messages).
    pub(crate) fn url(&self) -> String {
        format!("{}/v2/vectordb/segments/describe", self.base)
    }

    /// Describes `segments` of collection `collection_id` in database `db`, in
    /// batches; every segment asked for must be in the answer.
    pub(crate) async fn describe_segments(
        &self,
        db: &str,
        collection_id: i64,
        segments: &[i64],
    ) -> Result<BTreeMap<i64, DescribedSegment>, DescribeError> {
        let url = self.url();
        let mut out = BTreeMap::new();
        for batch in segments.chunks(BATCH) {
            let body = json!({
                "dbName": db,
                "collectionID": collection_id,
                "segmentIDs": batch,
            });
            let mut req = self.http.post(&url).json(&body);
            if let Some(a) = &self.auth {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            let transport = |source| DescribeError::Transport {
                url: url.clone(),
                source,
            };
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(DescribeError::Http {
                    url: url.clone(),
                    status: status.as_u16(),
                });
            }
            let answer: Value = resp.json().await.map_err(transport)?;
            for seg in parse(&url, &answer)? {
                out.insert(seg.id, seg);
            }
            if let Some(missing) = batch.iter().find(|id| !out.contains_key(id)) {
                return Err(DescribeError::Malformed {
                    url: url.clone(),
                    detail: format!("segment {missing} was asked for and is not in the answer"),
                });
            }
        }
        Ok(out)
    }
}

/// The segment descriptions of one backup: asks where the version has the route and
/// stops asking after the endpoint itself failed (so one unreachable proxy gives one
/// warning, not one per collection).
pub(crate) struct Describer {
    client: Option<RestClient>,
}

impl Describer {
    /// For a cluster whose server is `features`.
    pub(crate) fn new(config: &ClusterConfig, features: Features) -> Self {
        Self {
            client: RestClient::for_cluster(config, features),
        }
    }

    /// The files each of `segments` owns, `Ok(None)` where descriptions are not
    /// available, or `Err` with a sentence for the job's warnings (the caller then
    /// lists storage).
    pub(crate) async fn describe(
        &mut self,
        db: &str,
        collection_id: i64,
        segments: &[i64],
    ) -> Result<Option<BTreeMap<i64, DescribedSegment>>, String> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        if segments.is_empty() {
            return Ok(Some(BTreeMap::new()));
        }
        match client.describe_segments(db, collection_id, segments).await {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                let endpoint = matches!(
                    e,
                    DescribeError::Transport { .. } | DescribeError::Http { .. }
                );
                let mut sentence = format!(
                    "segments/describe failed ({e}): segment files were listed from storage instead"
                );
                if endpoint {
                    self.client = None;
                    sentence.push_str(
                        " for this and every later collection of the backup (is the REST API enabled, or the cluster's `rest` address right?)",
                    );
                }
                Err(sentence)
            }
        }
    }
}

/// An int64 the proxy may write as a number or (JSON renderers that keep int64
/// exact) as a string.
fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// One answer of `segments/describe`.
fn parse(url: &str, answer: &Value) -> Result<Vec<DescribedSegment>, DescribeError> {
    let bad = |detail: String| DescribeError::Malformed {
        url: url.to_owned(),
        detail,
    };
    let code = answer.get("code").and_then(int).unwrap_or(0);
    if code != 0 {
        return Err(DescribeError::Milvus {
            url: url.to_owned(),
            code,
            message: answer
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    let infos = answer
        .pointer("/data/segmentInfos")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no data.segmentInfos in the answer".into()))?;
    let logs = |info: &Value, key: &str| -> Result<Logs, DescribeError> {
        let mut out = Logs::new();
        for entry in info
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = entry
                .get("fieldID")
                .and_then(int)
                .ok_or_else(|| bad(format!("{key} entry without fieldID")))?;
            let ids = entry
                .get("logIDs")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("{key} entry without logIDs")))?;
            let set = out.entry(field).or_default();
            for id in ids {
                set.insert(int(id).ok_or_else(|| bad(format!("{key}: log id {id}")))?);
            }
        }
        Ok(out)
    };
    infos
        .iter()
        .map(|info| {
            let field = |k: &str| {
                info.get(k)
                    .and_then(int)
                    .ok_or_else(|| bad(format!("segment info without {k}")))
            };
            Ok(DescribedSegment {
                id: field("segmentID")?,
                partition_id: field("partitionID")?,
                num_rows: info.get("numRows").and_then(int).unwrap_or(0),
                insert: logs(info, "insertLogs")?,
                delta: logs(info, "deltaLogs")?.into_values().flatten().collect(),
                stats: logs(info, "statsLogs")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_with_numbers_or_strings_and_errors_kept() {
        let answer = json!({"code": 0, "data": {"segmentInfos": [{
            "segmentID": 7, "collectionID": 1, "partitionID": "2", "numRows": 10,
            "state": 3, "level": 2, "isSorted": true,
            "insertLogs": [{"fieldID": 0, "logIDs": [11]}, {"fieldID": 100, "logIDs": ["12", 13]}],
            "deltaLogs": [{"fieldID": 0, "logIDs": [14]}],
            "statsLogs": []
        }]}});
        let segs = parse("u", &answer).expect("parsed");
        assert_eq!(segs.len(), 1);
        let s = &segs[0];
        assert_eq!((s.id, s.partition_id, s.num_rows), (7, 2, 10));
        assert!(s.owns("insert_log", 100, 13));
        assert!(!s.owns("insert_log", 101, 13));
        assert!(s.owns("delta_log", 0, 14));
        assert!(!s.owns("stats_log", 100, 12));
        assert_eq!(
            s.keys(1),
            vec![
                "insert_log/1/2/7/0/11",
                "insert_log/1/2/7/100/12",
                "insert_log/1/2/7/100/13",
                "delta_log/1/2/7/14",
            ]
        );
        let err = parse(
            "u",
            &json!({"code": 100, "message": "collection not found"}),
        )
        .expect_err("an error code");
        assert!(matches!(err, DescribeError::Milvus { code: 100, .. }));
        assert!(parse("u", &json!({"code": 0, "data": {}})).is_err());
    }
}
