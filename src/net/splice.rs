//! Zero-copy sends of segment-file ranges: file → pipe → socket with `splice`, on an io_uring of
//! this shard's own.
//!
//! glommio's sockets offer no sendfile or splice, and they are in blocking mode, so a `splice`
//! into one from the executor thread would block whenever the socket is full (`SPLICE_F_NONBLOCK`
//! only covers the pipe). Each shard therefore submits `IORING_OP_SPLICE` to a private ring, where
//! the kernel waits for the disk and for socket space, and one blocking-pool thread per shard
//! waits for its completions. Page-cache pages go to the socket by reference: the record bytes
//! are never copied in user space, and the sender's CPU per byte is about a third of a DMA read
//! plus `sendmsg` (`benches/cold_read.rs`). But the pages must first be read into the page cache,
//! and in the broker, on this VM, that fill cost more than the copy saved: a catch-up from disk
//! was 30-80% slower (perf/RESULTS.md, session 10). So this path runs only with
//! `cold_read_splice = true`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use futures::channel::oneshot;
use io_uring::{IoUring, opcode, types};

use crate::storage::reader::FileSlice;

/// Submission queue entries. Each op is submitted as soon as it is queued, so the queue never
/// holds more than one; ops in flight are bounded by the completion queue (twice this), which the
/// kernel lets overflow into its own list rather than drop.
const RING_ENTRIES: u32 = 256;
/// Pipe capacity asked for (the default unprivileged maximum); each send moves this much per round.
const PIPE_BYTES: usize = 1 << 20;
/// How long one blocking send into a full socket may wait before its op completes and is retried:
/// it bounds how long a dropped connection's in-flight op keeps its resources.
const SEND_TIMEOUT_MS: i64 = 500;
/// How long the reaper's blocking wait lasts before it looks again (so shutdown never hangs on it).
const REAP_WAIT_MS: i64 = 100;

/// The descriptors one send uses. Held by every op in flight, so that the kernel never sees a
/// closed (or reused) descriptor number, even if the connection is dropped mid-send.
struct SpliceJob {
    pipe_read: OwnedFd,
    pipe_write: OwnedFd,
    /// A duplicate of the connection's socket.
    socket: OwnedFd,
    _file: Rc<std::fs::File>,
}

