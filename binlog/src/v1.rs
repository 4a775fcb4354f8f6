//! The storage-v1 binlog envelope: magic, descriptor event, data events.
//!
//! Layout (all little-endian, Go `binary.Write` of packed structs; upstream
//! `internal/storage/{binlog_writer,event_writer,event_data,event_header}.go`):
//!
//! ```text
//! i32 magic = 0x00FFFABC
//! descriptor event: header(17) fix(52) post_header_lengths(8) i32 extra_len, extra JSON
//! data events until EOF: header(17) fix(16: u64 start_ts, u64 end_ts) Parquet payload
//! header = u64 timestamp, i8 type_code, i32 event_length, i32 next_position
//! ```
//!
//! Only headers are read here (33 bytes per event); payloads are decoded by the caller
//! through ranged reads, so a file of any size costs one event's memory.
//!
//! Writers differ in small ways the reader must accept: the 2.2/2.3 codecs set
//! `next_position` to the absolute end of the event, the 2.4+ stream writers leave it at
//! -1 and write start/end timestamps of 1. Anything else is reported as damage.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::datatype::DataType;
use crate::error::{Error, Result};
use crate::source::{ByteSource, read_checked};

/// `0x00FFFABC`, the first four bytes of every v1 binlog (`BC FA FF 00`).
pub const MAGIC: i32 = 0x00FF_FABC;
/// Size of an event header: u64 timestamp, i8 type code, i32 length, i32 next position.
pub const EVENT_HEADER_LEN: u64 = 17;
/// Size of the descriptor event's fixed part.
pub const DESCRIPTOR_FIX_LEN: u64 = 52;
/// Size of a data event's fixed part (start and end timestamps).
pub const DATA_FIX_LEN: u64 = 16;
/// The `post_header_lengths` every Milvus writer emits: fixed-part size per event type.
pub const POST_HEADER_LENGTHS: [u8; 8] = [52, 16, 16, 16, 16, 16, 16, 16];

/// Event type codes (`EventTypeCode` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum EventType {
    /// The descriptor (first event of every file).
    Descriptor = 0,
    /// Insert data (insert logs).
    Insert = 1,
    /// Delete data (delta logs).
    Delete = 2,
    /// DDL logs (unused by segments).
    CreateCollection = 3,
    /// DDL logs (unused by segments).
    DropCollection = 4,
    /// DDL logs (unused by segments).
    CreatePartition = 5,
    /// DDL logs (unused by segments).
    DropPartition = 6,
    /// Index file envelopes.
    IndexFile = 7,
}

impl EventType {
    fn from_code(code: i8) -> Option<EventType> {
        Some(match code {
            0 => EventType::Descriptor,
            1 => EventType::Insert,
            2 => EventType::Delete,
            3 => EventType::CreateCollection,
            4 => EventType::DropCollection,
            5 => EventType::CreatePartition,
            6 => EventType::DropPartition,
            7 => EventType::IndexFile,
            _ => return None,
        })
    }
}

/// An event header as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// Hybrid timestamp (TSO: physical ms << 18 | logical) of when the writer ran.
    pub timestamp: u64,
    /// Event type.
    pub event_type: EventType,
    /// Length of the whole event, header included.
    pub event_length: u32,
    /// Absolute offset of the next event, or -1 (2.4+ stream writers leave it unset).
    pub next_position: i32,
}

/// The descriptor event: ids, time range, payload type and the JSON extras.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// The descriptor's event header (its timestamp is the writer's wall clock as a TSO).
    pub header: EventHeader,
    /// Collection id (-1 when unset).
    pub collection_id: i64,
    /// Partition id (-1 when unset).
    pub partition_id: i64,
    /// Segment id (-1 when unset).
    pub segment_id: i64,
    /// Field id: 0 = row id, 1 = timestamp, 100+ user fields; -1 in delete logs.
    pub field_id: i64,
    /// Smallest row/delete timestamp (hybrid TSO), or 0/1 when the writer did not know.
    pub start_ts: u64,
    /// Largest row/delete timestamp (hybrid TSO), or 0/1.
    pub end_ts: u64,
    /// Type of the payload column (String for JSON delete logs, Int64 for MULTI_FIELD).
    pub payload_type: DataType,
    /// The JSON extras (`original_size`, `nullable`, `version`, ...).
    pub extras: Map<String, Value>,
}

