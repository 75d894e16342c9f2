//! Zero-copy reads of record batches from segment files, on whichever shard holds the client
//! connection.
//!
//! The owner shard of a partition resolves a fetch to a [`DiskRange`]: which segment file, from
//! which position, up to the bytes written at the high watermark, and the batch starts its sparse
//! index knows in the byte limit. Everything in it is `Send`, so it crosses the mesh. The
//! connection's shard then serves the range with its own handles ([`SegmentFiles`]):
//! - ranges are read with direct I/O, and glommio's `ReadResult` views go straight to the
//!   socket: disk → DMA buffer → kernel socket buffer;
//! - with `cold_read_splice` on, large ranges stay in the file as a [`FileSlice`] that the socket
//!   path splices from the page cache (`net::splice`). Where it starts is found from the batch
//!   headers in the page cache, which the previous fetch's read-ahead put there, or else by a
//!   direct read of the first whole batches, which are then sent from that read.
//!
//! Either way there is no copy in user space and no second mesh hop to carry the bytes back.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::{DmaFile, ReadResult};

use super::StorageError;
use super::batch::{BatchHeader, HEADER_LEN, StampedBatch};

/// Bytes read per disk read, at least: small fetches still read a useful amount.
const MIN_READ: usize = 64 * 1024;
/// Bytes read per disk read, at most (a longer range takes several): a client's
/// `partition_max_bytes` must not size one allocation.
const MAX_READ: usize = 8 << 20;
/// Bytes read ahead per partition, at most: up to [`MAX_READ_AHEAD`] of these are held per shard.
const READ_AHEAD_BYTES: usize = 4 << 20;
/// Fetches of the same size that one read-ahead covers. The first is served from it as soon as it
/// is read; the whole batches after that wait in memory for the next fetch, which issues no read
/// of its own. So each read is issued two fetches before the last of them needs it, and a slow
/// disk read delays the consumer less (perf/RESULTS.md, session 10).
const READ_AHEAD_FETCHES: usize = 2;

/// A range of a segment file that holds the batches a fetch wants.
#[derive(Debug, Clone)]
pub struct DiskRange {
    /// Unique id of the segment file (process-wide), the key of [`SegmentFiles`].
    pub segment_id: u64,
    /// The segment's `.log` file.
    pub path: PathBuf,
    /// The file's inode (0: unchecked). The cleaner may swap a new file in under `path`; the
    /// one this range was located in is then at `path` + `.deleted` for `file.delete.delay.ms`.
    pub inode: u64,
    /// Where to start scanning: a batch boundary at or before the wanted offset.
    pub position: u64,
    /// End of the bytes written below the high watermark when the range was resolved.
    pub end: u64,
    /// First offset wanted: batches that end before it are skipped.
    pub offset: i64,
    /// Byte limit (at least one whole batch is returned, as KIP-74 asks).
    pub max_bytes: usize,
    /// Batch starts from the segment's sparse index after `position`, up to `position +
    /// max_bytes`: where a range can end on a whole batch without reading it. Filled only for a
    /// range large enough to splice ([`DiskRange::splices`]).
    pub boundaries: Vec<u64>,
}

impl DiskRange {
    /// Bytes the range can return at most: what long-polling compares with `min_bytes`.
    pub fn available(&self) -> usize {
        ((self.end - self.position) as usize).min(self.max_bytes)
    }

    /// The last known batch start (an indexed boundary, or `end`) in `(after, up_to]`: where a
    /// slice from `after` can end on a whole batch within `up_to`.
    fn last_batch_start_in(&self, after: u64, up_to: u64) -> Option<u64> {
        self.boundaries.iter().copied().chain([self.end]).filter(|&b| b > after && b <= up_to).max()
    }

    /// Whether the range is large enough that its bulk is left in the file for splicing (on a
    /// shard that can splice).
    pub fn splices(&self) -> bool {
        self.available() >= SPLICE_MIN
    }
}

