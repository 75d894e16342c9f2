//! Start-up and shutdown: one pinned glommio executor per core, each with its own listener,
//! owner state, mesh inbox and housekeeping loop.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};

use crate::config::{BrokerConfig, Listener, ListenerError};
use crate::cluster::controller::{Controller, QuorumRole};
use crate::cluster::state_machine::AppliedObserver;
use crate::metadata::{
    BrokerEndpoint, BrokerRegistration, ClusterSnapshot, MetadataBootstrap, MetadataError, MetadataMutation, SnapshotHandle,
};
use crate::shard::control::{MetadataWriter, publish_metadata};
use crate::metrics::Metrics;
use crate::net::splice::SpliceRing;
use crate::router::{Envelope, MESH_CAPACITY};
use crate::shard::{Router, Shard};
use crate::storage::prime_dma_probe;
use crate::types::ShardId;

/// Errors that stop the broker from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Data directory problem.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The cluster settings ask for what this build does not serve.
    #[error("{0}")]
    Cluster(#[from] crate::config::ClusterConfigError),
    /// The metadata cannot be loaded or the start-up changes cannot be made durable.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// glommio could not start the executors.
    #[error("runtime: {0}")]
    Runtime(String),
    /// Another process listens on one of the broker's listener addresses.
    #[error("listener {listener}: cannot listen on {addr}: {error}")]
    AddressInUse {
        /// The listener's name.
        listener: String,
        /// The address.
        addr: std::net::SocketAddr,
        /// What the probe bind said.
        error: std::io::Error,
    },
    /// A listener cannot be served (a protocol not supported yet, a name missing from the map, ...).
    #[error("{0}")]
    Listener(#[from] ListenerError),
}

/// Fails when another process keeps accepting connections on `addr`. The shards bind with
/// SO_REUSEPORT, which would otherwise let a second broker share the port (and split clients
/// between two data directories) without a word.
///
/// It connects rather than binds, because a plain bind is also refused by the TIME_WAIT sockets
/// a restarted broker leaves behind. And it tries for up to 2 s: a broker that has just exited
/// still accepts for a few milliseconds, because its io_uring instance, which holds the listening
/// socket, is torn down after the process is gone.
fn ensure_address_free(addr: std::net::SocketAddr) -> Result<(), std::io::Error> {
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    for _ in 0..20 {
        if std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(500)).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "address already in use: another process accepts connections there",
    ))
}

/// Set when SIGTERM or SIGINT arrives: shards flush, sync and stop.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// A shard closes its read handle on a segment file after this long unused, so deleted
/// segments free their space soon.
const SEGMENT_FILE_IDLE: Duration = Duration::from_secs(10);