impl SpliceJob {
    fn new(socket: RawFd, file: &Rc<std::fs::File>) -> io::Result<SpliceJob> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`, which we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (pipe_read, pipe_write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Best effort: a smaller pipe only means more rounds.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(pipe_write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as libc::c_int) };
        // SAFETY: dup of a descriptor the caller keeps open for the duration of this call.
        let dup = unsafe { libc::fcntl(socket, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor that we own.
        let socket = unsafe { OwnedFd::from_raw_fd(dup) };
        // A blocking send gives up after this long. Only blocking sends see it: glommio's own
        // io_uring sends and our MSG_DONTWAIT sendmsg never wait in the socket.
        let timeout = libc::timeval { tv_sec: 0, tv_usec: (SEND_TIMEOUT_MS * 1000) as libc::suseconds_t };
        // SAFETY: setsockopt with a timeval of the size we pass.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SpliceJob { pipe_read, pipe_write, socket, _file: Rc::clone(file) })
    }
}

/// An op in flight: its job's descriptors, and who waits for its result.
struct InFlight {
    _job: Rc<SpliceJob>,
    done: oneshot::Sender<i32>,
}

/// This shard's splice ring. `!Send`: each shard has its own.
pub struct SpliceRing {
    ring: RefCell<IoUring>,
    in_flight: RefCell<HashMap<u64, InFlight>>,
    next_id: Cell<u64>,
    /// Whether the reaper task is running.
    reaping: Cell<bool>,
}

impl SpliceRing {
    /// A ring for this shard, or an error where io_uring splice is unavailable (the caller then
    /// reads with DMA instead).
    pub fn new() -> io::Result<Rc<SpliceRing>> {
        Ok(Rc::new(SpliceRing {
            ring: RefCell::new(IoUring::new(RING_ENTRIES)?),
            in_flight: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
            reaping: Cell::new(false),
        }))
    }

    /// Sends `slice` of its file to `socket`, all of it.
    pub async fn send(self: &Rc<Self>, socket: RawFd, slice: &FileSlice) -> io::Result<()> {
        let job = Rc::new(SpliceJob::new(socket, &slice.file)?);
        let (mut pos, mut left) = (slice.pos, slice.len);
        while left > 0 {
            let want = left.min(PIPE_BYTES) as u32;
            let fill = opcode::Splice::new(
                types::Fd(slice.file.as_raw_fd()),
                pos as i64,
                types::Fd(job.pipe_write.as_raw_fd()),
                -1,
                want,
            );
            let n = self.op(&job, fill.build()).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file ended inside a fetch range"));
            }
            let mut moved = 0;
            while moved < n {
                // More of this range follows: let TCP fill its segments.
                let more = if left > n { libc::SPLICE_F_MORE } else { 0 };
                let drain = opcode::Splice::new(
                    types::Fd(job.pipe_read.as_raw_fd()),
                    -1,
                    types::Fd(job.socket.as_raw_fd()),
                    -1,
                    (n - moved) as u32,
                )
                .flags(more);
                match self.op(&job, drain.build()).await {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => moved += m,
                    // SO_SNDTIMEO ran out with the socket still full: wait again.
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                        tracing::debug!(sent = slice.len - left + moved, of = slice.len, "splice waits for the socket");
                    }
                    Err(e) => return Err(e),
                }
            }
            pos += n as u64;
            left -= n;
        }
        Ok(())
    }

    /// Submits one op and waits for its result.
    async fn op(self: &Rc<Self>, job: &Rc<SpliceJob>, entry: io_uring::squeue::Entry) -> io::Result<usize> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (done, result) = oneshot::channel();
        {
            let mut ring = self.ring.borrow_mut();
            // SAFETY: the descriptors in `entry` belong to `job`, which `in_flight` keeps alive
            // until the completion is reaped.
            if unsafe { ring.submission().push(&entry.user_data(id)) }.is_err() {
                return Err(io::Error::other("splice ring full"));
            }
            // Registered before the submit: a queued entry reaches the kernel with whichever
            // submit comes next, so its descriptors must stay open until it completes, even if
            // this submit fails.
            self.in_flight.borrow_mut().insert(id, InFlight { _job: Rc::clone(job), done });
            Self::submit(&mut ring);
        }
        self.start_reaper();
        let res = result.await.map_err(|_| io::Error::other("splice ring closed"))?;
        if res < 0 { Err(io::Error::from_raw_os_error(-res)) } else { Ok(res as usize) }
    }

    /// Runs the reaper unless it runs: it answers completed ops, and while any op is in flight,
    /// waits for the next completion on a blocking-pool thread.
    fn start_reaper(self: &Rc<Self>) {
        if self.reaping.replace(true) {
            return;
        }
        let this = Rc::clone(self);
        glommio::spawn_local(async move {
            loop {
                Self::submit(&mut this.ring.borrow_mut());
                this.reap();
                if this.in_flight.borrow().is_empty() {
                    break;
                }
                let fd = this.ring.borrow().as_raw_fd();
                glommio::executor().spawn_blocking(move || wait_for_completion(fd)).await;
            }
            this.reaping.set(false);
        })
        .detach();
    }

    /// Hands queued entries to the kernel. A failure leaves them queued for the reaper's next try.
    fn submit(ring: &mut IoUring) {
        if ring.submission().is_empty() {
            return;
        }
        if let Err(e) = ring.submit() {
            tracing::warn!(error = %e, "splice submit failed; retrying");
        }
    }

    /// Answers every op whose completion is in the ring.
    fn reap(&self) {
        let mut ring = self.ring.borrow_mut();
        let mut in_flight = self.in_flight.borrow_mut();
        for cqe in ring.completion() {
            if let Some(op) = in_flight.remove(&cqe.user_data()) {
                let _ = op.done.send(cqe.result());
            }
        }
    }
}

/// Blocks until the ring at `fd` has a completion, or [`REAP_WAIT_MS`] pass.
fn wait_for_completion(fd: RawFd) {
    /// `struct io_uring_getevents_arg`.
    #[repr(C)]
    struct GeteventsArg {
        sigmask: u64,
        sigmask_sz: u32,
        min_wait_usec: u32,
        ts: u64,
    }
    /// `struct __kernel_timespec`.
    #[repr(C)]
    struct KernelTimespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    const IORING_ENTER_GETEVENTS: u32 = 1;
    const IORING_ENTER_EXT_ARG: u32 = 8;
    let ts = KernelTimespec { tv_sec: 0, tv_nsec: REAP_WAIT_MS * 1_000_000 };
    let arg = GeteventsArg { sigmask: 0, sigmask_sz: 0, min_wait_usec: 0, ts: &ts as *const KernelTimespec as u64 };
    // SAFETY: io_uring_enter only reads `arg` and `ts`, which outlive the call; the ring stays
    // open because the reaper holds it while this runs. Timeouts and EINTR just end the wait.
    unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            0u32,
            1u32,
            IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
            &arg as *const GeteventsArg,
            std::mem::size_of::<GeteventsArg>(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn sends_a_file_range_to_a_socket() {
        crate::storage::testing::run(|dir| async move {
            let path = dir.join("segment.log");
            let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let receiver = std::thread::spawn(move || {
                let (mut peer, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                peer.read_to_end(&mut got).unwrap();
                got
            });
            let socket = std::net::TcpStream::connect(addr).unwrap();
            let ring = SpliceRing::new().unwrap();
            // More than two pipe loads, from an odd position.
            let slice = FileSlice { file: Rc::new(std::fs::File::open(&path).unwrap()), pos: 12_345, len: 2_500_000 };
            ring.send(socket.as_raw_fd(), &slice).await.unwrap();
            drop(socket);
            let got = receiver.join().unwrap();
            assert_eq!(got.len(), slice.len);
            assert!(got == data[12_345..12_345 + 2_500_000], "the bytes arrive as they are in the file");
            assert!(ring.in_flight.borrow().is_empty(), "every op was reaped");
        });
    }
}
