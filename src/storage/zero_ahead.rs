//! Zeros written ahead of the appender, so that appends overwrite blocks the file already has.
//!
//! An append that grows the file makes ext4 log the new size: the O_DIRECT write takes a journal
//! handle (and io_uring hands it to a worker thread), and the next fdatasync must commit the
//! journal as well as flush the data. An append below the file's end does neither. fallocate does
//! not help: ext4 must convert its unwritten extents on the first write, which is journalled too,
//! and this kernel's `FALLOC_FL_WRITE_ZEROES` needs a device that can zero blocks itself (this
//! VM's virtio disk cannot). So a background task writes real zeros, a chunk at a time, beyond
//! the active segment's data.
//!
//! Zeros cost disk bandwidth: every byte is written twice. So the task runs only while the
//! partition's write runs are small, which is when a sync's latency, not the disk's bandwidth,
//! is what a producer waits for. At full throughput the runs are large and files grow as before.
//! Recovery needs nothing: trailing zeros read as the end of the log and are truncated.

use std::ops::Range;

/// Bytes of zeros written in one O_DIRECT write: one journalled size change per chunk of appends.
pub const CHUNK: u64 = 1 << 20;
/// A new chunk is written once fewer than this many zeroed bytes remain beyond the data.
pub const LOW_WATER: u64 = 256 << 10;
/// A write run up to this size counts as small (see the module doc). Throughput runs carry at
/// least one 128 KiB batch per partition; a run at a quarter of the max rate is about 10 KiB.
pub const SMALL_RUN: u64 = 64 << 10;
/// Direct I/O page size.
const PAGE: u64 = 4096;

/// A partition's zero-ahead state. The file offsets are those of the active segment.
#[derive(Debug, Default)]
pub struct ZeroAhead {
    /// The zero write in flight, if any: a data write that reaches into it waits for it.
    pub in_flight: Option<Range<u64>>,
    /// Bytes of the active segment's last write run; `None` before its first run.
    last_run: Option<u64>,
    /// Set after a zero write failed (a full disk, say), and once the segment is cut to its data
    /// (roll, close). Appends then grow the file as they would without zeros.
    pub disabled: bool,
}

impl ZeroAhead {
    /// Records a write run of `len` bytes.
    pub fn note_run(&mut self, len: u64) {
        self.last_run = Some(len);
    }

    /// The next chunk to zero, for a segment with `size` bytes of data and `written_end` bytes
    /// of the file written (data, page padding and zeros), or `None` when none is wanted now.
    pub fn next_chunk(&self, size: u64, written_end: u64) -> Option<Range<u64>> {
        let small = self.last_run.is_some_and(|len| len <= SMALL_RUN);
        if self.disabled || self.in_flight.is_some() || !small || written_end >= size + LOW_WATER {
            return None;
        }
        let from = written_end.next_multiple_of(PAGE);
        Some(from..from + CHUNK)
    }

    /// Whether a data write of `range` must wait for the zero write in flight.
    pub fn blocks(&self, range: &Range<u64>) -> bool {
        self.in_flight.as_ref().is_some_and(|z| z.start < range.end && range.start < z.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_only_behind_small_runs_and_below_the_low_water_mark() {
        let mut z = ZeroAhead::default();
        assert_eq!(z.next_chunk(100, 4096), None, "no run yet: an idle segment gets no zeros");
        z.note_run(SMALL_RUN + 1);
        assert_eq!(z.next_chunk(100, 4096), None, "a large run: the disk's bandwidth matters");
        z.note_run(10_000);
        assert_eq!(z.next_chunk(100, 4096), Some(4096..4096 + CHUNK));
        assert_eq!(z.next_chunk(100, 100 + LOW_WATER), None, "enough zeros ahead");
        assert_eq!(z.next_chunk(100, 4097), Some(8192..8192 + CHUNK), "chunks start on a page");
        z.in_flight = Some(4096..4096 + CHUNK);
        assert_eq!(z.next_chunk(100, 4096), None, "one zero write at a time");
        assert!(z.blocks(&(0..4097)));
        assert!(!z.blocks(&(0..4096)));
        z.in_flight = None;
        z.disabled = true;
        assert_eq!(z.next_chunk(100, 4096), None);
    }
}
