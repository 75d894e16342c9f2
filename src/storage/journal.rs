//! The append journal: every appended batch is copied into a ring in shared memory (a tmpfs
//! file), so consumers may read it before its O_DIRECT write completes and a broker process crash
//! still cannot lose a record that a consumer has seen.
//!
//! Kafka's consumers read a record once it is in the page cache, which outlives the broker
//! process. Ringlog writes segments with O_DIRECT, past the page cache, so without the journal a
//! record is visible only once its write completes (0.4 ms at the median on the development VM,
//! about 2 ms at p99 behind `acks=all`'s fdatasyncs). A journal entry costs one copy of the batch
//! into memory, and the batch's write frees it. At start-up, before any shard opens a partition,
//! [`replay`] appends to the segment files what a crashed process left in its journals. Like the
//! page cache, the journal does not survive a kernel crash or a power loss: `acks=all` waits for
//! fdatasync for that, as before.
//!
//! A journal file is a 4 KiB header page, then the ring. The header holds a magic, the data
//! directory the journal belongs to, and the tail: the ring position and sequence number of the
//! oldest live entry, in one 8-byte word so that a crash never splits them. Entries are 8-byte
//! aligned:
//!
//! `seq u64 | batch_len u32 | name_len u16 | flags u16 | crc32c u32 | pad u32 | name | batch`
//!
//! `seq` is stored last and commits the entry. A walk from the tail follows consecutive sequence
//! numbers and stops at the first that does not follow, so neither a half-copied entry nor one
//! left from an earlier lap of the ring is ever read. A `batch_len` of [`WRAP`] says that the
//! ring goes on at its start. The CRC covers `batch_len`, `name_len` and the name; the batch
//! carries its own.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{Ordering, compiler_fence};

use memmap2::MmapMut;

use super::StorageError;
use super::batch::{self, BatchHeader, StampedBatch};
use super::segment;
use crate::metrics::ShardMetrics;
use crate::types::TopicPartition;

const MAGIC: &[u8; 8] = b"RLJRNL01";
/// The header page: magic, tail word, data directory.
const RING_START: usize = 4096;
const TAIL_AT: usize = 8;
const DIR_LEN_AT: usize = 16;
const DIR_AT: usize = 20;
/// An entry's header: where each field of `seq | batch_len | name_len | flags | crc32c | pad` is.
const SEQ_AT: usize = 0;
const BATCH_LEN_AT: usize = 8;
const NAME_LEN_AT: usize = 12;
const FLAGS_AT: usize = 14;
const CRC_AT: usize = 16;
const ENTRY_HEADER: usize = 24;
/// `batch_len` of a marker that sends the walk back to the ring's start.
const WRAP: u32 = u32::MAX;
/// `flags` bit: the partition was deleted after this entry was written; replay skips it.
const REMOVED: u16 = 1;
/// A journal smaller than this is refused: it would hold too few batches to matter.
pub const MIN_BYTES: usize = 64 * 1024;

/// One partition's link to its shard's journal: its entries name it, and its written end says
/// which of them its writes have made redundant.
pub struct JournalPartition {
    name: Box<[u8]>,
    /// Offsets below this are in the segment files.
    written_end: Cell<i64>,
    /// Deleted or failed: its entries are dropped from the ring.
    gone: Cell<bool>,
}

impl JournalPartition {
    /// The link for `tp`, whose log is written up to `written_end`.
    pub fn new(tp: &TopicPartition, written_end: i64) -> Rc<Self> {
        Rc::new(JournalPartition {
            name: tp.dir_name().into_bytes().into_boxed_slice(),
            written_end: Cell::new(written_end),
            gone: Cell::new(false),
        })
    }

    /// Records that the log's writes reach `end`: entries below it are freed.
    pub fn written(&self, end: i64) {
        self.written_end.set(self.written_end.get().max(end));
    }

    /// Records that the log was truncated to `end` (a follower's KIP-101 truncation): its writes
    /// reach no further now, so entries appended again below the old written end stay live
    /// until written.
    pub fn truncated(&self, end: i64) {
        self.written_end.set(self.written_end.get().min(end));
    }

    /// Frees the partition's entries without marking them removed: its log failed a write and
    /// takes no more, and a replay at the next start may still write them.
    pub fn abandon(&self) {
        self.gone.set(true);
    }
}