/// Runs the broker until SIGTERM/SIGINT, then flushes and syncs every partition.
pub fn run(config: BrokerConfig) -> Result<(), ServerError> {
    config.cluster.check(config.node_id)?;
    // The controller listener carries the quorum's RPCs, not Kafka's protocol.
    let (controller_listeners, listeners): (Vec<Listener>, Vec<Listener>) = config
        .listeners
        .resolve()?
        .into_iter()
        .partition(|l| config.cluster.controller_listener_names.contains(&l.name));
    config.cluster.check_listeners(listeners.iter().map(|l| l.name.as_str()))?;
    let listeners: Arc<[Arc<Listener>]> = listeners.into_iter().map(Arc::new).collect();
    for listener in listeners.iter() {
        ensure_address_free(listener.bind).map_err(|error| ServerError::AddressInUse {
            listener: listener.name.clone(),
            addr: listener.bind,
            error,
        })?;
    }
    std::fs::create_dir_all(&config.data_dir)?;
    if let Some(dir) = &config.append_journal_dir {
        // Before any shard opens a partition: what a crashed broker journaled but never wrote.
        crate::storage::journal::replay(dir, &config.data_dir).map_err(|e| ServerError::Runtime(format!("append journal replay: {e}")))?;
    }
    // A controller-only node serves no Kafka listener and hosts no partition: one shard runs its
    // controller. `cores` stays as configured, since the active controller places partitions
    // on its brokers' shards by it.
    let cores = if config.cluster.is_controller_only() { 1 } else { config.cores.max(1) };
    let (metadata, store, cluster) = if config.cluster.is_multi_node(config.node_id) {
        let (bind, role) = quorum_bind(&config, &controller_listeners, &listeners)?;
        if bind.port() != 0 {
            ensure_address_free(bind).map_err(|error| ServerError::AddressInUse { listener: "CONTROLLER".into(), addr: bind, error })?;
        }
        // The image starts empty: the quorum's snapshot and log rebuild it on shard 0.
        let metadata: SnapshotHandle = Arc::new(arc_swap::ArcSwap::from_pointee(ClusterSnapshot::empty(cluster_id(&config))));
        let registration = config.cluster.roles.broker.then(|| registration(&config, &listeners));
        let start = ClusterStart { bind, role, registration };
        (metadata, Arc::new(Mutex::new(None)), Some(start))
    } else {
        let mut store = MetadataBootstrap::load(&config.data_dir, cores, config.node_id)?;
        ensure_offsets_topic(&mut store, &config)?;
        ensure_txn_state_topic(&mut store, &config)?;
        register_broker(&mut store, &config, &listeners)?;
        (store.handle(), Arc::new(Mutex::new(Some(store))), None)
    };
    let config = Arc::new(config);
    let mesh = MeshBuilder::<Envelope<Shard>, _>::full(cores, MESH_CAPACITY);
    let metrics = Arc::new(Metrics::new(cores));

    block_stop_signals();
    let handles = LocalExecutorPoolBuilder::new(shard_placement(cores))
        .io_memory(config.io_memory)
        .ring_depth(128)
        .name("ringlog-shard")
        .on_all_shards({
            let config = Arc::clone(&config);
            let listeners = Arc::clone(&listeners);
            move || async move {
                if let Err(e) = shard_main(config, listeners, metadata, store, cluster, mesh, metrics).await {
                    tracing::error!(error = %e, "shard failed");
                    std::process::exit(1);
                }
            }
        })
        .map_err(|e| ServerError::Runtime(e.to_string()))?;
    let listen = listeners.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",");
    tracing::info!(listen = %listen, shards = cores, data_dir = %config.data_dir.display(), "broker ready");
    wait_for_stop_signal();
    SHUTDOWN.store(true, Ordering::SeqCst);
    for r in handles.join_all() {
        if let Err(e) = r {
            tracing::error!(error = %e, "shard thread ended with an error");
        }
    }
    tracing::info!("broker stopped cleanly");
    Ok(())
}

/// Spreads the shards over the CPUs this process may run on, so `taskset -c 0-3 ringlog serve`
/// keeps the broker on those four and leaves the rest to clients. glommio's own spread looks at
/// every online CPU and would pin shards outside the mask.
fn shard_placement(cores: usize) -> PoolPlacement {
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let cpus = CpuSet::online().map(|set| set.filter(|l| allowed.contains(&l.cpu)));
    match cpus {
        Ok(set) if !set.is_empty() => {
            tracing::info!(shards = cores, cpus = ?allowed, "shards placed within the process's CPU mask");
            PoolPlacement::MaxSpread(cores, Some(set))
        }
        _ => PoolPlacement::MaxSpread(cores, None),
    }
}

/// Creates `__consumer_offsets` (compacted, `offsets.topic.num.partitions`) on first start.
fn ensure_offsets_topic(store: &mut MetadataBootstrap, config: &BrokerConfig) -> Result<(), MetadataError> {
    if store.handle().load().topics.contains_key(crate::group::OFFSETS_TOPIC) {
        return Ok(());
    }
    let created = store.apply(
        MetadataMutation::create_offsets_topic(config.group.offsets_topic_partitions, 1, config.group.offsets_topic_segment_bytes),
        &config.topic_defaults,
    )?;
    tracing::info!(partitions = created.topic.map_or(0, |t| t.partitions.len()), "created __consumer_offsets");
    Ok(())
}