/// What a fetch found in one partition, before the bytes are read.
#[derive(Debug, Clone)]
pub enum Located {
    /// Whole batches from the shard's batch cache (possibly none).
    Cached(Vec<StampedBatch>),
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

/// Whole batches still in a segment file, for the kernel to send (see `net::splice`).
pub struct FileSlice {
    /// The segment file, opened for buffered reads.
    pub file: Rc<std::fs::File>,
    /// Where the batches start.
    pub pos: u64,
    /// Bytes.
    pub len: usize,
}

/// Part of what a fetch returns from disk.
pub enum DiskPiece {
    /// Whole batches in a direct-I/O read buffer.
    Read(ReadResult),
    /// Whole batches left in the file, to be spliced to the socket.
    InFile(FileSlice),
}

/// Batches read from a [`DiskRange`].
pub struct RangeRead {
    /// Runs of contiguous whole batches, each a view into a read buffer.
    pub views: Vec<ReadResult>,
    /// File position just past the last batch returned: where the next fetch will start.
    pub next_position: u64,
    /// The offset after the last batch returned (the next fetch's offset), if any was returned.
    pub next_offset: Option<i64>,
    /// The bytes of the last read after `next_position`, when the byte limit stopped the range
    /// before the read's end: the next fetch's batches, or their start.
    pub rest: Option<ReadResult>,
}

/// Reads whole batches from `range` in `file`: skips batches that end before `range.offset`,
/// stops at `range.end` or `range.max_bytes`, and always returns the first wanted batch whole.
/// `first`, when given, is a buffer already read from a known batch boundary (read-ahead), used
/// in place of the first disk read; once it has given at least one wanted batch, the range ends
/// with it, rather than wait for another read.
pub async fn read_range(file: &DmaFile, range: &DiskRange, first: Option<(u64, ReadResult)>) -> Result<RangeRead, StorageError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    let mut pos = first.as_ref().map_or(range.position, |(p, _)| *p);
    let mut ready = first.map(|(_, buf)| buf);
    let mut next_offset = None;
    // Length of a wanted batch that did not fit in the last read.
    let mut need = 0usize;
    let mut rest = None;
    while pos < range.end {
        let want = range.max_bytes.saturating_sub(total).clamp(MIN_READ, MAX_READ).max(need);
        let want = (want as u64).min(range.end - pos) as usize;
        let (chunk, read_ahead) = match ready.take() {
            Some(buf) => (buf, true),
            None => (file.read_at(pos, want).await?, false),
        };
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
            next_offset = Some(h.last_offset() + 1);
            total += len;
            at += len;
        }
        if let Some(start) = run_start
            && let Some(view) = ReadResult::slice(&chunk, start, at - start)
        {
            out.push(view);
        }
        // No progress although the read held every byte we knew we needed: a corrupt header.
        let stuck = at == 0 && (need <= chunk.len() || chunk.len() as u64 >= range.end - pos);
        pos += at as u64;
        if full || total >= range.max_bytes {
            rest = ReadResult::slice(&chunk, at, chunk.len() - at);
            break;
        }
        if stuck || (read_ahead && total > 0) {
            break;
        }
    }
    Ok(RangeRead { views: out, next_position: pos, next_offset, rest })
}

/// Read-ahead buffers a shard keeps, at most: up to two per partition being caught up.
const MAX_READ_AHEAD: usize = 32;

/// Bytes read for a fetch that will follow one just served.
struct ReadAhead {
    segment_id: u64,
    /// The offset that fetch will ask for; its batch starts at `position`.
    offset: i64,
    position: u64,
    issued: Instant,
    read: AheadRead,
}

impl ReadAhead {
    /// Whether this is for the fetch of `offset` in the segment.
    fn is_for(&self, segment_id: u64, offset: i64) -> bool {
        self.segment_id == segment_id && self.offset == offset
    }
}

/// A read-ahead's bytes: still on their way, or left over from the last fetch's read.
enum AheadRead {
    InFlight(glommio::Task<std::io::Result<ReadResult>>),
    /// Whole batches only.
    Done(ReadResult),
}