/// A live entry: in the ring until its batch is written.
struct LiveEntry {
    pos: usize,
    seq: u64,
    end_offset: i64,
    partition: Rc<JournalPartition>,
    /// Marked removed by a truncation: freed whatever its partition's written end.
    removed: bool,
}

/// Where the next entry goes, and what is live.
struct Ring {
    head: usize,
    next_seq: u64,
    live: VecDeque<LiveEntry>,
}

/// A shard's append journal (`!Send`, like the logs that use it).
pub struct AppendJournal {
    path: PathBuf,
    map: RefCell<MmapMut>,
    ring: RefCell<Ring>,
    metrics: Arc<ShardMetrics>,
}

/// The journal file of shard `shard` for `data_dir` (canonical) in `dir`.
fn journal_path(dir: &Path, data_dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("ringlog-{:016x}-{shard}.journal", fnv1a(data_dir.as_os_str().as_encoded_bytes())))
}

/// FNV-1a: a stable name for a data directory across runs and builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn tail_word(pos: usize, seq: u64) -> u64 {
    ((pos as u64) << 32) | (seq & 0xffff_ffff)
}

fn entry_crc(batch_len: u32, name: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&batch_len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c_append(crc, &(name.len() as u16).to_le_bytes()), name)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or_default())
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().unwrap_or_default())
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(buf[at..at + 2].try_into().unwrap_or_default())
}

impl AppendJournal {
    /// Creates shard `shard`'s journal of `bytes` in `dir` for `data_dir`, replacing any old one
    /// ([`replay`] has run by then). Its pages are touched here, not on the hot path.
    pub fn create(dir: &Path, data_dir: &Path, shard: usize, bytes: usize, metrics: Arc<ShardMetrics>) -> Result<Self, StorageError> {
        let data_dir = std::fs::canonicalize(data_dir)?;
        let dir_bytes = data_dir.as_os_str().as_encoded_bytes();
        if bytes < RING_START + MIN_BYTES || DIR_AT + dir_bytes.len() > RING_START || bytes > u32::MAX as usize {
            return Err(StorageError::Io(format!("cannot make a journal of {bytes} bytes for {}", data_dir.display())));
        }
        let path = journal_path(dir, &data_dir, shard);
        // Owner-only: the file holds record data, and /dev/shm is shared by every user.
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(&path)?;
        // Writing the zeros allocates the tmpfs pages now: a sparse file would fault them in on
        // the appends of the first lap, and a full tmpfs fails here rather than with SIGBUS there.
        file.write_all_at(&vec![0u8; bytes], 0)?;
        // SAFETY: the file is this shard's own (named by data directory and shard, and the data
        // directory is one broker's); nothing else maps or truncates it while the map lives.
        let mut map = unsafe { MmapMut::map_mut(&file)? };
        map[..8].copy_from_slice(MAGIC);
        map[DIR_LEN_AT..DIR_AT].copy_from_slice(&(dir_bytes.len() as u32).to_le_bytes());
        map[DIR_AT..DIR_AT + dir_bytes.len()].copy_from_slice(dir_bytes);
        map[TAIL_AT..TAIL_AT + 8].copy_from_slice(&tail_word(RING_START, 1).to_le_bytes());
        tracing::info!(path = %path.display(), bytes, "append journal ready");
        Ok(AppendJournal { path, map: RefCell::new(map), ring: RefCell::new(Ring { head: RING_START, next_seq: 1, live: VecDeque::new() }), metrics })
    }