/// Creates `__transaction_state` (compacted, `transaction.state.log.*`) on first start.
fn ensure_txn_state_topic(store: &mut MetadataBootstrap, config: &BrokerConfig) -> Result<(), MetadataError> {
    if store.handle().load().topics.contains_key(crate::txn::TXN_STATE_TOPIC) {
        return Ok(());
    }
    let t = &config.txn;
    let m = MetadataMutation::create_txn_state_topic(t.state_log_partitions, 1, config.txn_state_min_isr(1), t.state_log_segment_bytes);
    let created = store.apply(m, &config.topic_defaults)?;
    tracing::info!(partitions = created.topic.map_or(0, |t| t.partitions.len()), "created __transaction_state");
    Ok(())
}

/// What shard 0 of a cluster node needs to start its controller.
#[derive(Clone)]
struct ClusterStart {
    /// Where the controller RPCs are served.
    bind: std::net::SocketAddr,
    /// Voter or learner.
    role: QuorumRole,
    /// This broker's registration (a new incarnation id); none on a controller-only node.
    registration: Option<BrokerRegistration>,
}

/// Where this node serves the quorum's RPCs, and how it takes part. A voter: as
/// [`controller_bind`]. A broker-only node (a learner): its controller listener when `listeners`
/// has one (Kafka refuses one on a broker, but its brokers pull the log while openraft pushes
/// it), else an ephemeral port on the inter-broker listener's address, which it announces when
/// it asks to be added.
fn quorum_bind(
    config: &BrokerConfig,
    controller_listeners: &[Listener],
    listeners: &[Arc<Listener>],
) -> Result<(std::net::SocketAddr, QuorumRole), ServerError> {
    if !config.cluster.is_broker_only() {
        return Ok((controller_bind(config, controller_listeners)?, QuorumRole::Voter));
    }
    if let Some(l) = controller_listeners.first() {
        let role = QuorumRole::Learner { advertised_host: l.advertised_host.clone(), advertised_port: Some(l.advertised_port) };
        return Ok((l.bind, role));
    }
    let inter_broker = config.cluster.inter_broker_listener_name.as_ref();
    let l = listeners
        .iter()
        .find(|l| inter_broker == Some(&l.name))
        .or_else(|| listeners.first())
        .ok_or_else(|| ServerError::Runtime("process.roles=broker: no listener to serve the quorum's log on".into()))?;
    let role = QuorumRole::Learner { advertised_host: l.advertised_host.clone(), advertised_port: None };
    Ok((std::net::SocketAddr::new(l.bind.ip(), 0), role))
}

/// Where this node serves the quorum's RPCs: its controller listener when `listeners` has one,
/// else its own entry of `controller.quorum.voters`.
fn controller_bind(config: &BrokerConfig, controller_listeners: &[Listener]) -> Result<std::net::SocketAddr, ServerError> {
    if let Some(l) = controller_listeners.first() {
        return Ok(l.bind);
    }
    let voter = config.cluster.own_voter(config.node_id).ok_or_else(|| ServerError::Runtime("this node is not a voter".into()))?;
    let address = format!("{}:{}", voter.host, voter.port);
    std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServerError::Runtime(format!("controller.quorum.voters: cannot resolve {address}")))
}

/// The cluster id every node of a quorum derives alike from its voters (Kafka's comes from
/// `kafka-storage format`; Ringlog needs no format step). A broker that knows the quorum by
/// bootstrap servers only corrects it once it learns the voters (`cluster::controller`).
fn cluster_id(config: &BrokerConfig) -> String {
    crate::config::ClusterConfig::cluster_id_of(config.cluster.voters.iter().map(|v| (v.id, format!("{}:{}", v.host, v.port))))
}

