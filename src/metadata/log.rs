//! The metadata record log and its checkpoint: file format, encoding, and the start-up reads.
//!
//! Both files live in `<data_dir>/meta/` and are made of the same frames:
//!
//! ```text
//! frame   := length:u32 LE | crc32c(payload):u32 LE | payload[length]
//! log     := frame*                      metadata.log: one frame per mutation
//! payload := JSON {"offset": u64, "records": [MetadataRecord, ...]}
//! ckpt    := frame                       metadata.checkpoint: the snapshot as records
//! payload := JSON {"version": 1, "cluster_id": str, "end_offset": u64, "records": [...]}
//! ```
//!
//! Every record has an offset, counted from the first record the cluster ever had; a frame
//! carries the offset of its first record, and the next frame starts where it ends. A mutation
//! that makes several records (a topic and its partitions) is one frame, so a crash keeps all of
//! it or none of it. A checkpoint holds every record below `end_offset`, applied: replay starts
//! there and skips frames it already covers, so a crash between writing a checkpoint and
//! emptying the log does no harm.
//!
//! The payload is JSON (serde), chosen for readability with `jq`; the frame gives the integrity.
//! At start-up a frame that is cut short or fails its CRC ends the log: it and everything after
//! it are truncated away, with a warning, and never applied. Those bytes were never acknowledged,
//! since an append is answered only after its fdatasync.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::image::{apply_in_place, to_records};
use super::records::MetadataRecord;
use super::{ClusterSnapshot, MetadataError};

/// The record log's file name in the metadata directory.
pub const LOG_FILE: &str = "metadata.log";
/// The checkpoint's file name in the metadata directory.
pub const CHECKPOINT_FILE: &str = "metadata.checkpoint";
/// A checkpoint is written here first, synced, then renamed over [`CHECKPOINT_FILE`].
pub const CHECKPOINT_TMP_FILE: &str = "metadata.checkpoint.tmp";
/// Bytes before a frame's payload: length and CRC.
pub const FRAME_HEADER: usize = 8;
/// A frame longer than this is taken for garbage (a topic with 100k partitions fits).
pub const MAX_FRAME: usize = 64 << 20;
const CHECKPOINT_VERSION: u32 = 1;

/// One log frame's payload: consecutive records from `offset` on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogFrame {
    /// Offset of the first record.
    pub offset: u64,
    /// The records, applied in order and all together.
    pub records: Vec<MetadataRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointPayload {
    version: u32,
    cluster_id: String,
    end_offset: u64,
    records: Vec<MetadataRecord>,
}

/// Wraps `payload` in a frame header.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The log frame holding `records` from `offset` on.
pub fn encode_records(offset: u64, records: &[MetadataRecord]) -> Result<Vec<u8>, MetadataError> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        offset: u64,
        records: &'a [MetadataRecord],
    }
    let payload = serde_json::to_vec(&Borrowed { offset, records }).map_err(std::io::Error::other)?;
    Ok(frame(&payload))
}

/// The checkpoint file's bytes for `snapshot`, which holds every record below `end_offset`.
pub fn encode_checkpoint(snapshot: &ClusterSnapshot, end_offset: u64) -> Result<Vec<u8>, MetadataError> {
    let payload = CheckpointPayload {
        version: CHECKPOINT_VERSION,
        cluster_id: snapshot.cluster_id.clone(),
        end_offset,
        records: to_records(snapshot),
    };
    Ok(frame(&serde_json::to_vec(&payload).map_err(std::io::Error::other)?))
}

/// What [`scan`] found in a file's bytes.
#[derive(Debug)]
pub struct Scan<'a> {
    /// Whole frames with a good CRC: (byte position, payload).
    pub frames: Vec<(u64, &'a [u8])>,
    /// Where the good frames end.
    pub valid_len: u64,
    /// Why the scan stopped before the end of the bytes (a torn or corrupt frame).
    pub stopped: Option<String>,
}

/// Splits `bytes` into frames, up to the first frame that is cut short or fails its CRC.
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    let stopped = loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < FRAME_HEADER {
            break Some(format!("{} header bytes of {FRAME_HEADER}", rest.len()));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_FRAME {
            break Some(format!("frame length {len} over the {MAX_FRAME} limit"));
        }
        if rest.len() - FRAME_HEADER < len {
            break Some(format!("frame of {len} bytes cut at {}", rest.len() - FRAME_HEADER));
        }
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
        if crc32c::crc32c(payload) != crc {
            break Some("CRC mismatch".to_string());
        }
        frames.push((pos as u64, payload));
        pos += FRAME_HEADER + len;
    };
    Scan { frames, valid_len: pos as u64, stopped }
}

