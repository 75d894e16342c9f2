//! One log segment: a `.log` file of record batches laid end to end, plus a sparse offset index
//! (`.index`: relative offset u32, position u32) and a time index (`.timeindex`: timestamp i64,
//! relative offset u32), all in Kafka's byte layout.
//!
//! The in-memory indexes are the truth while the broker runs; the files are written when the
//! segment is rolled or closed. After a clean shutdown, start-up loads them and reads only the
//! batches after the last index entry, as Kafka does; they must hold together first
//! ([`Segment::load_index_files`]). After a crash, recovery rebuilds both from the `.log`.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::DmaFile;

use super::StorageError;
use super::batch::{self, BatchHeader, HEADER_LEN};
use super::txn::ControlMarker;
use crate::types::FilePos;

/// The file name of a segment: its base offset in 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Source of [`Segment::id`].
static NEXT_SEGMENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One segment of a partition's log.
pub struct Segment {
    /// Process-wide unique id of this segment file, for readers on other shards.
    pub id: u64,
    /// Offset of the first batch.
    pub base_offset: i64,
    /// The `.log` file (shared with in-flight reads).
    pub file: Rc<DmaFile>,
    /// Path of the `.log` file.
    pub log_path: PathBuf,
    /// Inode of the `.log` file (0 when unknown): a reader that opens `log_path` by name checks
    /// it, since the cleaner may have swapped another file in under that name.
    pub inode: u64,
    /// Logical size: bytes of whole batches written.
    pub size: u64,
    /// Offset of the last record, or `base_offset - 1` when empty.
    pub last_offset: i64,
    /// Largest batch max timestamp seen.
    pub max_timestamp: i64,
    /// When the segment was created (ms), for `segment.ms`.
    pub created_ms: i64,
    /// Sparse offset index: (relative offset, position).
    pub index: Vec<(u32, u32)>,
    /// Time index: (max timestamp so far, relative offset).
    pub time_index: Vec<(i64, u32)>,
    bytes_since_index: u64,
}

impl Segment {
    /// A segment for `file`, with nothing indexed yet.
    pub fn new(base_offset: i64, file: Rc<DmaFile>, log_path: PathBuf, created_ms: i64) -> Self {
        let inode = inode_of(&file);
        Segment {
            id: NEXT_SEGMENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base_offset,
            file,
            log_path,
            inode,
            size: 0,
            last_offset: base_offset - 1,
            max_timestamp: -1,
            created_ms,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
        }
    }

    /// Accounts for a batch written at `pos`: advances the end and adds index entries every
    /// `interval` bytes, as Kafka's `index.interval.bytes` does.
    pub fn track_batch(&mut self, h: &BatchHeader, pos: u64, interval: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.index.is_empty() || self.bytes_since_index >= interval {
            self.index.push((rel, pos as u32));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_len() as u64;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.time_index.push((h.max_timestamp, (h.last_offset() - self.base_offset) as u32));
        }
        self.last_offset = h.last_offset();
        self.size = pos + h.total_len() as u64;
    }

    /// Forgets every batch from `offset` on, which starts at position `pos` (a batch boundary):
    /// the in-memory end and index entries, for a follower's truncation. The caller cuts the file.
    pub fn cut_at(&mut self, offset: i64, pos: u64) {
        let rel = offset - self.base_offset;
        self.index.retain(|&(_, p)| u64::from(p) < pos);
        self.time_index.retain(|&(_, r)| i64::from(r) < rel);
        self.max_timestamp = self.time_index.last().map_or(-1, |&(ts, _)| ts);
        self.last_offset = offset - 1;
        self.size = pos;
        // As if the batches since the last entry were tracked again: entries keep their spacing.
        self.bytes_since_index = self.index.last().map_or(u64::MAX, |&(_, p)| pos - u64::from(p));
    }

    /// Positions of the indexed batch starts in `(after, up_to]`.
    pub fn batch_starts(&self, after: u64, up_to: u64) -> Vec<u64> {
        let first = self.index.partition_point(|(_, pos)| u64::from(*pos) <= after);
        let end = self.index.partition_point(|(_, pos)| u64::from(*pos) <= up_to);
        self.index[first..end.max(first)].iter().map(|(_, pos)| u64::from(*pos)).collect()
    }

    /// Position of the indexed batch at or before `offset`.
    pub fn lookup(&self, offset: i64) -> FilePos {
        let rel = (offset - self.base_offset).max(0) as u32;
        let i = self.index.partition_point(|(r, _)| *r <= rel);
        FilePos(if i == 0 { 0 } else { u64::from(self.index[i - 1].1) })
    }

