//! The cleaner's I/O: reading a segment's batches in bounded chunks, writing a cleaned segment
//! with direct I/O, and the `log.cleaner.io.max.bytes.per.second` throttle. Every chunk is
//! followed by a yield, so the shard's produce and fetch work runs between them.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::DmaFile;

use crate::storage::StorageError;
use crate::storage::SyncRounds;
use crate::storage::batch::{BatchHeader, HEADER_LEN};

/// Direct I/O page size.
const PAGE: usize = 4096;

/// Limits the cleaner's reads plus writes to a byte rate, as Kafka's `Throttler`: after each
/// chunk it sleeps for as long as the bytes so far run ahead of the rate.
pub struct Throttle {
    bytes_per_second: f64,
    start: Instant,
    bytes: f64,
    /// When the cleaner last let the shard's other task queues run.
    last_yield: Instant,
    /// The shard's sync rounds: with no configured bound, the cleaner still slows to
    /// [`RATE_WHILE_PRODUCING`] while appends are being synced on its shard.
    producing: Option<Rc<SyncRounds>>,
}

/// The cleaner's I/O rate while its shard syncs appends and `log.cleaner.io.max.bytes.per.second`
/// sets no bound (Kafka's default). Kafka's cleaner has threads of its own; here it shares the
/// produce path's core and disk queue: unbounded it more than doubled the shard's produce p99
/// while it compacted 2 GiB, at 50 MB/s p99 was still +60 %, at 20 MB/s +17–18 % (perf/RESULTS.md).
/// An idle shard's cleaner runs at full speed.
pub const RATE_WHILE_PRODUCING: f64 = 20e6;

/// A configured rate at or above this is no bound.
const NO_BOUND: f64 = 1e300;

/// How recent a sync must be for the shard to count as producing.
const PRODUCING_WINDOW: Duration = Duration::from_millis(100);

/// CPU time the cleaner may run before it lets the shard's other task queues run. glommio
/// preempts a queue only every 100 ms by default, far too late for produce latency.
const SLICE: Duration = Duration::from_micros(500);

impl Throttle {
    /// A throttle at `bytes_per_second` (infinite or non-positive: none).
    pub fn new(bytes_per_second: f64) -> Self {
        Throttle { bytes_per_second, start: Instant::now(), bytes: 0.0, last_yield: Instant::now(), producing: None }
    }

    /// Slows the cleaner to [`RATE_WHILE_PRODUCING`] while `rounds` (its shard's syncs) show
    /// appends, when no rate is configured.
    pub fn with_produce_signal(mut self, rounds: Rc<SyncRounds>) -> Self {
        self.producing = Some(rounds);
        self
    }

    /// Lets the shard's other task queues run when the cleaner has run for a time slice: called
    /// after each batch.
    pub async fn pace(&mut self) {
        if self.last_yield.elapsed() >= SLICE {
            glommio::executor().yield_task_queue_now().await;
            self.last_yield = Instant::now();
        }
    }

    /// Accounts for `n` bytes of I/O, sleeping when over the rate, and yields to the shard's
    /// other tasks in any case.
    pub async fn io(&mut self, n: usize) {
        self.bytes += n as f64;
        // Kafka's default is Double.MAX_VALUE (divided among the shards here): no bound.
        let bounded = self.bytes_per_second > 0.0 && self.bytes_per_second < NO_BOUND;
        if !bounded && self.producing.as_ref().is_some_and(|rounds| rounds.synced_within(PRODUCING_WINDOW)) {
            // Each chunk waits its share of the produce-time rate (no window: the switch between
            // paced and unpaced must not bank a burst or owe a debt).
            glommio::timer::sleep(Duration::from_secs_f64(n as f64 / RATE_WHILE_PRODUCING)).await;
        }
        if bounded {
            let due = Duration::from_secs_f64(self.bytes / self.bytes_per_second);
            let spent = self.start.elapsed();
            if due > spent {
                glommio::timer::sleep(due - spent).await;
            }
            // A window of a few seconds, so an idle spell does not bank a burst.
            if spent > Duration::from_secs(5) {
                self.start = Instant::now();
                self.bytes = 0.0;
            }
        }
        glommio::executor().yield_task_queue_now().await;
        self.last_yield = Instant::now();
    }
}

