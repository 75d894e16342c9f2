//! Cold consumer reads, two ways side by side (issue 4): which one should serve fetches of data
//! that is no longer in the batch cache?
//!
//! - **A, DMA read + socket write**: in a glommio `LocalExecutor` (the broker's shape),
//!   `DmaFile::read_at` in 1 MiB chunks with `COLD_READ_DEPTHS` reads in flight (default `4,16`,
//!   one run each; `futures` `buffered`, so they stay in order), and `glommio::net::TcpStream`
//!   `write_all` straight from each `ReadResult` (no user-space copy; the kernel copies into the
//!   socket). O_DIRECT: the page cache is never involved.
//! - **B, io_uring splice**: on a ring of our own (the `io-uring` crate), file → pipe
//!   (`SPLICE_F_MOVE`, pipe grown to 1 MiB with `F_SETPIPE_SZ` when allowed) linked with
//!   (`IO_LINK`) pipe → socket, one chain per 1 MiB, to a `std::net::TcpStream`. This is buffered
//!   I/O: the file is read through the page cache, so before each run the cache is emptied
//!   (`fsync`, `posix_fadvise(DONTNEED)`, and `echo 1 > /proc/sys/vm/drop_caches` when writable),
//!   and `mincore` reports how much of the file was still resident.
//!
//! Both send to a drain thread on 127.0.0.1 that reads into a 1 MiB buffer and discards. The
//! sender runs on core 0 and the drain on core 1. The data file (`COLD_READ_MB` MiB, default 2048)
//! is written once to a temp dir under `$TMPDIR` (default `/tmp`, which must be a real disk). Each
//! method runs `COLD_READ_REPS` times (default 3), alternating, and prints MB/s (10^6 bytes/s,
//! from the first byte read until the drain has received the last), CPU seconds per GB
//! (getrusage), and at the end the median of each method. CPU is split as: the whole process =
//! the drain thread + the sender, and the sender = its own thread + the rest (io_uring's io-wq
//! workers, which run the splices). Loopback TCP's receive processing is charged to whichever
//! thread sent. The drain's copy to user space is the first CPU touch of B's data (A's sender
//! already copied it into the socket, so it is cache-warm for the drain): a remote consumer
//! behind a NIC would not pay that on the broker, so compare the sender columns. Run with:
//!
//! ```sh
//! cargo bench --bench cold_read
//! COLD_READ_MB=512 COLD_READ_REPS=1 cargo bench --bench cold_read   # quicker
//! COLD_READ_SNDBUF=4194304 cargo bench --bench cold_read              # a fixed socket send buffer
//! COLD_READ_DMA_ONLY=1 cargo bench --bench cold_read                   # also DMA reads without a socket
//! ```

mod common;

use common::{check_real_disk, env_or};

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::{AsyncWriteExt, StreamExt};
use glommio::io::{DmaFile, ReadResult};
use glommio::{LocalExecutorBuilder, Placement};
use io_uring::{IoUring, opcode, squeue, types};
use ringlog::storage::prime_dma_probe;

const CHUNK: usize = 1 << 20;
const SENDER_CORE: usize = 0;
const DRAIN_CORE: usize = 1;


/// User + system CPU time, in seconds, of the process (`RUSAGE_SELF`) or the calling thread
/// (`RUSAGE_THREAD`).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Sets SO_SNDBUF on the sending socket when `COLD_READ_SNDBUF` (bytes) is given; the kernel's
/// default (autotuned) otherwise. Applied to both methods alike.
fn set_sndbuf(fd: std::os::fd::RawFd) {
    let Some(bytes) = std::env::var("COLD_READ_SNDBUF").ok().and_then(|v| v.parse::<libc::c_int>().ok()) else { return };
    // SAFETY: setsockopt reads one c_int from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, (&bytes as *const libc::c_int).cast(), size_of::<libc::c_int>() as libc::socklen_t)
    };
    assert_eq!(rc, 0, "setsockopt SO_SNDBUF");
}

fn pin(core: usize) {
    assert!(core_affinity::set_for_current(core_affinity::CoreId { id: core }), "cannot pin to core {core}");
}

/// Writes `bytes` of pseudo-random data (so nothing below us can compress or dedupe it) and syncs.
fn write_data_file(path: &Path, bytes: u64) {
    let mut block = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut f = File::create(path).expect("create data file");
    let mut written = 0u64;
    while written < bytes {
        for word in block.chunks_exact_mut(8) {
            // xorshift64: cheap, and every block differs.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_ne_bytes());
        }
        let n = block.len().min((bytes - written) as usize);
        f.write_all(&block[..n]).expect("write data file");
        written += n as u64;
    }
    f.sync_all().expect("fsync data file");
}

