//! Shared by the Rust integration tests: start the real `ringlog` binary on a free port.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker process, killed when dropped.
pub struct Broker {
    child: Child,
    /// Its Kafka port.
    pub port: u16,
    dir: PathBuf,
    config: String,
}

/// The broker's log, appended across restarts (kept with its data for a failed test).
fn log_file(dir: &Path) -> Stdio {
    match std::fs::OpenOptions::new().create(true).append(true).open(dir.join("broker.log")) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

impl Broker {
    /// Starts a 2-shard broker with data in `dir` and `config` (TOML, Kafka key names).
    pub fn start(port: u16, dir: &Path, config: &str) -> Broker {
        std::fs::create_dir_all(dir).expect("data dir");
        let config_path = dir.join("broker.toml");
        std::fs::write(&config_path, config).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_ringlog"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--cores", "2", "--data-dir"])
            .arg(dir)
            .arg("--config")
            .arg(&config_path)
            .stderr(log_file(dir))
            .spawn()
            .expect("start broker");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port, dir: dir.to_owned(), config: config.to_owned() }
    }

    /// Starts a broker on a free port with a new, empty data directory named after `name`.
    pub fn start_fresh(name: &str, config: &str) -> Broker {
        let dir = std::env::temp_dir().join(format!("ringlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Broker::start(free_port(), &dir, config)
    }

    /// The broker's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the broker with SIGTERM (a clean stop flushes and syncs) and starts it again.
    pub fn restart(mut self) -> Broker {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let (port, dir, config) = (self.port, self.dir.clone(), self.config.clone());
        std::mem::forget(self);
        Broker::start(port, &dir, &config)
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `payload(i)` to partition `i % partitions` for every `i` in `range`, then waits until all
/// are acknowledged; fails the test if the producer stays stuck for a minute.
pub fn produce_all(
    producer: &rdkafka::producer::BaseProducer,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<usize>,
    payload: impl Fn(usize) -> String,
) {
    use rdkafka::producer::{BaseRecord, Producer};
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in range {
        let value = payload(i);
        let partition = (i % partitions as usize) as i32;
        loop {
            let rec = BaseRecord::<(), _>::to(topic).payload(&value).partition(partition);
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(Instant::now() < deadline, "producer stuck: {e}");
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(producer.in_flight_count(), 0, "every record acknowledged");
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