/// This broker's registration: one endpoint per listener (its advertised address), and a new
/// incarnation id.
fn registration(config: &BrokerConfig, listeners: &[Arc<Listener>]) -> BrokerRegistration {
    BrokerRegistration {
        broker_id: config.node_id,
        incarnation_id: uuid::Uuid::new_v4(),
        endpoints: listeners
            .iter()
            .map(|l| BrokerEndpoint {
                listener: l.name.clone(),
                host: l.advertised_host.clone(),
                port: l.advertised_port,
                security_protocol: l.security_protocol.name().into(),
            })
            .collect(),
        rack: None,
    }
}

/// Registers this broker as `node.id` with one endpoint per listener (its advertised address),
/// and a new incarnation id.
///
/// A data directory whose metadata registers other brokers but not this `node.id` is refused, as
/// Kafka refuses a `meta.properties` of another node: its partitions name the old id as leader,
/// so clients would be sent to a broker that is not there. (Single node: a cluster's brokers
/// will all be registered in the same metadata.)
fn register_broker(store: &mut MetadataBootstrap, config: &BrokerConfig, listeners: &[Arc<Listener>]) -> Result<(), MetadataError> {
    let registered: Vec<i32> = store.handle().load().brokers.keys().copied().collect();
    if !registered.is_empty() && !registered.contains(&config.node_id) {
        return Err(MetadataError::InvalidConfig {
            reason: format!(
                "node.id {} does not match the data directory, which belongs to broker(s) {registered:?}",
                config.node_id
            ),
        });
    }
    let registration = registration(config, listeners);
    let incarnation_id = registration.incarnation_id;
    let endpoints = listeners.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",");
    store.apply(MetadataMutation::RegisterBroker(registration), &config.topic_defaults)?;
    tracing::info!(broker_id = config.node_id, %incarnation_id, endpoints = %endpoints, "broker registered");
    Ok(())
}