/// Empties the page cache of `path` (and, when we may, of the whole machine). Returns whether the
/// global drop worked.
fn make_cold(path: &Path) -> bool {
    let f = File::open(path).expect("open data file");
    f.sync_all().expect("fsync");
    // SAFETY: a valid fd; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
    std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok()
}

/// Percentage of the file's pages in the page cache, by `mincore`.
fn resident_percent(path: &Path) -> f64 {
    let f = File::open(path).expect("open data file");
    let len = f.metadata().expect("stat").len() as usize;
    // SAFETY: a read-only shared mapping of a file we keep open for the call; unmapped below.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert!(addr != libc::MAP_FAILED, "mmap");
    let page = 4096usize;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr..addr+len` is our mapping and `vec` has one byte per page.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore");
    // SAFETY: unmapping exactly what we mapped.
    unsafe { libc::munmap(addr, len) };
    let resident = vec.iter().filter(|b| **b & 1 != 0).count();
    100.0 * resident as f64 / vec.len() as f64
}

/// What the drain saw: bytes received, in how many reads, when the last arrived, and its own
/// CPU seconds.
struct Drained {
    bytes: u64,
    reads: u64,
    finished: Instant,
    cpu: f64,
}

/// Accepts one connection and reads it to EOF, discarding.
fn spawn_drain() -> (SocketAddr, JoinHandle<Drained>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind drain");
    let addr = listener.local_addr().expect("drain addr");
    let handle = std::thread::spawn(move || {
        pin(DRAIN_CORE);
        let (mut conn, _) = listener.accept().expect("accept");
        let cpu0 = cpu_seconds(libc::RUSAGE_THREAD);
        let mut buf = vec![0u8; CHUNK];
        let (mut bytes, mut reads) = (0u64, 0u64);
        loop {
            match conn.read(&mut buf).expect("drain read") {
                0 => break,
                n => {
                    bytes += n as u64;
                    reads += 1;
                }
            }
        }
        Drained { bytes, reads, finished: Instant::now(), cpu: cpu_seconds(libc::RUSAGE_THREAD) - cpu0 }
    });
    (addr, handle)
}

/// One run's figures.
struct Run {
    bytes: u64,
    drain_reads: u64,
    elapsed: Duration,
    process_cpu: f64,
    drain_cpu: f64,
    /// CPU of the thread that reads and sends (not its io-wq workers).
    sender_thread_cpu: f64,
}

impl Run {
    /// A run from what the drain saw and the sender's clock and CPU at its start.
    fn new(d: Drained, started: Instant, process_cpu0: f64, sender_thread_cpu: f64) -> Run {
        Run {
            bytes: d.bytes,
            drain_reads: d.reads,
            elapsed: d.finished - started,
            process_cpu: cpu_seconds(libc::RUSAGE_SELF) - process_cpu0,
            drain_cpu: d.cpu,
            sender_thread_cpu,
        }
    }
}

/// The sender's executor, shaped like a broker shard (small `io_memory`: RLIMIT_MEMLOCK is 8 MiB).
fn sender_executor(name: &str) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Fixed(SENDER_CORE)).name(name).io_memory(512 * 1024).ring_depth(128)
}

/// The file in `CHUNK` reads, `depth` in flight, in order.
fn dma_reads(file: &DmaFile, size: u64, depth: usize) -> impl futures::Stream<Item = glommio::Result<ReadResult, ()>> + '_ {
    let chunks = size.div_ceil(CHUNK as u64);
    futures::stream::iter(0..chunks).map(move |i| file.read_at(i * CHUNK as u64, CHUNK)).buffered(depth)
}

/// Method A: DMA reads, `depth` in flight, each written to a glommio socket from its own buffer.
fn run_dma(dir: &Path, path: &Path, size: u64, depth: usize) -> Run {
    let (addr, drain) = spawn_drain();
    let (dir, path) = (dir.to_path_buf(), path.to_path_buf());
    let (started, cpu0, thread_cpu) = sender_executor("cold-read-dma")
        .spawn(move || async move {
            // glommio 0.9 decides polled I/O from the first DMA file a thread opens on a disk:
            // open a non-empty one first, as every broker shard does.
            prime_dma_probe(&dir).await.expect("prime dma probe");
            let file = DmaFile::open(&path).await.expect("open data file");
            let mut stream = glommio::net::TcpStream::connect(addr).await.expect("connect");
            set_sndbuf(stream.as_raw_fd());
            let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
            let thread0 = cpu_seconds(libc::RUSAGE_THREAD);
            let started = Instant::now();
            let mut reads = dma_reads(&file, size, depth);
            while let Some(read) = reads.next().await {
                let read = read.expect("dma read");
                stream.write_all(&read).await.expect("socket write");
            }
            drop(reads);
            stream.close().await.expect("close socket");
            file.close().await.expect("close file");
            (started, cpu0, cpu_seconds(libc::RUSAGE_THREAD) - thread0)
        })
        .expect("start executor")
        .join()
        .expect("executor");
    Run::new(drain.join().expect("drain thread"), started, cpu0, thread_cpu)
}

/// Method A without the socket: DMA reads only, to tell the disk's share of A's time from the
/// socket's (`COLD_READ_DMA_ONLY=1`). Returns MB/s.
fn run_dma_read_only(dir: &Path, path: &Path, size: u64, depth: usize) -> f64 {
    let (dir, path) = (dir.to_path_buf(), path.to_path_buf());
    sender_executor("cold-read-dma-only")
        .spawn(move || async move {
            prime_dma_probe(&dir).await.expect("prime dma probe");
            let file = DmaFile::open(&path).await.expect("open data file");
            let started = Instant::now();
            let mut total = 0u64;
            let mut reads = dma_reads(&file, size, depth);
            while let Some(read) = reads.next().await {
                total += read.expect("dma read").len() as u64;
            }
            let secs = started.elapsed().as_secs_f64();
            drop(reads);
            file.close().await.expect("close file");
            total as f64 / secs / 1e6
        })
        .expect("start executor")
        .join()
        .expect("executor")
}

/// A pipe, grown to `CHUNK` bytes when the kernel lets us. Returns (read end, write end, size).
fn make_pipe() -> (File, File, usize) {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a pipe we own. The kernel may refuse (pipe-max-size): keep its size then.
    let grown = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    // SAFETY: as above.
    let current = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
    let size = if grown > 0 { grown as usize } else { current as usize };
    (r, w, size)
}

/// Method B: splice file -> pipe -> socket on a ring of our own.
fn run_splice(path: &Path, size: u64) -> (Run, usize) {
    let (addr, drain) = spawn_drain();
    let path = path.to_path_buf();
    let sender = std::thread::spawn(move || {
        pin(SENDER_CORE);
        let file = File::open(&path).expect("open data file");
        let sock = TcpStream::connect(addr).expect("connect");
        set_sndbuf(sock.as_raw_fd());
        let (pipe_r, pipe_w, pipe_size) = make_pipe();
        let mut ring = IoUring::new(8).expect("io_uring");
        let (file_fd, sock_fd) = (types::Fd(file.as_raw_fd()), types::Fd(sock.as_raw_fd()));
        let (pr, pw) = (types::Fd(pipe_r.as_raw_fd()), types::Fd(pipe_w.as_raw_fd()));
        let flags = libc::SPLICE_F_MOVE;

        // Submits `entries` and returns their results, in user_data order.
        let mut run_chain = |entries: &[squeue::Entry]| -> Vec<i32> {
            for e in entries {
                // SAFETY: every fd in the entries outlives the wait below; splice has no buffers.
                unsafe { ring.submission().push(e).expect("submission queue full") };
            }
            ring.submit_and_wait(entries.len()).expect("submit");
            let mut results = vec![0i32; entries.len()];
            let mut seen = 0;
            while seen < entries.len() {
                for cqe in ring.completion() {
                    results[cqe.user_data() as usize] = cqe.result();
                    seen += 1;
                }
                if seen < entries.len() {
                    ring.submit_and_wait(entries.len() - seen).expect("wait");
                }
            }
            results
        };

        let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
        let thread0 = cpu_seconds(libc::RUSAGE_THREAD);
        let started = Instant::now();
        let mut offset = 0u64;
        while offset < size {
            let len = (pipe_size as u64).min(size - offset) as u32;
            let to_pipe = opcode::Splice::new(file_fd, offset as i64, pw, -1, len).flags(flags).build().flags(squeue::Flags::IO_LINK).user_data(0);
            let to_sock = opcode::Splice::new(pr, -1, sock_fd, -1, len).flags(flags).build().user_data(1);
            let r = run_chain(&[to_pipe, to_sock]);
            assert!(r[0] > 0, "splice file -> pipe: {}", std::io::Error::from_raw_os_error(-r[0]));
            let mut in_pipe = r[0] as u32;
            offset += u64::from(in_pipe);
            // A short first splice cancels the linked one (-ECANCELED); a short second one leaves
            // bytes behind. Either way, empty the pipe before the next chain.
            if r[1] >= 0 {
                in_pipe -= r[1] as u32;
            } else {
                assert_eq!(-r[1], libc::ECANCELED, "splice pipe -> socket: {}", std::io::Error::from_raw_os_error(-r[1]));
            }
            while in_pipe > 0 {
                let rest = opcode::Splice::new(pr, -1, sock_fd, -1, in_pipe).flags(flags).build().user_data(0);
                let r = run_chain(&[rest]);
                assert!(r[0] > 0, "splice pipe -> socket: {}", std::io::Error::from_raw_os_error(-r[0]));
                in_pipe -= r[0] as u32;
            }
        }
        sock.shutdown(std::net::Shutdown::Write).expect("shutdown");
        (started, cpu0, cpu_seconds(libc::RUSAGE_THREAD) - thread0, pipe_size)
    });
    let (started, cpu0, thread_cpu, pipe_size) = sender.join().expect("splice thread");
    (Run::new(drain.join().expect("drain thread"), started, cpu0, thread_cpu), pipe_size)
}

fn report(name: &str, rep: usize, run: &Run, size: u64, extra: &str) -> (f64, f64) {
    assert_eq!(run.bytes, size, "{name}: the drain received {} of {size} bytes", run.bytes);
    let secs = run.elapsed.as_secs_f64();
    let gb = run.bytes as f64 / 1e9;
    println!(
        "{name:<22} rep {rep}: {:>7.1} MB/s  cpu s/GB: process {:.3} = drain {:.3} + sender {:.3} (its thread {:.3}, io-wq/other {:.3}); drain reads avg {:.0} KiB  {extra}",
        run.bytes as f64 / secs / 1e6,
        run.process_cpu / gb,
        run.drain_cpu / gb,
        (run.process_cpu - run.drain_cpu) / gb,
        run.sender_thread_cpu / gb,
        (run.process_cpu - run.drain_cpu - run.sender_thread_cpu) / gb,
        run.bytes as f64 / run.drain_reads.max(1) as f64 / 1024.0,
    );
    (run.bytes as f64 / secs / 1e6, (run.process_cpu - run.drain_cpu) / gb)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let size_mb: u64 = env_or("COLD_READ_MB", 2048);
    let reps: usize = env_or("COLD_READ_REPS", 3);
    // Reads in flight for method A; each listed depth is a run of its own.
    let depths: Vec<usize> = std::env::var("COLD_READ_DEPTHS")
        .unwrap_or_else(|_| "4,16".into())
        .split(',')
        .map(|d| d.trim().parse().expect("COLD_READ_DEPTHS: comma-separated numbers"))
        .collect();
    let size = size_mb << 20;
    let dir: PathBuf = std::env::temp_dir().join(format!("ringlog-bench-cold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    check_real_disk(&dir);
    let path = dir.join("data.bin");
    let t = Instant::now();
    write_data_file(&path, size);
    println!(
        "cold_read: {size_mb} MiB file {} written in {:.1} s; {CHUNK} B chunks, DMA depths {depths:?}, {reps} reps; sender on core {SENDER_CORE}, drain on core {DRAIN_CORE}",
        path.display(),
        t.elapsed().as_secs_f64()
    );

    // Per method: (MB/s, sender CPU s/GB) of every rep, for the medians at the end.
    let mut results: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut keep = |name: String, figures: (f64, f64)| match results.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(figures),
        None => results.push((name, vec![figures])),
    };
    for rep in 1..=reps {
        for &depth in &depths {
            let dropped = make_cold(&path);
            let resident = resident_percent(&path);
            let run = run_dma(&dir, &path, size, depth);
            let name = format!("A dma+write depth {depth}");
            let figures = report(&name, rep, &run, size, &format!("(resident before {resident:.1}%, drop_caches {dropped})"));
            keep(name, figures);
        }

        let dropped = make_cold(&path);
        let resident = resident_percent(&path);
        let (run, pipe_size) = run_splice(&path, size);
        if std::env::var("COLD_READ_DMA_ONLY").is_ok_and(|v| v == "1") {
            for &depth in &depths {
                make_cold(&path);
                println!("A0 dma read only depth {depth} rep {rep}: {:>7.1} MB/s", run_dma_read_only(&dir, &path, size, depth));
            }
        }
        let name = "B uring splice".to_string();
        let figures = report(&name, rep, &run, size, &format!("(resident before {resident:.1}%, drop_caches {dropped}, pipe {pipe_size} B)"));
        keep(name, figures);
    }
    for (name, runs) in &results {
        let mut rates: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let mut cpus: Vec<f64> = runs.iter().map(|r| r.1).collect();
        println!("median {name:<22}: {:>7.1} MB/s  sender cpu {:.3} s/GB", median(&mut rates), median(&mut cpus));
    }
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