/// The length of the whole batches at the start of `buf`, and the offset after the last of them;
/// `None` if there is not one whole batch.
fn whole_batches(buf: &[u8]) -> Option<(usize, i64)> {
    let (mut at, mut next_offset) = (0usize, None);
    while let Some(h) = buf.get(at..).and_then(BatchHeader::parse) {
        if !h.stored_within(at as u64, buf.len() as u64) {
            break;
        }
        at += h.total_len();
        next_offset = Some(h.last_offset() + 1);
    }
    next_offset.map(|offset| (at, offset))
}

/// This shard's open handles on segment files, shared by all fetches it serves, and its
/// read-ahead.
///
/// Handles are keyed by segment id, so a deleted and re-created topic never reads through a
/// stale handle. Idle handles are closed by [`SegmentFiles::expire_idle`], which also lets the
/// disk space of deleted segments go.
///
/// A consumer catching up fetches one range after another, and librdkafka keeps one fetch in
/// flight per broker. So after each disk read, the next range (from the exact batch boundary
/// the consumer will ask for next) is read in the background while this response is sent and
/// the client works through it: disk and network overlap instead of taking turns.
#[derive(Default)]
pub struct SegmentFiles {
    open: RefCell<HashMap<u64, OpenSegment>>,
    ahead: RefCell<VecDeque<ReadAhead>>,
    /// Whether large ranges may be left in the file for the socket path to splice.
    splice: bool,
}

/// A segment file's handles on this shard.
struct OpenSegment {
    dma: Rc<DmaFile>,
    /// For splicing, when it is on.
    buffered: Option<Rc<std::fs::File>>,
    used: Instant,
}

/// Asks the kernel to start reading `from..to` of `file` into the page cache, and returns without
/// waiting. A splice reads the page cache one pipe's worth at a time, each waiting for the disk;
/// started here, the reads of every slice in a fetch, and of the next fetch's, are in flight at
/// once. Best effort: a failure only means the splice reads them itself.
fn start_page_cache_read(file: &std::fs::File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(from), libc::off_t::try_from(to.saturating_sub(from))) else { return };
    // SAFETY: posix_fadvise reads only its integer arguments; the descriptor is open (we hold it).
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::from_raw_os_error(rc), "page cache read-ahead not started");
    }
}

/// Fetches of the same size whose ranges are read into the page cache ahead of a spliced slice.
/// One was not enough for a catch-up from disk: the disk then had 2.7 reads in flight on average,
/// and idled while the consumer parsed (perf/RESULTS.md, session 9).
const SLICE_READ_AHEAD_FETCHES: u64 = 2;

/// The slice `from..to` of `file` for the socket path to splice, with its page-cache read started,
/// and that of the ranges the next fetches will want. Up to `end`, the high watermark's position,
/// only: past it the tail is still being written.
fn slice_read_ahead(file: Rc<std::fs::File>, from: u64, to: u64, end: u64) -> DiskPiece {
    start_page_cache_read(&file, from, (to + SLICE_READ_AHEAD_FETCHES * (to - from)).min(end));
    DiskPiece::InFile(FileSlice { file, pos: from, len: (to - from) as usize })
}

/// Batch headers [`first_wanted_batch_in_page_cache`] reads at most before it gives up: an index
/// entry is at most `index.interval.bytes` (4 KiB by default) before the wanted batch.
const MAX_HEADER_WALK: usize = 256;

/// The position and length of the first batch in `range` that the fetch wants (the one holding
/// `range.offset`, or the first after it), found by reading only batch headers, and only from the
/// page cache (`RWF_NOWAIT`): the previous fetch's read-ahead put them there. `None` when a header
/// is not in the page cache, or does not parse: the caller reads the head with direct I/O instead.
fn first_wanted_batch_in_page_cache(file: &std::fs::File, range: &DiskRange) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let mut pos = range.position;
    for _ in 0..MAX_HEADER_WALK {
        let mut head = [0u8; HEADER_LEN];
        let iov = libc::iovec { iov_base: head.as_mut_ptr().cast(), iov_len: HEADER_LEN };
        // SAFETY: one iovec over `head`, which outlives the call; the descriptor is open.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, libc::off_t::try_from(pos).ok()?, libc::RWF_NOWAIT) };
        if n != HEADER_LEN as isize {
            return None;
        }
        let h = BatchHeader::parse(&head)?;
        if !h.stored_within(pos, range.end) {
            return None;
        }
        let len = h.total_len() as u64;
        if h.last_offset() >= range.offset {
            return Some((pos, len));
        }
        pos += len;
    }
    None
}