    /// Position from which to scan for the first record with a timestamp at or after `ts`, or
    /// `None` when no batch in this segment reaches `ts`. Entries record each rise of the max
    /// timestamp, so every batch before the first entry at or above `ts` is entirely below it.
    pub fn lookup_time(&self, ts: i64) -> Option<FilePos> {
        let i = self.time_index.partition_point(|(t, _)| *t < ts);
        let (_, rel) = self.time_index.get(i)?;
        Some(self.lookup(self.base_offset + i64::from(*rel)))
    }

    /// Loads the `.index` and `.timeindex` files that a roll or a clean close wrote, except what
    /// comes from the last offset-index entry on, and returns that entry's position: the caller
    /// scans the batches from there to the end of the file (which adds that entry again), instead
    /// of the whole segment. `None` when the files are missing, or do not hold together (entries
    /// out of order, a position outside the file, or no batch with the indexed offset at the last
    /// entry's position): then the whole segment is scanned.
    pub fn load_index_files(&mut self, file_len: u64) -> Option<u64> {
        let idx = std::fs::read(self.log_path.with_extension("index")).ok()?;
        let tidx = std::fs::read(self.log_path.with_extension("timeindex")).ok()?;
        if idx.len() % 8 != 0 || tidx.len() % 12 != 0 {
            return None;
        }
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut index: Vec<(u32, u32)> = idx.chunks_exact(8).map(|e| (be32(&e[..4]), be32(&e[4..]))).collect();
        let time_index: Vec<(i64, u32)> = tidx
            .chunks_exact(12)
            .map(|e| (i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]), be32(&e[8..])))
            .collect();
        let (last_rel, last_pos) = index.pop()?;
        let in_order = |a: &(u32, u32), b: &(u32, u32)| a.0 < b.0 && a.1 < b.1;
        let first_pos = index.first().map_or(last_pos, |e| e.1);
        if first_pos != 0
            || u64::from(last_pos) >= file_len
            || !index.windows(2).all(|w| in_order(&w[0], &w[1]))
            || index.last().is_some_and(|e| !in_order(e, &(last_rel, last_pos)))
            || !time_index.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        {
            return None;
        }
        let mut head = [0u8; HEADER_LEN];
        std::fs::File::open(&self.log_path).ok()?.read_exact_at(&mut head, u64::from(last_pos)).ok()?;
        let h = BatchHeader::parse(&head)?;
        if !h.stored_within(u64::from(last_pos), file_len) || h.base_offset != self.base_offset + i64::from(last_rel) {
            return None;
        }
        // What the scan from `last_pos` will track again: the time entries of the batches from
        // there on (their last offsets are at or past `last_rel`).
        self.time_index = time_index.into_iter().filter(|(_, rel)| *rel < last_rel).collect();
        self.max_timestamp = self.time_index.last().map_or(-1, |(ts, _)| *ts);
        self.index = index;
        self.last_offset = h.base_offset - 1;
        self.size = u64::from(last_pos);
        // The next tracked batch, the one at `last_pos`, gets its index entry back.
        self.bytes_since_index = u64::MAX;
        Some(u64::from(last_pos))
    }

    /// Writes the `.index` and `.timeindex` files in Kafka's layout.
    pub fn write_index_files(&self) -> Result<(), StorageError> {
        let mut idx = Vec::with_capacity(self.index.len() * 8);
        for (rel, pos) in &self.index {
            idx.extend_from_slice(&rel.to_be_bytes());
            idx.extend_from_slice(&pos.to_be_bytes());
        }
        let mut tidx = Vec::with_capacity(self.time_index.len() * 12);
        for (ts, rel) in &self.time_index {
            tidx.extend_from_slice(&ts.to_be_bytes());
            tidx.extend_from_slice(&rel.to_be_bytes());
        }
        std::fs::write(self.log_path.with_extension("index"), idx)?;
        std::fs::write(self.log_path.with_extension("timeindex"), tidx)?;
        Ok(())
    }
}

/// The inode of an open file, or 0 when `fstat` fails.
pub fn inode_of(file: &impl std::os::fd::AsRawFd) -> u64 {
    // SAFETY: fstat writes only into `st`, which we own; the descriptor is open (borrowed).
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(file.as_raw_fd(), &mut st) == 0 { st.st_ino } else { 0 }
    }
}

