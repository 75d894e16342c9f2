//! Zero-copy reads of record batches from segment files, on whichever shard holds the client
//! connection.
//!
//! The owner shard of a partition resolves a fetch to a [`DiskRange`]: which segment file, from
//! which position, up to the bytes written at the high watermark. Everything in it is `Send`, so
//! it crosses the mesh. The connection's shard then reads the range with its own direct-I/O
//! handle ([`SegmentFiles`]) and writes glommio's `ReadResult` views straight to the socket:
//! record bytes go disk → DMA buffer → kernel socket buffer, with no copy in user space and no
//! second mesh hop to carry them back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::{DmaFile, ReadResult};

use super::StorageError;
use super::batch::{BatchHeader, HEADER_LEN};

/// Bytes read per disk read, at least: small fetches still read a useful amount.
const MIN_READ: usize = 64 * 1024;

/// A range of a segment file that holds the batches a fetch wants.
#[derive(Debug, Clone)]
pub struct DiskRange {
    /// Unique id of the segment file (process-wide), the key of [`SegmentFiles`].
    pub segment_id: u64,
    /// The segment's `.log` file.
    pub path: PathBuf,
    /// Where to start scanning: a batch boundary at or before the wanted offset.
    pub position: u64,
    /// End of the bytes written below the high watermark when the range was resolved.
    pub end: u64,
    /// First offset wanted: batches that end before it are skipped.
    pub offset: i64,
    /// Byte limit (at least one whole batch is returned, as KIP-74 asks).
    pub max_bytes: usize,
}

impl DiskRange {
    /// Bytes the range can return at most: what long-polling compares with `min_bytes`.
    pub fn available(&self) -> usize {
        ((self.end - self.position) as usize).min(self.max_bytes)
    }
}

/// What a fetch found in one partition, before the bytes are read.
#[derive(Debug, Clone)]
pub enum Located {
    /// Whole batches from the shard's batch cache (possibly none).
    Cached(Vec<Bytes>),
    /// Batches to read from disk.
    OnDisk(DiskRange),
}

impl Default for Located {
    fn default() -> Self {
        Located::Cached(Vec::new())
    }
}

impl Located {
    /// Bytes this will return (an upper bound for [`Located::OnDisk`]).
    pub fn available(&self) -> usize {
        match self {
            Located::Cached(batches) => batches.iter().map(|b| b.len()).sum(),
            Located::OnDisk(range) => range.available(),
        }
    }
}

/// Reads whole batches from `range` in `file`: skips batches that end before `range.offset`,
/// stops at `range.end` or `range.max_bytes`, and always returns the first wanted batch whole.
/// Each returned view is one run of contiguous batches inside a read buffer.
pub async fn read_range(file: &DmaFile, range: &DiskRange) -> Result<Vec<ReadResult>, StorageError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    let mut pos = range.position;
    // Length of a wanted batch that did not fit in the last read.
    let mut need = 0usize;
    while pos < range.end {
        let want = range.max_bytes.saturating_sub(total).max(MIN_READ).max(need);
        let want = (want as u64).min(range.end - pos) as usize;
        let chunk = file.read_at(pos, want).await?;
        let mut at = 0usize;
        let mut run_start = None;
        let mut full = false;
        while at + HEADER_LEN <= chunk.len() {
            let Some(h) = BatchHeader::parse(&chunk[at..]) else { break };
            let len = h.total_len();
            if h.last_offset() < range.offset {
                at += len;
                continue;
            }
            if total > 0 && total + len > range.max_bytes {
                full = true;
                break;
            }
            if at + len > chunk.len() {
                need = len;
                break;
            }
            run_start.get_or_insert(at);
            total += len;
            at += len;
        }
        if let Some(start) = run_start
            && let Some(view) = ReadResult::slice(&chunk, start, at - start)
        {
            out.push(view);
        }
        let stuck = at == 0 && (need <= want || want as u64 == range.end - pos);
        if full || stuck || total >= range.max_bytes {
            break;
        }
        pos += at as u64;
    }
    Ok(out)
}

/// This shard's open handles on segment files, shared by all fetches it serves.
///
/// Handles are keyed by segment id, so a deleted and re-created topic never reads through a
/// stale handle. Idle handles are closed by [`SegmentFiles::expire_idle`], which also lets the
/// disk space of deleted segments go.
#[derive(Default)]
pub struct SegmentFiles {
    open: RefCell<HashMap<u64, (Rc<DmaFile>, Instant)>>,
}

impl SegmentFiles {
    /// Reads `range`, opening its segment file on first use.
    pub async fn read(&self, range: &DiskRange) -> Result<Vec<ReadResult>, StorageError> {
        let cached = self.open.borrow_mut().get_mut(&range.segment_id).map(|(file, used)| {
            *used = Instant::now();
            Rc::clone(file)
        });
        let file = match cached {
            Some(file) => file,
            None => {
                let file = Rc::new(DmaFile::open(&range.path).await?);
                self.open.borrow_mut().insert(range.segment_id, (Rc::clone(&file), Instant::now()));
                file
            }
        };
        read_range(&file, range).await
    }

    /// Closes handles unused for `idle`.
    pub fn expire_idle(&self, idle: Duration) {
        let now = Instant::now();
        self.open.borrow_mut().retain(|_, (_, used)| now.duration_since(*used) < idle);
    }
}