/// Ranges at least this large leave their bulk in the file for the socket path to splice; smaller
/// ones are read with DMA, where one read costs less than setting up a splice.
const SPLICE_MIN: usize = 256 * 1024;

impl SegmentFiles {
    /// Handles for this shard; `splice` says whether the socket path can splice file ranges.
    pub fn new(splice: bool) -> Self {
        SegmentFiles { splice, ..Default::default() }
    }

    /// Reads `range`, opening its segment file on first use.
    ///
    /// A large range, when splicing is on, stays in the file as a [`FileSlice`] up to the last
    /// index boundary within the byte limit. It starts at the batch holding the wanted offset,
    /// found by reading batch headers from the page cache; when they are not there, a direct read
    /// of the first whole batches (64 KiB) finds it, and the slice follows that read.
    pub async fn read(&self, range: &DiskRange) -> Result<Vec<DiskPiece>, StorageError> {
        let (file, buffered) = self.handles(range).await?;
        if let Some(buffered) = buffered
            && range.splices()
        {
            if let Some((start, first_len)) = first_wanted_batch_in_page_cache(&buffered, range) {
                // Whole batches from the wanted one, up to the byte limit (at least that one).
                let budget_end = start + (range.max_bytes as u64).max(first_len);
                let to = range.last_batch_start_in(start, budget_end).unwrap_or(0).max(start + first_len);
                return Ok(vec![slice_read_ahead(buffered, start, to, range.end)]);
            }
            let head = read_range(&file, &DiskRange { max_bytes: MIN_READ, boundaries: Vec::new(), ..range.clone() }, None).await?;
            let head_len: usize = head.views.iter().map(|v| v.len()).sum();
            let mut out: Vec<DiskPiece> = head.views.into_iter().map(DiskPiece::Read).collect();
            if head.next_offset.is_none() {
                return Ok(out);
            }
            let from = head.next_position;
            let budget_end = from + range.max_bytes.saturating_sub(head_len) as u64;
            if let Some(to) = range.last_batch_start_in(from, budget_end) {
                out.push(slice_read_ahead(buffered, from, to, range.end));
            }
            return Ok(out);
        }
        let ahead = {
            let mut queue = self.ahead.borrow_mut();
            let found = queue.iter().position(|a| a.is_for(range.segment_id, range.offset));
            found.and_then(|i| queue.remove(i))
        };
        let first = match ahead {
            Some(ReadAhead { position, read: AheadRead::InFlight(task), .. }) => task.await.ok().map(|buf| (position, buf)),
            Some(ReadAhead { position, read: AheadRead::Done(buf), .. }) => Some((position, buf)),
            None => None,
        };
        let read = read_range(&file, range, first.filter(|(_, buf)| !buf.is_empty())).await?;
        if let Some(mut offset) = read.next_offset {
            // The next fetch's whole batches, if this read holds some, wait in memory; the read
            // for the fetch after that starts where they end.
            let mut position = read.next_position;
            if !self.has_ahead(range.segment_id, offset)
                && let Some(rest) = read.rest
                && let Some((len, after)) = whole_batches(&rest)
                && let Some(batches) = ReadResult::slice(&rest, 0, len)
            {
                self.keep_ahead(ReadAhead { segment_id: range.segment_id, offset, position, issued: Instant::now(), read: AheadRead::Done(batches) });
                (position, offset) = (position + len as u64, after);
            }
            if position < range.end && !self.has_ahead(range.segment_id, offset) {
                let ahead = (READ_AHEAD_FETCHES * range.max_bytes).clamp(MIN_READ, READ_AHEAD_BYTES) as u64;
                let len = (range.end - position).min(ahead) as usize;
                let task = glommio::spawn_local(async move { file.read_at(position, len).await.map_err(std::io::Error::from) });
                self.keep_ahead(ReadAhead { segment_id: range.segment_id, offset, position, issued: Instant::now(), read: AheadRead::InFlight(task) });
            }
        }
        Ok(read.views.into_iter().map(DiskPiece::Read).collect())
    }