    /// Copies `batch` (ending before `end_offset`) into the ring for `partition`. `false` when
    /// it does not fit: the ring is full of batches not yet written, and the caller makes this
    /// one visible only once it is written.
    pub fn record(&self, partition: &Rc<JournalPartition>, batch: &StampedBatch, end_offset: i64) -> bool {
        let mut ring = self.ring.borrow_mut();
        let mut map = self.map.borrow_mut();
        Self::reclaim(&mut ring, &mut map[..]);
        let need = align8(ENTRY_HEADER + partition.name.len() + batch.len());
        let Some(pos) = Self::place(&mut ring, &mut map[..], need) else {
            ShardMetrics::add(&self.metrics.journal_full, 1);
            return false;
        };
        let seq = ring.next_seq;
        let mut at = pos + ENTRY_HEADER;
        for part in std::iter::once(&partition.name[..]).chain(batch.parts().into_iter().map(|b| &b[..])) {
            map[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        let batch_len = batch.len() as u32;
        map[pos + BATCH_LEN_AT..][..4].copy_from_slice(&batch_len.to_le_bytes());
        map[pos + NAME_LEN_AT..][..2].copy_from_slice(&(partition.name.len() as u16).to_le_bytes());
        map[pos + FLAGS_AT..][..2].copy_from_slice(&0u16.to_le_bytes());
        map[pos + CRC_AT..][..4].copy_from_slice(&entry_crc(batch_len, &partition.name).to_le_bytes());
        // The sequence number commits the entry: a process killed before this store leaves an
        // entry that the walk does not reach. Only the compiler could reorder the stores; a
        // killed process's earlier stores are all in the shared pages.
        compiler_fence(Ordering::Release);
        map[pos + SEQ_AT..][..8].copy_from_slice(&seq.to_le_bytes());
        ring.live.push_back(LiveEntry { pos, seq, end_offset, partition: Rc::clone(partition), removed: false });
        ring.head = pos + need;
        ring.next_seq += 1;
        ShardMetrics::add(&self.metrics.journal_batches, 1);
        true
    }

    /// Frees the entries at the tail whose batches are written (or whose partition is gone).
    fn reclaim(ring: &mut Ring, map: &mut [u8]) {
        let mut freed = false;
        while ring.live.front().is_some_and(|e| e.removed || e.partition.gone.get() || e.partition.written_end.get() >= e.end_offset) {
            ring.live.pop_front();
            freed = true;
        }
        if freed {
            let word = match ring.live.front() {
                Some(e) => tail_word(e.pos, e.seq),
                None => {
                    // Empty: start the next entry at the ring's start, so it seldom wraps.
                    ring.head = RING_START;
                    tail_word(RING_START, ring.next_seq)
                }
            };
            map[TAIL_AT..TAIL_AT + 8].copy_from_slice(&word.to_le_bytes());
        }
    }

    /// Where an entry of `need` bytes goes, writing a wrap marker if it goes to the start;
    /// `None` when the live entries leave no room.
    fn place(ring: &mut Ring, map: &mut [u8], need: usize) -> Option<usize> {
        let end = map.len();
        let Some(tail) = ring.live.front().map(|e| e.pos) else {
            return (RING_START + need <= end).then_some(RING_START);
        };
        if ring.head < tail {
            // Wrapped: the free space runs from the head up to the tail.
            return (ring.head + need < tail).then_some(ring.head);
        }
        if ring.head + need <= end {
            return Some(ring.head);
        }
        if RING_START + need >= tail {
            return None;
        }
        if end - ring.head >= ENTRY_HEADER {
            let h = ring.head;
            map[h + BATCH_LEN_AT..][..4].copy_from_slice(&WRAP.to_le_bytes());
            compiler_fence(Ordering::Release);
            map[h + SEQ_AT..][..8].copy_from_slice(&ring.next_seq.to_le_bytes());
        }
        Some(RING_START)
    }

    /// Marks `partition`'s live entries removed, so a replay after a crash skips them (a topic
    /// deleted and created again must not get the old topic's batches), and frees them.
    pub fn forget(&self, partition: &Rc<JournalPartition>) {
        partition.gone.set(true);
        let ring = self.ring.borrow();
        let mut map = self.map.borrow_mut();
        for e in ring.live.iter().filter(|e| Rc::ptr_eq(&e.partition, partition)) {
            let flags = u16_at(&map, e.pos + FLAGS_AT) | REMOVED;
            map[e.pos + FLAGS_AT..][..2].copy_from_slice(&flags.to_le_bytes());
        }
    }

    /// Marks `partition`'s live entries that end past `offset` removed: a truncation cut them
    /// from the log, and a replay after a crash must not append them again (they would follow
    /// the truncated log end exactly). Also lowers the partition's written end to `offset`.
    pub fn forget_from(&self, partition: &Rc<JournalPartition>, offset: i64) {
        partition.truncated(offset);
        let mut ring = self.ring.borrow_mut();
        let mut map = self.map.borrow_mut();
        for e in ring.live.iter_mut().filter(|e| Rc::ptr_eq(&e.partition, partition) && e.end_offset > offset) {
            let flags = u16_at(&map, e.pos + FLAGS_AT) | REMOVED;
            map[e.pos + FLAGS_AT..][..2].copy_from_slice(&flags.to_le_bytes());
            e.removed = true;
        }
    }

    /// Deletes the journal file: the clean-shutdown path, once every partition is written.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the append journal");
        }
    }
}