/// A whole file's bytes, or `None` when there is no such file (start-up, std I/O).
pub(super) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, MetadataError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads the checkpoint: the snapshot and the offset after its last record. `None` when there
/// is no checkpoint file. A checkpoint is renamed into place whole, so any damage is an error.
pub fn read_checkpoint(dir: &Path) -> Result<Option<(ClusterSnapshot, u64)>, MetadataError> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some(bytes) = read_if_present(&path)? else { return Ok(None) };
    decode_checkpoint(&bytes, &path).map(Some)
}

/// Decodes [`encode_checkpoint`]'s bytes (a checkpoint file, or a Raft snapshot that came over
/// the network): the snapshot and its `end_offset`. `path` names the source in errors.
pub fn decode_checkpoint(bytes: &[u8], path: &Path) -> Result<(ClusterSnapshot, u64), MetadataError> {
    let path = path.to_path_buf();
    let corrupt = |reason: String| MetadataError::Corrupt { path: path.clone(), reason };
    let found = scan(bytes);
    let (Some(&(_, payload)), None, 1) = (found.frames.first(), &found.stopped, found.frames.len()) else {
        return Err(corrupt(format!("expected one whole frame ({})", found.stopped.as_deref().unwrap_or("extra bytes"))));
    };
    let ckpt: CheckpointPayload = serde_json::from_slice(payload).map_err(|e| corrupt(e.to_string()))?;
    if ckpt.version != CHECKPOINT_VERSION {
        return Err(corrupt(format!("checkpoint version {} is not {CHECKPOINT_VERSION}", ckpt.version)));
    }
    let mut snapshot = ClusterSnapshot::empty(ckpt.cluster_id);
    for record in &ckpt.records {
        apply_in_place(&mut snapshot, record).map_err(|e| corrupt(e.to_string()))?;
    }
    Ok((snapshot, ckpt.end_offset))
}

/// Writes a checkpoint with std I/O (start-up only): temp file, fdatasync, rename, directory sync.
pub fn write_checkpoint_sync(dir: &Path, snapshot: &ClusterSnapshot, end_offset: u64) -> Result<(), MetadataError> {
    let bytes = encode_checkpoint(snapshot, end_offset)?;
    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The log after a replay: the state it left and where the next frame goes.
#[derive(Debug)]
pub struct Replayed {
    /// Offset of the next record.
    pub next_offset: u64,
    /// Bytes of whole, applied-or-covered frames: the next frame is written here.
    pub log_len: u64,
    /// Frames applied (not covered by the checkpoint).
    pub frames_applied: u64,
}

/// Replays the log in `dir` onto `snapshot` (which holds every record below `from_offset`).
/// A torn or corrupt tail is truncated away (warning logged) and never applied.
pub fn replay(dir: &Path, snapshot: &mut ClusterSnapshot, from_offset: u64) -> Result<Replayed, MetadataError> {
    let path = dir.join(LOG_FILE);
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let found = scan(&bytes);
    let corrupt = |reason: String| MetadataError::Corrupt { path: path.clone(), reason };
    let mut next_offset = from_offset;
    let mut frames_applied = 0;
    let mut cut: Option<(u64, String)> = found.stopped.map(|reason| (found.valid_len, reason));
    for &(pos, payload) in &found.frames {
        let frame: LogFrame = serde_json::from_slice(payload).map_err(|e| corrupt(format!("frame at byte {pos}: {e}")))?;
        let end = frame.offset + frame.records.len() as u64;
        if end <= from_offset {
            continue; // already in the checkpoint
        }
        if frame.offset != next_offset {
            // A gap or overlap: the frame does not follow what came before, so neither does the rest.
            cut = Some((pos, format!("frame offset {} where {next_offset} was expected", frame.offset)));
            break;
        }
        for record in &frame.records {
            apply_in_place(snapshot, record).map_err(|e| corrupt(format!("frame at byte {pos} (offset {}): {e}", frame.offset)))?;
        }
        next_offset = end;
        frames_applied += 1;
    }
    let log_len = match cut {
        Some((at, reason)) => {
            tracing::warn!(path = %path.display(), at_byte = at, dropped_bytes = bytes.len() as u64 - at, reason = %reason,
                "metadata log tail truncated");
            file.set_len(at)?;
            file.sync_all()?;
            at
        }
        None => found.valid_len,
    };
    Ok(Replayed { next_offset, log_len, frames_applied })
}

/// The metadata directory under a data directory.
pub fn meta_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("meta")
}