    /// Whether a read-ahead is held for the fetch of `offset` in the segment.
    fn has_ahead(&self, segment_id: u64, offset: i64) -> bool {
        self.ahead.borrow().iter().any(|a| a.is_for(segment_id, offset))
    }

    /// Holds a read-ahead for the fetch it is for, dropping the oldest beyond [`MAX_READ_AHEAD`].
    fn keep_ahead(&self, ahead: ReadAhead) {
        let mut queue = self.ahead.borrow_mut();
        if queue.len() >= MAX_READ_AHEAD {
            queue.pop_front();
        }
        queue.push_back(ahead);
    }

    /// The segment's handles on this shard, opened on first use.
    async fn handles(&self, range: &DiskRange) -> Result<(Rc<DmaFile>, Option<Rc<std::fs::File>>), StorageError> {
        let cached = self.open.borrow_mut().get_mut(&range.segment_id).map(|open| {
            open.used = Instant::now();
            (Rc::clone(&open.dma), open.buffered.clone())
        });
        if let Some(handles) = cached {
            return Ok(handles);
        }
        let deleted = |e: std::io::Error| match e.kind() {
            // Retention deleted the segment after the owner located the range.
            std::io::ErrorKind::NotFound => StorageError::SegmentDeleted { offset: range.offset },
            _ => e.into(),
        };
        let mut path = range.path.clone();
        let mut dma = DmaFile::open(&path).await.map_err(|e| deleted(e.into()))?;
        if range.inode != 0 && super::segment::inode_of(&dma) != range.inode {
            // The cleaner swapped a cleaned segment in after the owner located this range: the
            // located file waits under its `.deleted` name.
            let _ = dma.close().await;
            path = super::cleaner::swap::with_suffix(&range.path, super::cleaner::swap::DELETED_SUFFIX);
            dma = DmaFile::open(&path).await.map_err(|e| deleted(e.into()))?;
            if super::segment::inode_of(&dma) != range.inode {
                let _ = dma.close().await;
                return Err(StorageError::SegmentDeleted { offset: range.offset });
            }
        }
        let dma = Rc::new(dma);
        // The inode is in memory now (the DMA handle holds it): this open does not wait for the disk.
        let buffered = if self.splice { Some(Rc::new(std::fs::File::open(&path).map_err(deleted)?)) } else { None };
        let open = OpenSegment { dma: Rc::clone(&dma), buffered: buffered.clone(), used: Instant::now() };
        self.open.borrow_mut().insert(range.segment_id, open);
        Ok((dma, buffered))
    }