/// One batch found in a journal, borrowed from the file's bytes.
struct JournalEntry<'a> {
    /// The partition's directory name.
    name: &'a [u8],
    batch: &'a [u8],
}

/// The data directory a journal file belongs to, from its header page; `None` if the file is not
/// a journal.
fn journal_owner(header: &[u8]) -> Option<PathBuf> {
    if header.len() < RING_START || &header[..8] != MAGIC {
        return None;
    }
    let dir_len = u32_at(header, DIR_LEN_AT) as usize;
    let dir = header.get(DIR_AT..DIR_AT + dir_len)?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir)))
}

/// A journal's committed, unremoved entries from the tail on, in order.
fn read_entries(buf: &[u8]) -> Vec<JournalEntry<'_>> {
    let mut entries = Vec::new();
    if buf.len() < RING_START + ENTRY_HEADER {
        return entries;
    }
    let tail = u64_at(buf, TAIL_AT);
    let mut pos = (tail >> 32) as usize;
    if !(RING_START..buf.len()).contains(&pos) {
        return entries;
    }
    let mut expected: Option<u64> = None;
    // Each step reads an entry or follows a wrap marker; a ring holds fewer entries than this.
    for _ in 0..buf.len() / 8 {
        if buf.len() - pos < ENTRY_HEADER {
            pos = RING_START;
        }
        let seq = u64_at(buf, pos + SEQ_AT);
        let follows = match expected {
            Some(e) => seq == e,
            None => seq & 0xffff_ffff == tail & 0xffff_ffff && seq != 0,
        };
        if !follows {
            break;
        }
        expected = Some(seq);
        let batch_len = u32_at(buf, pos + BATCH_LEN_AT);
        if batch_len == WRAP {
            pos = RING_START;
            continue;
        }
        let name_len = usize::from(u16_at(buf, pos + NAME_LEN_AT));
        let flags = u16_at(buf, pos + FLAGS_AT);
        let name_at = pos + ENTRY_HEADER;
        let batch_at = name_at + name_len;
        let Some(name) = buf.get(name_at..batch_at) else { break };
        let Some(batch) = buf.get(batch_at..batch_at + batch_len as usize) else { break };
        if u32_at(buf, pos + CRC_AT) != entry_crc(batch_len, name) {
            break;
        }
        if flags & REMOVED == 0 {
            entries.push(JournalEntry { name, batch });
        }
        pos = align8(batch_at + batch_len as usize);
        expected = Some(seq + 1);
    }
    entries
}