async fn shard_main(
    config: Arc<BrokerConfig>,
    listeners: Arc<[Arc<Listener>]>,
    metadata: SnapshotHandle,
    store: Arc<Mutex<Option<MetadataBootstrap>>>,
    cluster: Option<ClusterStart>,
    mesh: MeshBuilder<Envelope<Shard>, glommio::channels::channel_mesh::Full>,
    metrics: Arc<Metrics>,
) -> Result<(), ServerError> {
    prime_dma_probe(&config.data_dir).await.map_err(|e| ServerError::Runtime(e.to_string()))?;
    let (senders, receivers) = mesh.join().await.map_err(|_| ServerError::Runtime("mesh join failed".into()))?;
    let me = ShardId(senders.peer_id());
    let bootstrap = if me.0 == 0 { store.lock().ok().and_then(|mut s| s.take()) } else { None };
    let mut applied_changes = None;
    let writer = match (bootstrap, &cluster) {
        (Some(b), _) => Some(MetadataWriter::Local(Box::new(b.start().await?))),
        (None, Some(start)) if me.0 == 0 => {
            // A controller-only node hosts no replica: nothing acts on applied changes there.
            let observer: AppliedObserver = match start.registration {
                Some(_) => {
                    let (tx, rx) = futures::channel::mpsc::unbounded();
                    applied_changes = Some(rx);
                    Rc::new(move |old, new, _index| {
                        let _ = tx.unbounded_send((Arc::clone(old), Arc::clone(new)));
                    })
                }
                None => Rc::new(|_, _, _| {}),
            };
            let listener = crate::net::bind_listener(start.bind, false).map_err(|e| ServerError::Runtime(format!("controller listener {}: {e}", start.bind)))?;
            let controller = Controller::start(Arc::clone(&config), Arc::clone(&metadata), listener, observer, start.role.clone())
                .await
                .map_err(|e| ServerError::Runtime(e.to_string()))?;
            if let Some(registration) = &start.registration {
                glommio::spawn_local(Rc::clone(&controller).run_broker(registration.clone())).detach();
            }
            Some(MetadataWriter::Quorum(controller))
        }
        _ => None,
    };
    let shard_metrics = Arc::clone(&metrics.shards[me.0]);
    let splice = match config.cold_read_splice.then(SpliceRing::new) {
        Some(Ok(ring)) => Some(ring),
        Some(Err(e)) => {
            tracing::warn!(shard = me.0, error = %e, "no io_uring splice: cold reads use DMA reads");
            None
        }
        None => None,
    };
    let owner = Rc::new(Shard::new(
        me,
        Arc::clone(&config),
        Arc::clone(&metadata),
        writer,
        Arc::clone(&shard_metrics),
        splice.is_some(),
    ));
    owner.open_owned().await.map_err(|e| ServerError::Runtime(e.to_string()))?;
    owner.spawn_cleaner(|| SHUTDOWN.load(Ordering::SeqCst));
    let unanswering = config.fault_injection_unanswered_shard == Some(me.0);
    let router = Rc::new(Router::new(Rc::clone(&owner), senders, shard_metrics, unanswering));
    glommio::spawn_local(Rc::clone(&router).serve_inbox(receivers)).detach();
    glommio::spawn_local(crate::shard::txns::drive_txns(Rc::clone(&router))).detach();
    if let Some(applied) = applied_changes {
        let incarnation = cluster.as_ref().and_then(|c| c.registration.as_ref()).map(|r| r.incarnation_id).unwrap_or_default();
        glommio::spawn_local(publish_metadata(Rc::clone(&router), applied, incarnation)).detach();
    }

    // Every shard binds every listener (SO_REUSEPORT): the kernel spreads each one's clients.
    for listener in listeners.iter() {
        let socket = crate::net::bind_listener(listener.bind, true)
            .map_err(|e| ServerError::Runtime(format!("listener {}: cannot listen on {}: {e}", listener.name, listener.bind)))?;
        tracing::info!(shard = %me, listener = %listener.name, listen = %listener.bind, "shard listening");
        glommio::spawn_local(crate::net::serve_listener(socket, Arc::clone(listener), Rc::clone(&router), splice.clone())).detach();
    }
    metrics.shards_listening.fetch_add(1, Ordering::Release);
    if let (0, Some(addr)) = (me.0, config.admin_listen) {
        // A busy admin port must not stop the broker: metrics are an aid, not a dependency.
        match ensure_address_free(addr).and_then(|()| crate::net::bind_listener(addr, false)) {
            Ok(admin) => {
                tracing::info!(listen = %addr, "admin listener (/metrics, /health)");
                glommio::spawn_local(crate::metrics::http::serve(admin, Arc::clone(&metrics))).detach();
            }
            Err(e) => tracing::warn!(listen = %addr, error = %e, "admin listener not started"),
        }
    }

    // Housekeeping: the flush.ms policy every second, retention every retention check interval.
    let tick = Duration::from_millis(100);
    let retention_every = (config.retention_check_interval_ms / 100).max(1);
    let mut ticks: u64 = 0;
    while !SHUTDOWN.load(Ordering::SeqCst) {
        glommio::timer::sleep(tick).await;
        ticks += 1;
        owner.groups.tick(&*owner).await;
        owner.replication_tick(&router);
        if ticks.is_multiple_of(10) {
            owner.segment_files.expire_idle(SEGMENT_FILE_IDLE);
            for log in owner.all_logs() {
                log.request_timed_sync();
            }
        }
        if ticks.is_multiple_of(retention_every) {
            owner.housekeeping();
        }
    }
    let mut all_closed = true;
    for log in owner.all_logs() {
        if let Err(e) = log.close().await {
            all_closed = false;
            tracing::error!(partition = %log.tp, error = %e, "flush at shutdown failed");
        }
    }
    if let Some(journal) = owner.journal.as_ref().filter(|_| all_closed) {
        journal.remove();
    }
    tracing::info!(shard = %me, "shard stopped");
    Ok(())
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks SIGTERM/SIGINT in this thread before the shards start, so they inherit the mask and
/// only [`wait_for_stop_signal`] receives them.
fn block_stop_signals() {
    let set = stop_signals();
    // SAFETY: set is initialised; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_stop_signal() {
    let set = stop_signals();
    let mut sig: libc::c_int = 0;
    // SAFETY: both pointers are valid for the call.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    tracing::info!(signal = sig, "stop signal received; flushing");
}