impl Descriptor {
    /// `original_size` extra: uncompressed size the writer estimated.
    pub fn original_size(&self) -> Option<u64> {
        match self.extras.get("original_size")? {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// `nullable` extra (2.5+); absent means not nullable.
    pub fn nullable(&self) -> bool {
        matches!(self.extras.get("nullable"), Some(Value::Bool(true)))
    }

    /// True for delete logs whose payload has separate pk and ts columns.
    pub fn is_multi_field(&self) -> bool {
        matches!(self.extras.get("version"), Some(Value::String(s)) if s == "MULTI_FIELD")
    }
}

/// One data event: where its payload is, and its time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Offset of the event header in the file.
    pub offset: u64,
    /// The header.
    pub header: EventHeader,
    /// Fixed part: start timestamp.
    pub start_ts: u64,
    /// Fixed part: end timestamp.
    pub end_ts: u64,
    /// Offset of the Parquet payload in the file.
    pub payload_offset: u64,
    /// Length of the Parquet payload.
    pub payload_len: u64,
}

/// A v1 binlog opened for reading: the descriptor is parsed, events are walked lazily.
pub struct BinlogFile {
    src: Arc<dyn ByteSource>,
    descriptor: Descriptor,
    next: u64,
    events_seen: u64,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
fn le_i64(b: &[u8], at: usize) -> i64 {
    le_u64(b, at) as i64
}
fn le_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_le_bytes(a)
}

fn parse_header(name: &str, offset: u64, b: &[u8]) -> Result<EventHeader> {
    let timestamp = le_u64(b, 0);
    let code = b[8] as i8;
    let event_type = EventType::from_code(code).ok_or_else(|| {
        Error::corrupt(name, offset + 8, format!("unknown event type code {code}"))
    })?;
    let len = le_i32(b, 9);
    let event_length = u32::try_from(len)
        .map_err(|_| Error::corrupt(name, offset + 9, format!("negative event length {len}")))?;
    Ok(EventHeader {
        timestamp,
        event_type,
        event_length,
        next_position: le_i32(b, 13),
    })
}

impl BinlogFile {
    /// Check the magic number and parse the descriptor event.
    pub async fn open(src: Arc<dyn ByteSource>) -> Result<BinlogFile> {
        let name = src.name().to_owned();
        let fixed = 4 + EVENT_HEADER_LEN + DESCRIPTOR_FIX_LEN + 8 + 4;
        if src.len() < 4 {
            return Err(Error::corrupt(
                &name,
                src.len(),
                "truncated: no room for the magic number",
            ));
        }
        let head = read_checked(src.as_ref(), 0..fixed.min(src.len())).await?;
        let magic = le_i32(&head, 0);
        if magic != MAGIC {
            if &head[..4] == b"PAR1" {
                return Err(Error::corrupt(
                    &name,
                    0,
                    "bare Parquet file (storage v2), not a v1 binlog",
                ));
            }
            return Err(Error::corrupt(
                &name,
                0,
                format!("bad magic number {magic:#x}, expected {MAGIC:#x}"),
            ));
        }
        if (head.len() as u64) < fixed {
            return Err(Error::corrupt(
                &name,
                src.len(),
                "truncated inside the descriptor event",
            ));
        }
        let header = parse_header(&name, 4, &head[4..21])?;
        if header.event_type != EventType::Descriptor {
            return Err(Error::corrupt(
                &name,
                12,
                format!(
                    "first event is {:?}, expected Descriptor",
                    header.event_type
                ),
            ));
        }
        let f = &head[21..];
        let payload_code_at = 4 + EVENT_HEADER_LEN + 48;
        let payload_type = DataType::from_code(le_i32(f, 48), &name, payload_code_at)?;
        let post: Vec<u8> = f[52..60].to_vec();
        if post.as_slice() != POST_HEADER_LENGTHS {
            return Err(Error::corrupt(
                &name,
                4 + EVENT_HEADER_LEN + DESCRIPTOR_FIX_LEN,
                format!("post-header lengths {post:?}, expected {POST_HEADER_LENGTHS:?}"),
            ));
        }
        let extra_len_at = fixed - 4;
        let extra_len = le_i32(f, 60);
        let extra_len = u64::try_from(extra_len).map_err(|_| {
            Error::corrupt(
                &name,
                extra_len_at,
                format!("negative extra length {extra_len}"),
            )
        })?;
        let expected_len = EVENT_HEADER_LEN + DESCRIPTOR_FIX_LEN + 8 + 4 + extra_len;
        if u64::from(header.event_length) != expected_len {
            return Err(Error::corrupt(
                &name,
                13,
                format!(
                    "descriptor event length {} disagrees with its extras ({} bytes)",
                    header.event_length, expected_len
                ),
            ));
        }
        if header.next_position != -1 && header.next_position as i64 != 4 + expected_len as i64 {
            return Err(Error::corrupt(
                &name,
                17,
                format!(
                    "descriptor next position {} should be {}",
                    header.next_position,
                    4 + expected_len
                ),
            ));
        }
        let extra_bytes = read_checked(src.as_ref(), fixed..fixed + extra_len).await?;
        let extras: Map<String, Value> = if extra_len == 0 {
            Map::new()
        } else {
            serde_json::from_slice(&extra_bytes).map_err(|e| {
                Error::corrupt(
                    &name,
                    fixed,
                    format!("descriptor extras are not a JSON object: {e}"),
                )
            })?
        };
        let descriptor = Descriptor {
            header,
            collection_id: le_i64(f, 0),
            partition_id: le_i64(f, 8),
            segment_id: le_i64(f, 16),
            field_id: le_i64(f, 24),
            start_ts: le_u64(f, 32),
            end_ts: le_u64(f, 40),
            payload_type,
            extras,
        };
        Ok(BinlogFile {
            src,
            descriptor,
            next: fixed + extra_len,
            events_seen: 0,
        })
    }