/// What a recovery scan found in a `.log` file.
pub struct ScanResult {
    /// Bytes of whole, valid batches from the start.
    pub valid_len: u64,
    /// Bytes after `valid_len` that were not a valid batch (a torn tail, or the zeros that pad
    /// the last write to a page).
    pub trailing: u64,
    /// Whether the bytes right after `valid_len` are data (a torn or corrupt batch) rather than
    /// zeros (page padding, or space an older version fallocated).
    pub torn: bool,
}

/// Bytes read at a time by [`scan_log`]: large sequential reads, because reading each batch
/// header on its own made the kernel fetch one page per batch (7 s per 640 MiB segment here).
const SCAN_CHUNK: usize = 4 << 20;

/// A sliding window over a file for [`scan_log`].
struct ScanWindow {
    file: std::fs::File,
    file_len: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    start: u64,
}

impl ScanWindow {
    /// The `need` bytes at `pos`, reading ahead a chunk when they are not in the window;
    /// `None` when the file ends first.
    fn get(&mut self, pos: u64, need: usize) -> Result<Option<&[u8]>, StorageError> {
        let end = pos + need as u64;
        if end > self.file_len {
            return Ok(None);
        }
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let len = (need.max(SCAN_CHUNK) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(Some(&self.buf[at..at + need]))
    }
}

/// Walks the batches of a `.log` file from position `from` (a batch start), calling
/// `on_batch(header, position, marker)` for each valid one, with the transaction marker a
/// control batch holds (read whole for it; other batches only by their headers). Stops at the first torn, zero or (with
/// `verify_crc`) corrupt batch. Blocking I/O: start-up only.
pub fn scan_log(
    path: &Path,
    from: u64,
    verify_crc: bool,
    mut on_batch: impl FnMut(&BatchHeader, u64, Option<ControlMarker>),
) -> Result<ScanResult, StorageError> {
    let file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut window = ScanWindow { file, file_len, buf: Vec::new(), start: 0 };
    let mut pos = from.min(file_len);
    while let Some(head) = window.get(pos, HEADER_LEN)? {
        let Some(h) = BatchHeader::parse(head) else { break };
        if !h.stored_within(pos, file_len) {
            break;
        }
        let total = h.total_len() as u64;
        if verify_crc && window.get(pos, total as usize)?.is_none_or(|b| batch::validate(b).is_err()) {
            tracing::warn!(path = %path.display(), pos, "recovery found a corrupt batch; truncating here");
            break;
        }
        let marker = if h.is_control() { window.get(pos, total as usize)?.and_then(ControlMarker::parse) } else { None };
        on_batch(&h, pos, marker);
        pos += total;
    }
    let probe = (file_len - pos).min(batch::LOG_OVERHEAD as u64) as usize;
    let torn = window.get(pos, probe)?.is_some_and(|next| next.iter().any(|&b| b != 0));
    Ok(ScanResult { valid_len: pos, trailing: file_len - pos, torn })
}

/// The base offsets of the segments in a partition directory (its `<base>.log` files), in order.
pub fn base_offsets(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Reads the last partial 4 KiB page of the first `len` bytes of a file: the appender rewrites it.
pub fn read_tail_page(path: &Path, len: u64, page: u64) -> Result<Vec<u8>, StorageError> {
    let start = len - len % page;
    let mut buf = vec![0u8; (len - start) as usize];
    let mut file = std::fs::File::open(path)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{stamp, testing::make_batch};

    #[test]
    fn scan_stops_at_torn_tail_and_corruption() {
        let dir = std::env::temp_dir().join(format!("ringlog-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("00000000000000000000.log");
        let a = stamp(&make_batch(&[b"one"], 1, -1, -1), 0, 0, None).to_bytes();
        let b = stamp(&make_batch(&[b"two"], 2, -1, -1), 1, 0, None).to_bytes();
        let mut data = [a.as_ref(), b.as_ref()].concat();
        data.extend_from_slice(&b[..20]); // torn third batch
        data.extend_from_slice(&[0u8; 100]);
        std::fs::write(&path, &data).unwrap();
        let mut seen = Vec::new();
        let r = scan_log(&path, 0, true, |h, pos, _| seen.push((h.base_offset, pos))).unwrap();
        assert_eq!(r.valid_len as usize, a.len() + b.len());
        assert!(r.torn);
        assert_eq!(seen, vec![(0, 0), (1, a.len() as u64)]);

        let mut corrupt = data.clone();
        corrupt[a.len() + 70] ^= 1; // inside the second batch's records
        std::fs::write(&path, &corrupt).unwrap();
        let r = scan_log(&path, 0, true, |_, _, _| {}).unwrap();
        assert_eq!(r.valid_len as usize, a.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