    /// Closes handles unused for `idle`, and drops read-ahead nobody claimed.
    pub fn expire_idle(&self, idle: Duration) {
        let now = Instant::now();
        self.open.borrow_mut().retain(|_, open| now.duration_since(open.used) < idle);
        self.ahead.borrow_mut().retain(|a| now.duration_since(a.issued) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{self, testing::make_batch};
    use crate::storage::testing::run;

    /// 40 batches of 10 records (offsets 0..400), each about 10 KiB, in one segment file.
    fn write_segment(path: &std::path::Path) -> Vec<(i64, u64, usize)> {
        let value = vec![7u8; 1000];
        let mut bytes = Vec::new();
        let mut layout = Vec::new();
        for i in 0..40i64 {
            let values: Vec<&[u8]> = (0..10).map(|_| value.as_slice()).collect();
            let stamped = batch::stamp(&make_batch(&values, 1_000 + i, -1, -1), i * 10, 0, None);
            layout.push((i * 10, bytes.len() as u64, stamped.len()));
            bytes.extend_from_slice(&stamped.to_bytes());
        }
        std::fs::write(path, &bytes).unwrap();
        layout
    }

    /// [`write_segment`] in `dir`: its path, layout and length.
    fn segment_in(dir: &std::path::Path) -> (PathBuf, Vec<(i64, u64, usize)>, u64) {
        let path = dir.join("00000000000000000000.log");
        let layout = write_segment(&path);
        let end = std::fs::metadata(&path).unwrap().len();
        (path, layout, end)
    }

    /// The read buffers of a DMA-only read.
    fn views(pieces: Vec<DiskPiece>) -> Vec<ReadResult> {
        pieces
            .into_iter()
            .map(|p| match p {
                DiskPiece::Read(view) => view,
                DiskPiece::InFile(_) => panic!("a small range is read, not left in the file"),
            })
            .collect()
    }

    fn headers(views: &[ReadResult]) -> Vec<BatchHeader> {
        let mut out = Vec::new();
        for v in views {
            let mut at = 0;
            while at < v.len() {
                let h = BatchHeader::parse(&v[at..]).unwrap();
                assert!(at + h.total_len() <= v.len(), "views hold whole batches only");
                batch::validate(&v[at..at + h.total_len()]).unwrap();
                at += h.total_len();
                out.push(h);
            }
        }
        out
    }

    #[test]
    fn reads_whole_batches_from_the_wanted_offset_and_reads_ahead() {
        run(|dir| async move {
            let (path, layout, end) = segment_in(&dir);
            let batch_len = layout[0].2;
            let range = |offset: i64, max_bytes: usize| DiskRange {
                segment_id: 1,
                path: path.clone(),
                inode: 0,
                position: 0, // as a sparse index may say: before the wanted batch
                end,
                offset,
                max_bytes,
                boundaries: Vec::new(),
            };
            let file = DmaFile::open(&path).await.unwrap();

            // Offset 253 lies inside batch 25; 3 batches fit in 35,000 bytes.
            let read = read_range(&file, &range(253, 35_000), None).await.unwrap();
            let got = headers(&read.views);
            assert_eq!(got.iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![250, 260, 270]);
            assert_eq!(read.next_offset, Some(280));
            assert_eq!(read.next_position, layout[28].1);

            // A limit smaller than one batch still returns that batch whole (KIP-74).
            let read = read_range(&file, &range(0, 100), None).await.unwrap();
            assert_eq!(headers(&read.views).len(), 1);
            assert_eq!(read.views[0].len(), batch_len);

            // Reads past the end stop at the range's end, not the file's.
            let short = DiskRange { end: layout[5].1, ..range(30, 1 << 20) };
            let read = read_range(&file, &short, None).await.unwrap();
            assert_eq!(headers(&read.views).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![30, 40]);

            // A consumer's next fetches are served from what was read ahead, from the exact
            // position. Whole batches a read holds past the fetch's limit wait in memory for the
            // next fetch, and the read for the one after starts where they end.
            let files = SegmentFiles::default();
            let in_flight = |files: &SegmentFiles| {
                files.ahead.borrow().iter().filter(|a| matches!(a.read, AheadRead::InFlight(_))).map(|a| (a.offset, a.position)).collect::<Vec<_>>()
            };
            let done = |files: &SegmentFiles| {
                files.ahead.borrow().iter().filter(|a| matches!(a.read, AheadRead::Done(_))).map(|a| (a.offset, a.position)).collect::<Vec<_>>()
            };
            // The first read (64 KiB, the least) holds 6 whole batches: 0..30 go out, 30..60 are
            // kept for the next fetch, and the read for the one after starts at batch 60.
            let first = views(files.read(&range(0, 35_000)).await.unwrap());
            assert_eq!(headers(&first).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![0, 10, 20]);
            assert_eq!(done(&files), vec![(30, layout[3].1)]);
            assert_eq!(in_flight(&files), vec![(60, layout[6].1)], "the range after next is being read");
            let second = views(files.read(&range(30, 35_000)).await.unwrap());
            assert_eq!(headers(&second).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![30, 40, 50]);
            assert!(done(&files).is_empty(), "the kept batches were used");
            assert_eq!(in_flight(&files), vec![(60, layout[6].1)], "no second read for the same fetch");
            // The read-ahead (two fetches' worth, 70,000 bytes) holds 60..120: 90..120 are kept.
            let third = views(files.read(&range(60, 35_000)).await.unwrap());
            assert_eq!(headers(&third).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![60, 70, 80]);
            assert_eq!(done(&files), vec![(90, layout[9].1)]);
            assert_eq!(in_flight(&files), vec![(120, layout[12].1)]);
            let fourth = views(files.read(&range(90, 35_000)).await.unwrap());
            assert_eq!(headers(&fourth).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![90, 100, 110]);
            // A fetch for less than the read-ahead holds takes what fits; the rest is kept.
            let small = views(files.read(&range(120, 15_000)).await.unwrap());
            assert_eq!(headers(&small).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![120]);
            assert_eq!(done(&files), vec![(130, layout[13].1)]);
            assert_eq!(in_flight(&files), vec![(180, layout[18].1)]);
            // Kept batches that outlast a fetch are kept again; the read after them is not issued twice.
            let kept = views(files.read(&range(130, 15_000)).await.unwrap());
            assert_eq!(headers(&kept).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![130]);
            assert_eq!(done(&files), vec![(140, layout[14].1)]);
            assert_eq!(in_flight(&files), vec![(180, layout[18].1)], "one read for the fetch at 180");

            // Retention deleted the segment after the owner located the range: the client is
            // told its offset is out of range (it then resets), not that the disk failed.
            let gone = DiskRange { segment_id: 2, path: dir.join("00000000000000000400.log"), ..range(400, 100) };
            assert!(matches!(files.read(&gone).await, Err(StorageError::SegmentDeleted { offset: 400 })));
        });
    }

    #[test]
    fn a_range_located_before_a_cleaner_swap_reads_the_file_it_was_located_in() {
        run(|dir| async move {
            let (path, _, end) = segment_in(&dir);
            let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
            // The cleaner swaps a new file in under the same name; the located one is `.deleted`.
            std::fs::rename(&path, crate::storage::cleaner::swap::with_suffix(&path, ".deleted")).unwrap();
            std::fs::write(&path, vec![0u8; 8192]).unwrap();
            let range = DiskRange { segment_id: 7, path: path.clone(), inode, position: 0, end, offset: 42, max_bytes: 15_000, boundaries: Vec::new() };
            let files = SegmentFiles::new(false);
            let got = views(files.read(&range).await.unwrap());
            assert_eq!(headers(&got).first().map(|h| h.base_offset), Some(40), "read from the located file");
            // Once the old file is gone too, the fetch is told its offset went (it re-locates).
            let later = DiskRange { segment_id: 8, ..range };
            std::fs::remove_file(crate::storage::cleaner::swap::with_suffix(&path, ".deleted")).unwrap();
            assert!(matches!(files.read(&later).await, Err(StorageError::SegmentDeleted { offset: 42 })));
        });
    }

    /// The page size `resident_pages` counts in.
    const PAGE: usize = 4096;

    /// Drops `path`'s pages from the page cache; false where the file system keeps them (tmpfs).
    fn evict(path: &std::path::Path) -> bool {
        use std::os::fd::AsRawFd;
        let written = std::fs::File::open(path).unwrap();
        written.sync_all().unwrap();
        // SAFETY: fadvise on a descriptor we hold; it only reads its arguments.
        unsafe { libc::posix_fadvise(written.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        resident_pages(path, 0, written.metadata().unwrap().len()) == 0
    }

    /// Pages of `path` within `from..to` that are in the page cache.
    fn resident_pages(path: &std::path::Path, from: u64, to: u64) -> usize {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let mut resident = vec![0u8; len.div_ceil(PAGE)];
        // SAFETY: a read-only shared mapping of a file we hold open, unmapped before returning;
        // mincore writes one byte per page into a vector of that many bytes.
        unsafe {
            let addr = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
            assert_ne!(addr, libc::MAP_FAILED);
            assert_eq!(libc::mincore(addr, len, resident.as_mut_ptr()), 0);
            libc::munmap(addr, len);
        }
        resident[from as usize / PAGE..(to as usize).div_ceil(PAGE)].iter().filter(|b| **b & 1 == 1).count()
    }

    #[test]
    fn a_spliced_slice_and_the_next_range_are_read_into_the_page_cache_at_once() {
        run(|dir| async move {
            let (path, layout, end) = segment_in(&dir);
            if !evict(&path) {
                eprintln!("skipped: this file system keeps the pages cached (tmpfs?)");
                return;
            }
            // The high watermark stands at batch 36; the file goes on past it.
            let hw = layout[36].1;
            let boundaries: Vec<u64> = layout.iter().map(|(_, pos, _)| *pos).skip(4).step_by(4).collect();
            let range = DiskRange { segment_id: 1, path: path.clone(), inode: 0, position: 0, end: hw, offset: 0, max_bytes: 270_000, boundaries };
            let mut pieces = SegmentFiles::new(true).read(&range).await.unwrap();
            let Some(DiskPiece::InFile(slice)) = pieces.pop() else { panic!("the range ends with a file slice") };
            let (from, to) = (slice.pos, slice.pos + slice.len as u64);
            // The slice, then the next fetches' ranges up to the high watermark.
            let ahead_end = (to + SLICE_READ_AHEAD_FETCHES * slice.len as u64).min(hw);
            assert!(to < ahead_end, "there is a next range to read ahead");
            // Nothing reads the slice: only the read started for it can bring its pages in.
            let page = PAGE as u64;
            let want = (ahead_end.div_ceil(page) - from / page) as usize;
            let deadline = Instant::now() + Duration::from_secs(10);
            while resident_pages(&path, from, ahead_end) < want && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(resident_pages(&path, from, ahead_end), want);
            assert_eq!(resident_pages(&path, hw.div_ceil(page) * page, end), 0, "nothing past the high watermark");
        });
    }

    #[test]
    fn a_large_range_is_left_in_the_file_from_the_batch_holding_the_offset() {
        run(|dir| async move {
            let (path, layout, end) = segment_in(&dir);
            // The sparse index has every fourth batch start; offset 53 is inside batch 5.
            let boundaries: Vec<u64> = layout.iter().map(|(_, pos, _)| *pos).skip(4).step_by(4).collect();
            let range = DiskRange { segment_id: 1, path: path.clone(), inode: 0, position: 0, end, offset: 53, max_bytes: 300_000, boundaries };
            let budget_used = |start: u64, len: usize| {
                let slice_end = start + len as u64;
                assert!(range.boundaries.contains(&slice_end) || slice_end == end, "the slice ends on an indexed batch start");
                assert!(len <= range.max_bytes);
                assert!(len + 4 * layout[0].2 > range.max_bytes, "it uses the budget up to one index step");
            };

            // Just written, the headers are in the page cache: the range is one slice, from the
            // batch holding the offset, found by reading headers only.
            let pieces = SegmentFiles::new(true).read(&range).await.unwrap();
            let [DiskPiece::InFile(slice)] = &pieces[..] else { panic!("one file slice, no direct read") };
            assert_eq!(slice.pos, layout[5].1, "the slice starts at the batch holding the offset");
            budget_used(slice.pos, slice.len);

            // Out of the page cache, a direct read finds the first batches, and the slice follows.
            if !evict(&path) {
                eprintln!("skipped the direct-read half: this file system keeps the pages cached (tmpfs?)");
                return;
            }
            let mut pieces = SegmentFiles::new(true).read(&range).await.unwrap();
            let Some(DiskPiece::InFile(slice)) = pieces.pop() else { panic!("the range ends with a file slice") };
            let head = views(pieces);
            let head_len: usize = head.iter().map(|v| v.len()).sum();
            let head_batches = headers(&head);
            assert_eq!(head_batches[0].base_offset, 50, "the read starts at the batch holding the offset");
            let next = layout.iter().position(|(_, pos, _)| *pos == slice.pos).expect("the slice starts on a batch");
            assert_eq!(layout[next].0, head_batches.last().unwrap().last_offset() + 1, "and goes on from the read");
            budget_used(layout[5].1, head_len + slice.len);
        });
    }
}