/// Reads the whole batches of one segment, in order, `chunk` bytes at a time.
pub struct BatchReader {
    file: Rc<DmaFile>,
    /// The segment's logical size: bytes of whole batches.
    end: u64,
    pos: u64,
    chunk: usize,
    buf: Bytes,
    /// File position of `buf[0]`.
    buf_start: u64,
}

impl BatchReader {
    /// A reader of `file` up to `end`, reading at least `chunk` bytes at a time.
    pub fn new(file: Rc<DmaFile>, end: u64, chunk: usize) -> Self {
        BatchReader { file, end, pos: 0, chunk: chunk.max(64 * 1024), buf: Bytes::new(), buf_start: 0 }
    }

    /// The next whole batch, its header and its bytes; `None` at the end (or at bytes that are
    /// not a batch, which recovery would have cut). `io` counts the bytes read.
    pub async fn next(&mut self, io: &mut Throttle) -> Result<Option<(BatchHeader, Bytes)>, StorageError> {
        if self.pos + HEADER_LEN as u64 > self.end {
            return Ok(None);
        }
        let head = self.bytes(self.pos, HEADER_LEN, io).await?;
        let Some(h) = BatchHeader::parse(&head) else { return Ok(None) };
        if !h.stored_within(self.pos, self.end) {
            return Ok(None);
        }
        let batch = self.bytes(self.pos, h.total_len(), io).await?;
        self.pos += h.total_len() as u64;
        Ok(Some((h, batch)))
    }

    /// `len` bytes at `pos`, from the buffer or a new read of at least a chunk.
    async fn bytes(&mut self, pos: u64, len: usize, io: &mut Throttle) -> Result<Bytes, StorageError> {
        let in_buf = pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let want = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
            let read = self.file.read_at(pos, want).await?;
            if read.len() < len {
                return Err(StorageError::Io(format!("short read: {} of {len} bytes at {pos}", read.len())));
            }
            self.buf = Bytes::copy_from_slice(&read);
            self.buf_start = pos;
            io.io(want).await;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(self.buf.slice(at..at + len))
    }
}

/// Writes a cleaned segment file front to back with direct I/O, `chunk` bytes at a time.
pub struct CleanedWriter {
    file: Rc<DmaFile>,
    pending: Vec<u8>,
    /// File position of `pending[0]` (page aligned).
    flushed: u64,
    chunk: usize,
}

impl CleanedWriter {
    /// A writer into the empty `file`.
    pub fn new(file: Rc<DmaFile>, chunk: usize) -> Self {
        CleanedWriter { file, pending: Vec::new(), flushed: 0, chunk: chunk.max(64 * 1024) / PAGE * PAGE }
    }

    /// Bytes written so far (the position of the next batch).
    pub fn position(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    /// Appends one batch.
    pub async fn push(&mut self, batch: &[u8], io: &mut Throttle) -> Result<(), StorageError> {
        self.pending.extend_from_slice(batch);
        if self.pending.len() >= self.chunk {
            let whole = self.pending.len() / PAGE * PAGE;
            self.write(whole, io).await?;
        }
        Ok(())
    }

    /// Writes the first `len` pending bytes (a page multiple, or all with zero padding).
    async fn write(&mut self, len: usize, io: &mut Throttle) -> Result<(), StorageError> {
        let padded = len.div_ceil(PAGE) * PAGE;
        let mut buf = self.file.alloc_dma_buffer(padded);
        let dst = buf.as_bytes_mut();
        dst[..len].copy_from_slice(&self.pending[..len]);
        dst[len..].fill(0);
        let written = self.file.write_at(buf, self.flushed).await?;
        if written < padded {
            return Err(StorageError::Io(format!("short write: {written} of {padded} bytes")));
        }
        self.pending.drain(..len);
        self.flushed += len as u64;
        io.io(padded).await;
        Ok(())
    }

    /// Writes what is left, cuts the file to its logical size and syncs it; returns the size.
    pub async fn finish(mut self, io: &mut Throttle) -> Result<u64, StorageError> {
        let size = self.position();
        if !self.pending.is_empty() {
            let len = self.pending.len();
            self.write(len, io).await?;
        }
        self.file.truncate(size).await?;
        self.file.fdatasync().await?;
        Ok(size)
    }
}