/// Before the shards start: appends to each partition's last segment the journaled batches that
/// a crashed process had not written, then deletes this data directory's journals. Journals of
/// data directories that no longer exist are deleted too (a test's broker, killed); other
/// brokers' journals are read no further than their header page.
pub fn replay(dir: &Path, data_dir: &Path) -> Result<(), StorageError> {
    let data_dir = std::fs::canonicalize(data_dir)?;
    let Ok(files) = std::fs::read_dir(dir) else { return Ok(()) };
    for file in files.filter_map(|f| f.ok()) {
        let name = file.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("ringlog-") || !name.ends_with(".journal") {
            continue;
        }
        let path = file.path();
        let mut header = vec![0u8; RING_START];
        let owner = std::fs::File::open(&path).and_then(|f| f.read_exact_at(&mut header, 0)).ok().and_then(|()| journal_owner(&header));
        let Some(owner) = owner else { continue };
        if owner != data_dir {
            if !owner.exists() {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let Ok(buf) = std::fs::read(&path) else { continue };
        let mut by_partition: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
        for e in read_entries(&buf) {
            by_partition.entry(e.name).or_default().push(e.batch);
        }
        for (partition, batches) in by_partition {
            replay_partition(&data_dir.join(std::ffi::OsStr::from_bytes(partition)), &batches)?;
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// Appends to the partition in `dir` the batches that start at its log end, in order. Batches
/// before the log end were written; one past it means a gap, and nothing after it is appended.
fn replay_partition(dir: &Path, batches: &[&[u8]]) -> Result<(), StorageError> {
    // A partition whose directory is gone (its topic deleted) has nothing to take them.
    let bases = if dir.is_dir() { segment::base_offsets(dir)? } else { Vec::new() };
    let Some(&base) = bases.last() else {
        tracing::warn!(dir = %dir.display(), batches = batches.len(), "append journal names a partition with no segment; skipped");
        return Ok(());
    };
    let path = dir.join(format!("{}.log", segment::file_stem(base)));
    let mut end = base;
    let scan = segment::scan_log(&path, 0, true, |h, _, _| end = h.last_offset() + 1)?;
    let file = std::fs::OpenOptions::new().write(true).open(&path)?;
    file.set_len(scan.valid_len)?;
    let (mut at, mut replayed) = (scan.valid_len, 0usize);
    for b in batches {
        let Some(h) = BatchHeader::parse(b) else { break };
        if h.base_offset < end {
            continue;
        }
        if h.base_offset > end || batch::validate(b).is_err() {
            tracing::warn!(dir = %dir.display(), log_end_offset = end, batch_offset = h.base_offset,
                "append journal batch does not follow the log; the rest of it is dropped");
            break;
        }
        file.write_all_at(b, at)?;
        at += b.len() as u64;
        end = h.last_offset() + 1;
        replayed += 1;
    }
    if replayed > 0 {
        file.sync_all()?;
        tracing::warn!(dir = %dir.display(), batches = replayed, log_end_offset = end,
            "appended batches the crashed broker had not written, from its append journal");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{stamp, testing::make_batch};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringlog-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn batch_at(offset: i64, value: &[u8]) -> StampedBatch {
        stamp(&make_batch(&[value], offset, -1, -1), offset, 0, None)
    }

    #[test]
    fn ring_frees_written_batches_wraps_and_reads_back_only_what_is_live() {
        let dir = temp_dir("ring");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let metrics = Arc::new(ShardMetrics::new());
        let j = AppendJournal::create(&dir, &data, 0, RING_START + MIN_BYTES, Arc::clone(&metrics)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&j.path).unwrap().permissions().mode() & 0o777, 0o600, "record data: owner only");
        let p = JournalPartition::new(&TopicPartition::new("t", 0), 0);
        let value = vec![7u8; 6000];
        // Ten entries of ~6 KiB fill most of the 64 KiB ring; the eleventh does not fit.
        for i in 0..10 {
            assert!(j.record(&p, &batch_at(i, &value), i + 1), "entry {i}");
        }
        assert!(!j.record(&p, &batch_at(10, &value), 11), "a full ring refuses");
        assert_eq!(metrics.journal_full.load(Ordering::Relaxed), 1);
        // Writes up to offset 4 free the first four; the next entries wrap to the ring's start.
        p.written(4);
        for i in 10..13 {
            assert!(j.record(&p, &batch_at(i, &value), i + 1), "entry {i} after the wrap");
        }
        let file = std::fs::read(&j.path).unwrap();
        assert_eq!(journal_owner(&file[..RING_START]), Some(std::fs::canonicalize(&data).unwrap()));
        let entries = read_entries(&file);
        let offsets: Vec<i64> = entries.iter().map(|e| BatchHeader::parse(e.batch).unwrap().base_offset).collect();
        assert_eq!(offsets, (4..13).collect::<Vec<_>>(), "the live entries, in order, across the wrap");
        assert!(entries.iter().all(|e| e.name == b"t-0" && batch::validate(e.batch).is_ok()));

        // An entry whose sequence number was never stored (a crash mid-copy) ends the walk.
        let mut torn = std::fs::read(&j.path).unwrap();
        let last = j.ring.borrow().live.back().unwrap().pos;
        torn[last + SEQ_AT..][..8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(read_entries(&torn).len(), 8);

        // Everything written: the tail moves to the head and nothing is read back.
        p.written(13);
        let q = JournalPartition::new(&TopicPartition::new("t", 1), 0);
        assert!(j.record(&q, &batch_at(0, b"x"), 1));
        j.forget(&q);
        assert!(read_entries(&std::fs::read(&j.path).unwrap()).is_empty(), "removed entries are skipped");
        j.remove();
        assert!(!j.path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncation_removes_the_cut_entries_and_keeps_batches_appended_again_live() {
        let dir = temp_dir("truncate");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let j = AppendJournal::create(&dir, &data, 0, RING_START + MIN_BYTES, Arc::new(ShardMetrics::new())).unwrap();
        let p = JournalPartition::new(&TopicPartition::new("t", 0), 0);
        for i in 0..4 {
            assert!(j.record(&p, &batch_at(i, b"old"), i + 1));
        }
        let offsets = |j: &AppendJournal| -> Vec<(i64, Vec<u8>)> {
            read_entries(&std::fs::read(&j.path).unwrap())
                .iter()
                .map(|e| (BatchHeader::parse(e.batch).unwrap().base_offset, e.batch[e.batch.len() - 4..e.batch.len() - 1].to_vec()))
                .collect()
        };
        // Written up to 4, then cut at 2: a replay must not bring 2 and 3 back.
        p.written(4);
        j.forget_from(&p, 2);
        assert_eq!(offsets(&j), vec![(0, b"old".to_vec()), (1, b"old".to_vec())]);
        // Offset 2 appended again: not written yet, so it stays live past the next reclaim.
        assert!(j.record(&p, &batch_at(2, b"new"), 3));
        let q = JournalPartition::new(&TopicPartition::new("t", 1), 0);
        assert!(j.record(&q, &batch_at(0, b"qqq"), 1));
        assert_eq!(offsets(&j), vec![(2, b"new".to_vec()), (0, b"qqq".to_vec())], "written and removed entries freed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replay_appends_what_the_log_lacks_and_deletes_the_journal() {
        let dir = temp_dir("replay");
        let data = dir.join("data");
        let part = data.join("t-0");
        std::fs::create_dir_all(&part).unwrap();
        // On disk: offsets 0 and 1, then the zeros of a page-padded write.
        let log = part.join(format!("{}.log", segment::file_stem(0)));
        let on_disk = [batch_at(0, b"a").to_bytes(), batch_at(1, b"b").to_bytes()].concat();
        std::fs::write(&log, [on_disk.clone(), vec![0u8; 100]].concat()).unwrap();
        let j = AppendJournal::create(&dir, &data, 0, RING_START + MIN_BYTES, Arc::new(ShardMetrics::new())).unwrap();
        let p = JournalPartition::new(&TopicPartition::new("t", 0), 0);
        for (i, v) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            assert!(j.record(&p, &batch_at(i as i64, *v), i as i64 + 1));
        }
        // A journal of a data directory that is gone is deleted; one of another live one is kept.
        let ours = std::fs::read(&j.path).unwrap();
        let owned_by = |owner: &[u8]| {
            let mut copy = ours.clone();
            copy[DIR_LEN_AT..DIR_AT].copy_from_slice(&(owner.len() as u32).to_le_bytes());
            copy[DIR_AT..DIR_AT + owner.len()].copy_from_slice(owner);
            copy
        };
        let gone = journal_path(&dir, Path::new("/nonexistent/ringlog"), 0);
        std::fs::write(&gone, owned_by(b"/nonexistent/ringlog")).unwrap();
        let kept = journal_path(&dir, Path::new("/tmp"), 0);
        std::fs::write(&kept, owned_by(b"/tmp")).unwrap();

        replay(&dir, &data).unwrap();
        let mut seen = Vec::new();
        let scan = segment::scan_log(&log, 0, true, |h, _, _| seen.push(h.base_offset)).unwrap();
        assert_eq!(seen, vec![0, 1, 2, 3], "offsets 2 and 3 appended once, after the written ones");
        assert_eq!(scan.trailing, 0, "the padding was cut before the append");
        assert!(!j.path.exists() && !gone.exists(), "ours and the orphan are deleted");
        assert!(kept.exists(), "another live data directory's journal is left alone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
