//! The inter-broker Kafka client: one connection to one broker, speaking Kafka's own requests,
//! and a per-shard pool of them.
//!
//! ```text
//!  BrokerPool (per shard, !Send) ─ checkout(broker id, address) ─► PooledClient ─► BrokerClient::send
//!        ▲                                                             │
//!        └──────── idle again on drop, unless the call failed ◄────────┘
//! ```
//! A connection carries one request at a time: a follower's Fetch long-polls for up to
//! `max_wait_ms`, and a second request behind it on the same socket would wait for it (the broker
//! answers in request order). So the pool lends each connection to one user at a time and dials
//! another when none is idle; a fetcher keeps the one it holds while it is healthy.
//!
//! This module depends only on leaf modules (`codes`): shards will run fetchers, and the
//! server's frame code lives above the shards (`net`, `protocol`), so reusing it here would make
//! an import cycle. The client's framing is the two lines Kafka's protocol needs: an `int32`
//! size, then the header and body.

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// How long a dial may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Kafka's `replica.socket.timeout.ms` default: how long a request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response frame accepted: a fetch answer is bounded by the broker's 55 MiB
/// `fetch.max.bytes`, so anything much larger is a broken stream, not a response.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Idle connections kept per (broker, address); more are closed when returned.
pub const MAX_IDLE_PER_BROKER: usize = 4;

/// The API versions this client speaks: the highest the Ringlog broker serves
/// (`protocol::handlers::*::VERSIONS`; `tests/replica_fetcher.rs` checks they match).
pub mod versions {
    /// Fetch v17: topic ids (v13+) and `ReplicaState` (v15+).
    pub const FETCH: i16 = 17;
    /// OffsetForLeaderEpoch v4.
    pub const OFFSET_FOR_LEADER_EPOCH: i16 = 4;
    /// ListOffsets v10.
    pub const LIST_OFFSETS: i16 = 10;
    /// Produce v12.
    pub const PRODUCE: i16 = 12;
    /// Metadata v12 (topic ids in the answer).
    pub const METADATA: i16 = 12;
}

/// Why a call to another broker failed. Every variant leaves the connection unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker could not be reached.
    #[error("cannot connect to broker {broker_id} at {addr}: {reason}")]
    Connect {
        /// The broker's node id.
        broker_id: i32,
        /// The address dialled.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// No answer in time.
    #[error("broker {broker_id} did not answer {api:?} within {after:?}")]
    Timeout {
        /// The broker's node id.
        broker_id: i32,
        /// The request's API.
        api: ApiKey,
        /// The time allowed.
        after: Duration,
    },
    /// The connection failed or the peer closed it.
    #[error("connection to broker {broker_id} closed: {reason}")]
    Closed {
        /// The broker's node id.
        broker_id: i32,
        /// The i/o error, or end of stream.
        reason: String,
    },
    /// The request could not be encoded or the answer could not be decoded.
    #[error("{api:?} v{version} with broker {broker_id}: {reason}")]
    Codec {
        /// The broker's node id.
        broker_id: i32,
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What failed.
        reason: String,
    },
}

/// One connection to one broker. Requests go one at a time, each with the next correlation id.
pub struct BrokerClient {
    broker_id: i32,
    addr: String,
    client_id: StrBytes,
    stream: TcpStream,
    next_correlation_id: i32,
    /// Set when a call failed or was abandoned midway: the stream may hold half a frame.
    broken: bool,
}

/// Resolves `addr` (`host:port`) to its first socket address.
fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolved to no address"))
}

/// The client id this node's replication traffic carries, as Kafka's `broker-<id>-fetcher-<n>`
/// names its fetchers: the leader's logs then say who fetched.
pub fn client_id_for(node_id: i32) -> String {
    format!("ringlog-replica-{node_id}")
}

impl BrokerClient {
    /// Dials broker `broker_id` at `addr` (`host:port`) as node `node_id`, with Nagle off: the
    /// requests are small frames that must not wait for an ACK.
    pub async fn connect(broker_id: i32, addr: &str, node_id: i32, timeout: Duration) -> Result<BrokerClient, ClientError> {
        let failed = |reason: String| ClientError::Connect { broker_id, addr: addr.to_owned(), reason };
        let socket_addr = resolve(addr).map_err(|e| failed(e.to_string()))?;
        let stream = TcpStream::connect_timeout(socket_addr, timeout.max(Duration::from_millis(1)))
            .await
            .map_err(|e| failed(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| failed(e.to_string()))?;
        tracing::debug!(broker = broker_id, addr, node = node_id, "connected to broker");
        Ok(BrokerClient {
            broker_id,
            addr: addr.to_owned(),
            client_id: StrBytes::from_string(client_id_for(node_id)),
            stream,
            next_correlation_id: 0,
            broken: false,
        })
    }

    /// The broker's node id.
    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// The address dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether a call failed on this connection; it must then be dropped.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends `request` at `version` and waits up to `timeout` for its answer. Any error leaves
    /// the connection broken, as does dropping the future before it finishes.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16, timeout: Duration) -> Result<R::Response, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| self.codec_error(ApiKey::ApiVersions, version, format!("unknown api key {}", R::KEY)))?;
        if self.broken {
            return Err(ClientError::Closed { broker_id: self.broker_id, reason: "connection already failed".into() });
        }
        // Marked broken until the answer is read whole: an abandoned call leaves a half frame.
        self.broken = true;
        let broker_id = self.broker_id;
        let answer = {
            let call = self.call::<R>(api, request, version).fuse();
            let timer = glommio::timer::sleep(timeout).fuse();
            futures::pin_mut!(call, timer);
            futures::select! {
                answer = call => answer,
                _ = timer => Err(ClientError::Timeout { broker_id, api, after: timeout }),
            }
        };
        if answer.is_ok() {
            self.broken = false;
        }
        answer
    }

