//! The `ringlog` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ringlog", version, about = "A Kafka-compatible, thread-per-core streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (single node; data in ./data by default).
    Serve(ServeArgs),
}

/// `ringlog serve`'s flags.
#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the first Kafka listener (default: the config's `listeners`, else
    /// PLAINTEXT://127.0.0.1:9092); other listeners keep theirs.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port that clients of the first listener are told to connect to (default: the
    /// config's `advertised.listeners`, else the listener's own address).
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Directory of the partition logs and metadata.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards, one per core (default: all cores).
    #[arg(long)]
    cores: Option<usize>,
    /// TOML file of Kafka-named broker configs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// One broker config as KEY=VALUE, over the --config file (repeatable), as Kafka's
    /// `kafka-server-start.sh --override`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Admin HTTP listener for /metrics and /health ("off" to disable).
    #[arg(long, default_value = "127.0.0.1:9644")]
    admin_listen: String,
}

/// `RUST_LOG`, else `info`. openraft logs every vote and state change at info, several lines
/// per event and with its own formatting: it is held at warn unless `RUST_LOG` names it.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let directives = if wanted.contains("openraft") { wanted } else { format!("{wanted},openraft=warn") };
    tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"))
}

fn main() {
    keep_freed_buffers_mapped();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = broker_config(args).unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(2);
            });
            if let Err(e) = ringlog::server::run(cfg) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// The broker's config: the built-in defaults, then the --config file, then each --override, then
/// the flags, each winning over what came before.
fn broker_config(args: ServeArgs) -> Result<ringlog::config::BrokerConfig, String> {
    let mut cfg = ringlog::config::BrokerConfig::new(SocketAddr::from(([127, 0, 0, 1], 9092)));
    if let Some(path) = &args.config {
        cfg.apply_file(path).map_err(|e| e.to_string())?;
    }
    for pair in &args.overrides {
        cfg.apply_override(pair).map_err(|e| e.to_string())?;
    }
    if let Some(addr) = args.listen {
        cfg.set_listen(addr);
    }
    if let Some(advertised) = &args.advertised_listener {
        cfg.apply_key("advertised.listeners", advertised).map_err(|e| e.to_string())?;
    }
    if let Some(dir) = args.data_dir {
        cfg.data_dir = dir;
    }
    if let Some(n) = args.cores {
        cfg.cores = n;
    }
    cfg.admin_listen = match args.admin_listen.as_str() {
        "off" => None,
        addr => Some(addr.parse().map_err(|_| format!("--admin-listen {addr:?} is not host:port or \"off\""))?),
    };
    Ok(cfg)
}

/// Direct-I/O read buffers (a megabyte each for catch-up fetches) come from malloc. By default
/// glibc hands such blocks back to the kernel on free, so every read faults in and zeroes fresh
/// pages: that was 13% of the broker's CPU in a catch-up profile. Raising the mmap and trim
/// thresholds keeps freed buffers in the heap for reuse.
fn keep_freed_buffers_mapped() {
    // SAFETY: mallopt only changes allocator tunables; it is called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