    /// The parsed descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The source the file is read from.
    pub fn source(&self) -> &Arc<dyn ByteSource> {
        &self.src
    }

    /// Read the next data event's header (33 bytes), or `None` at the end of the file.
    ///
    /// A file that ends right after its descriptor is an error: every Milvus writer emits
    /// at least one data event, so it can only be a truncated file.
    pub async fn next_event(&mut self) -> Result<Option<Event>> {
        let name = self.src.name();
        let len = self.src.len();
        let at = self.next;
        if at == len {
            if self.events_seen == 0 {
                return Err(Error::corrupt(
                    name,
                    at,
                    "truncated: the file ends after its descriptor, with no data event",
                ));
            }
            return Ok(None);
        }
        let head_len = EVENT_HEADER_LEN + DATA_FIX_LEN;
        if at + head_len > len {
            return Err(Error::corrupt(
                name,
                len,
                format!("truncated event header at offset {at}"),
            ));
        }
        let b = read_checked(self.src.as_ref(), at..at + head_len).await?;
        let header = parse_header(name, at, &b[..17])?;
        if matches!(header.event_type, EventType::Descriptor) {
            return Err(Error::corrupt(name, at + 8, "a second descriptor event"));
        }
        let event_len = u64::from(header.event_length);
        if event_len < head_len {
            return Err(Error::corrupt(
                name,
                at + 9,
                format!("event length {event_len} is shorter than its header"),
            ));
        }
        let end = at + event_len;
        if end > len {
            return Err(Error::corrupt(
                name,
                len,
                format!("truncated: event at {at} claims {event_len} bytes, file ends at {len}"),
            ));
        }
        if header.next_position != -1 && header.next_position as i64 != end as i64 {
            return Err(Error::corrupt(
                name,
                at + 13,
                format!(
                    "next position {} should be {end} (event at {at}, length {event_len})",
                    header.next_position
                ),
            ));
        }
        self.next = end;
        self.events_seen += 1;
        Ok(Some(Event {
            offset: at,
            header,
            start_ts: le_u64(&b, 17),
            end_ts: le_u64(&b, 25),
            payload_offset: at + head_len,
            payload_len: event_len - head_len,
        }))
    }

    /// Walk all remaining event headers.
    pub async fn events(&mut self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        while let Some(e) = self.next_event().await? {
            out.push(e);
        }
        Ok(out)
    }
}

/// Is this the start of a v1 binlog (as opposed to bare Parquet)?
pub fn has_v1_magic(first4: &[u8]) -> bool {
    first4.len() >= 4 && le_i32(first4, 0) == MAGIC
}