    async fn call<R: Request>(&mut self, api: ApiKey, request: &R, version: i16) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = self.encode_request(api, request, version, correlation_id)?;
        let broker_id = self.broker_id;
        let closed = |e: std::io::Error| ClientError::Closed { broker_id, reason: e.to_string() };
        self.stream.write_all(&frame).await.map_err(closed)?;
        let mut body = self.read_frame().await?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| self.codec_error(api, version, format!("response header: {e}")))?;
        if header.correlation_id != correlation_id {
            let reason = format!("correlation id {} answers request {correlation_id}", header.correlation_id);
            return Err(self.codec_error(api, version, reason));
        }
        R::Response::decode(&mut body, version).map_err(|e| self.codec_error(api, version, e.to_string()))
    }

    /// A size-prefixed request frame: size, header, body.
    fn encode_request<R: Request>(&self, api: ApiKey, request: &R, version: i16, correlation_id: i32) -> Result<BytesMut, ClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let size = request.compute_size(version).map_err(|e| self.codec_error(api, version, e.to_string()))?;
        let mut frame = BytesMut::with_capacity(size + 64);
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| self.codec_error(api, version, e.to_string()))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        Ok(frame)
    }

    /// Reads one response frame, without its size prefix.
    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let broker_id = self.broker_id;
        let closed = |e: std::io::Error| ClientError::Closed { broker_id, reason: e.to_string() };
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.map_err(closed)?;
        let size = (&size[..]).get_i32();
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            return Err(ClientError::Closed { broker_id, reason: format!("response frame of {size} bytes") });
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.stream);
        let frame = crate::sockets::recv_frame(fd, &mut self.stream, size as usize)
            .await
            .map_err(|e| ClientError::Closed { broker_id, reason: e.to_string() })?;
        Ok(frame.freeze())
    }

    fn codec_error(&self, api: ApiKey, version: i16, reason: String) -> ClientError {
        ClientError::Codec { broker_id: self.broker_id, api, version, reason }
    }
}

type PoolKey = (i32, String);

/// A shard's connections to other brokers, keyed by (broker id, address): reused while they
/// work, dropped after an error, dialled again on the next checkout. `!Send`, like all shard
/// state; hold it in an `Rc`.
pub struct BrokerPool {
    node_id: i32,
    idle: RefCell<HashMap<PoolKey, Vec<BrokerClient>>>,
}

impl BrokerPool {
    /// An empty pool for node `node_id` (its client id names it).
    pub fn new(node_id: i32) -> Rc<BrokerPool> {
        Rc::new(BrokerPool { node_id, idle: RefCell::new(HashMap::new()) })
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Lends a connection to broker `broker_id` at `addr`: an idle one, or a new one.
    pub async fn checkout(self: &Rc<Self>, broker_id: i32, addr: &str) -> Result<PooledClient, ClientError> {
        let key = (broker_id, addr.to_owned());
        // The borrow ends before the dial's await.
        let reused = self.idle.borrow_mut().get_mut(&key).and_then(Vec::pop);
        let client = match reused {
            Some(client) => client,
            None => BrokerClient::connect(broker_id, addr, self.node_id, CONNECT_TIMEOUT).await?,
        };
        Ok(PooledClient { client: ManuallyDrop::new(client), pool: Rc::clone(self), key })
    }

    /// Sends one request on a pooled connection to broker `broker_id` at `addr`.
    pub async fn send<R: Request>(
        self: &Rc<Self>,
        broker_id: i32,
        addr: &str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let mut client = self.checkout(broker_id, addr).await?;
        client.send(request, version, timeout).await
    }

    /// Closes the idle connections to `broker_id` (it was fenced or left the cluster).
    pub fn forget_broker(&self, broker_id: i32) {
        self.idle.borrow_mut().retain(|(id, _), _| *id != broker_id);
    }

    /// Idle connections to `broker_id` at `addr` (tests and metrics).
    pub fn idle_count(&self, broker_id: i32, addr: &str) -> usize {
        self.idle.borrow().get(&(broker_id, addr.to_owned())).map_or(0, Vec::len)
    }

    fn give_back(&self, key: PoolKey, client: BrokerClient) {
        if client.is_broken() {
            tracing::debug!(broker = key.0, addr = %key.1, "dropping failed broker connection");
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_BROKER {
            list.push(client);
        }
    }
}

/// A connection lent by a [`BrokerPool`]; it goes back to the pool when dropped, unless a call
/// on it failed.
pub struct PooledClient {
    /// Taken only by `drop`.
    client: ManuallyDrop<BrokerClient>,
    pool: Rc<BrokerPool>,
    key: PoolKey,
}

impl std::ops::Deref for PooledClient {
    type Target = BrokerClient;
    fn deref(&self) -> &BrokerClient {
        &self.client
    }
}

impl std::ops::DerefMut for PooledClient {
    fn deref_mut(&mut self) -> &mut BrokerClient {
        &mut self.client
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        // SAFETY: `client` is taken once, here, and `self` is not used after drop.
        let client = unsafe { ManuallyDrop::take(&mut self.client) };
        self.pool.give_back(std::mem::take(&mut self.key), client);
    }
}
