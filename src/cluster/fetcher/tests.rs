//! The fetcher's decisions, the in-memory log, and the fetcher and client against a scripted
//! leader on a local socket. The real broker is the leader in `tests/replica_fetcher.rs`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, OffsetForLeaderEpochResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use super::memory::MemoryLog;
use super::*;
use crate::cluster::client::{BrokerClient, BrokerPool, ClientError};
use crate::storage::StorageError;
use crate::storage::batch::stamp;
use crate::storage::batch::testing::make_batch;

/// A batch of `n` records at `base` written under `epoch`, as a leader's log holds it.
fn batch(base: i64, n: usize, epoch: i32) -> Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{}", base + i as i64).into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    stamp(&make_batch(&refs, 1000, -1, -1), base, epoch, None).to_bytes()
}

/// A log of `(epoch, records)` runs, one batch per run, from offset 0.
fn log_of(runs: &[(i32, usize)]) -> MemoryLog {
    let mut base = 0;
    let batches: Vec<Bytes> = runs
        .iter()
        .map(|&(epoch, n)| {
            let b = batch(base, n, epoch);
            base += n as i64;
            b
        })
        .collect();
    MemoryLog::with_batches(&batches).unwrap()
}

fn run_local<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default().spawn(move || async move { f().await }).unwrap().join().unwrap();
}

#[test]
fn truncation_point_follows_kafkas_rules() {
    // Leader knows nothing of the epoch: keep up to the high watermark.
    assert_eq!(truncation_point(50, 30, 3, -1, Some((3, 50))), TruncationPoint { offset: 30, complete: true });
    // Same epoch on both sides: the smaller end.
    assert_eq!(truncation_point(50, 30, 3, 40, Some((3, 50))), TruncationPoint { offset: 40, complete: true });
    assert_eq!(truncation_point(50, 30, 3, 60, Some((3, 50))), TruncationPoint { offset: 50, complete: true });
    // The follower never had the leader's epoch 2: cut to its own epoch 1's end, ask again.
    assert_eq!(truncation_point(50, 30, 2, 45, Some((1, 20))), TruncationPoint { offset: 20, complete: false });
    // No local epoch at or below the leader's: the leader's end, never past our end.
    assert_eq!(truncation_point(50, 30, 2, 45, None), TruncationPoint { offset: 45, complete: true });
    assert_eq!(truncation_point(10, 5, 2, 45, None), TruncationPoint { offset: 10, complete: true });
    // An old-format leader (undefined epoch) gives only an offset.
    assert_eq!(truncation_point(50, 30, -1, 35, Some((0, 50))), TruncationPoint { offset: 35, complete: true });
}

#[test]
fn out_of_range_follows_kafkas_rule() {
    assert_eq!(out_of_range_action(100, 0, 80), OutOfRangeAction::TruncateTo(80));
    assert_eq!(out_of_range_action(10, 50, 80), OutOfRangeAction::ResetTo(50));
    assert_eq!(out_of_range_action(60, 50, 80), OutOfRangeAction::Retry);
}

#[test]
fn whole_batches_skips_old_cuts_partial_takes_holes_and_refuses_going_back() {
    let (a, b, c) = (batch(0, 3, 0), batch(3, 2, 0), batch(5, 4, 1));
    let mut all = BytesMut::new();
    for x in [&a, &b, &c] {
        all.extend_from_slice(x);
    }
    let all = all.freeze();
    let got = whole_batches(&all, 0).unwrap();
    assert_eq!((got.count, got.next_offset, got.records.len()), (3, 9, all.len()));
    // From offset 3: the first batch is below it and skipped.
    let got = whole_batches(&all, 3).unwrap();
    assert_eq!((got.count, got.next_offset), (2, 9));
    assert_eq!(&got.records[..], &all[a.len()..]);
    // A cut-off last batch is dropped.
    let cut = all.slice(..all.len() - 5);
    let got = whole_batches(&cut, 0).unwrap();
    assert_eq!((got.count, got.next_offset, got.records.len()), (2, 5, a.len() + b.len()));
    // Nothing, or less than a header: nothing to append.
    assert_eq!(whole_batches(&Bytes::new(), 7).unwrap().next_offset, 7);
    assert_eq!(whole_batches(&all.slice(..20), 0).unwrap().count, 0);
    // A gap forward (the cleaner's holes) is taken; a batch that straddles the fetch offset, or
    // starts below where the last ended, is refused.
    let got = whole_batches(&c, 3).unwrap();
    assert_eq!((got.count, got.next_offset), (1, 9), "batch 5..=8 fetched at 3");
    assert!(whole_batches(&c, 6).is_err(), "5..=8 does not start at or after 6");
    let mut back = BytesMut::new();
    back.extend_from_slice(&c);
    back.extend_from_slice(&b);
    assert!(whole_batches(&back.freeze(), 5).is_err(), "3..=4 after 5..=8 goes back");
}

#[test]
fn backoff_doubles_to_its_cap_and_resets() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let delays: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_millis(100));
}

#[test]
fn memory_log_answers_epoch_ends_as_kafka() {
    // Epoch 1 covers [0, 10), epoch 3 covers [10, 15), epoch 4 from 15 to the end at 17.
    let log = log_of(&[(1, 10), (3, 5), (4, 2)]);
    assert_eq!(log.epochs(), [(1, 0), (3, 10), (4, 15)]);
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 17)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 15)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 10)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(5), None);
    assert_eq!(MemoryLog::new().end_offset_for_epoch(0), None);
}

/// Truncation against a leader log, rounds included: the leader's own epoch cache answers.
async fn truncate_with_leader(follower: &MemoryLog, leader: &MemoryLog) -> Vec<i32> {
    let asked = RefCell::new(Vec::new());
    truncate_against::<StorageError, _>(follower, "t", 0, async |epoch| {
        asked.borrow_mut().push(epoch);
        Ok(leader.end_offset_for_epoch(epoch).unwrap_or((-1, -1)))
    })
    .await
    .unwrap();
    asked.into_inner()
}

#[test]
fn truncation_rounds_find_the_divergence_point() {
    run_local(|| async {
        // The follower wrote epochs 2 and 3 that the leader never had; the leader went from
        // epoch 0 to 1 at offset 10, and leads epoch 4 from 30. Round 1 asks epoch 3 and hears
        // (1, 30): the follower has no epoch 1, so it cuts to its epoch 0's end (10) and asks
        // again with epoch 0: (0, 10).
        let follower = log_of(&[(0, 10), (2, 10), (3, 5)]);
        let leader = log_of(&[(0, 10), (1, 20), (4, 2)]);
        assert_eq!(truncate_with_leader(&follower, &leader).await, [3, 0]);
        assert_eq!(follower.log_end(), 10);
        assert_eq!(follower.epochs(), [(0, 0)]);
        assert_eq!(follower.truncations(), [10]);

        // A follower ahead in the same epoch (its tail was never committed) cuts to the
        // leader's end of that epoch.
        let follower = log_of(&[(0, 10), (1, 5), (1, 3)]);
        let leader = log_of(&[(0, 10), (1, 5), (2, 7)]);
        assert_eq!(truncate_with_leader(&follower, &leader).await, [1]);
        assert_eq!(follower.log_end(), 15);
        // A leader that knows nothing of the epoch (-1, -1): keep up to the high watermark.
        let follower = log_of(&[(0, 10), (1, 2), (1, 6)]);
        follower.set_high_watermark(12);
        assert_eq!(truncate_with_leader(&follower, &log_of(&[(0, 4)])).await, [1]);
        assert_eq!(follower.log_end(), 12);
        // A follower behind the leader keeps its whole log.
        let follower = log_of(&[(0, 10)]);
        assert_eq!(truncate_with_leader(&follower, &leader).await, [0]);
        assert_eq!((follower.log_end(), follower.truncations().len()), (10, 0));
    });
}

/// A scripted broker on a local port: answers each request with `answer(key, version, body)`,
/// or never, when it returns `None`. Returns the address and the request headers it saw.
fn scripted_broker(
    answer: impl Fn(ApiKey, i16, &mut Bytes) -> Option<BytesMut> + 'static,
) -> (String, Rc<RefCell<Vec<RequestHeader>>>) {
    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let seen_by_server = Rc::clone(&seen);
    let answer = Rc::new(answer);
    glommio::spawn_local(async move {
        while let Ok(mut stream) = listener.accept().await {
            let (seen, answer) = (Rc::clone(&seen_by_server), Rc::clone(&answer));
            glommio::spawn_local(async move {
                loop {
                    let mut size = [0u8; 4];
                    if stream.read_exact(&mut size).await.is_err() {
                        return;
                    }
                    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
                    stream.read_exact(&mut frame).await.unwrap();
                    let mut frame = Bytes::from(frame);
                    let key = ApiKey::try_from((&frame[0..2]).get_i16()).unwrap();
                    let version = (&frame[2..4]).get_i16();
                    let header = RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
                    let correlation_id = header.correlation_id;
                    seen.borrow_mut().push(header);
                    let Some(body) = answer(key, version, &mut frame) else { continue };
                    let mut out = BytesMut::new();
                    out.put_i32(0);
                    let header = ResponseHeader::default().with_correlation_id(correlation_id);
                    header.encode(&mut out, key.response_header_version(version)).unwrap();
                    out.extend_from_slice(&body);
                    let len = (out.len() - 4) as i32;
                    out[..4].copy_from_slice(&len.to_be_bytes());
                    stream.write_all(&out).await.unwrap();
                }
            })
            .detach();
        }
    })
    .detach();
    (addr, seen)
}

fn encoded<T: Encodable>(body: &T, version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version).unwrap();
    buf
}

#[test]
fn client_sends_in_order_and_the_pool_reuses_connections() {
    run_local(|| async {
        let (addr, seen) = scripted_broker(|key, version, body| {
            assert_eq!(key, ApiKey::ApiVersions);
            ApiVersionsRequest::decode(body, version).unwrap();
            Some(encoded(&ApiVersionsResponse::default().with_error_code(0), version))
        });
        let pool = BrokerPool::new(7);
        for _ in 0..3 {
            let resp = pool.send(2, &addr, &ApiVersionsRequest::default(), 3, Duration::from_secs(5)).await.unwrap();
            assert_eq!(resp.error_code, 0);
        }
        assert_eq!(pool.idle_count(2, &addr), 1, "one connection, reused");
        let headers = seen.borrow();
        let ids: Vec<i32> = headers.iter().map(|h| h.correlation_id).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(headers[0].client_id.as_deref(), Some("ringlog-replica-7"));
        assert_eq!(ApiVersionsResponse::header_version(3), 0);
    });
}

#[test]
fn timeouts_and_refused_dials_drop_the_connection() {
    run_local(|| async {
        let (addr, _) = scripted_broker(|_, _, _| None);
        let pool = BrokerPool::new(1);
        let started = Instant::now();
        let err = pool.send(2, &addr, &ApiVersionsRequest::default(), 3, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { broker_id: 2, .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(pool.idle_count(2, &addr), 0, "a timed-out connection is not reused");

        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let err = BrokerClient::connect(3, &dead, 1, Duration::from_secs(1)).await.err().unwrap();
        assert!(matches!(err, ClientError::Connect { broker_id: 3, .. }), "{err}");
    });
}

fn target(addr: &str) -> FetchTarget {
    FetchTarget {
        topic: "t".into(),
        topic_id: uuid::Uuid::new_v4(),
        partition: 0,
        leader_id: 2,
        leader_addr: addr.into(),
        leader_epoch: 5,
        node_id: 1,
        max_bytes: PARTITION_MAX_BYTES,
    }
}

#[test]
fn a_fenced_fetcher_returns_and_a_stopped_one_returns_at_once() {
    run_local(|| async {
        // The leader fences our epoch at the truncation step.
        let (addr, seen) = scripted_broker(|key, version, _| {
            assert_eq!(key, ApiKey::OffsetForLeaderEpoch);
            let part = EpochEndOffset::default().with_partition(0).with_error_code(ErrorCode::FENCED_LEADER_EPOCH.code());
            let topic = OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![part]);
            Some(encoded(&OffsetForLeaderEpochResponse::default().with_topics(vec![topic]), version))
        });
        let log = Rc::new(log_of(&[(4, 3)]));
        let exit = run_fetcher(target(&addr), log.clone(), BrokerPool::new(1), StopSignal::new()).await;
        assert!(matches!(exit, FetcherExit::Fenced { leader_epoch: 5 }), "{exit:?}");
        assert_eq!(seen.borrow().len(), 1);
        assert_eq!(log.log_end(), 3, "nothing truncated");

        // A leader that never answers: stop interrupts the wait.
        let (silent, _) = scripted_broker(|_, _, _| None);
        let stop = StopSignal::new();
        let fetcher = ReplicaFetcher::new(target(&silent), log.clone(), BrokerPool::new(1), Rc::clone(&stop));
        let progress = fetcher.progress();
        let task = glommio::spawn_local(fetcher.run());
        glommio::timer::sleep(Duration::from_millis(200)).await;
        assert_eq!(progress.state(), FetcherState::Truncating);
        let asked = Instant::now();
        stop.stop();
        assert!(matches!(task.await, FetcherExit::Stopped));
        assert!(asked.elapsed() < Duration::from_millis(500));
        assert_eq!(progress.state(), FetcherState::Stopped);
    });
}

#[test]
fn an_unreachable_leader_is_retried_until_stopped() {
    run_local(|| async {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let stop = StopSignal::new();
        let fetcher = ReplicaFetcher::new(target(&dead), Rc::new(MemoryLog::new()), BrokerPool::new(1), Rc::clone(&stop));
        let progress = fetcher.progress();
        let task = glommio::spawn_local(fetcher.run());
        glommio::timer::sleep(Duration::from_millis(300)).await;
        assert_eq!(progress.state(), FetcherState::ConnectionLost);
        stop.stop();
        assert!(matches!(task.await, FetcherExit::Stopped));
    });
}

#[test]
fn fetches_carry_the_replica_state_and_a_refusal_records_the_leader_hint() {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, LeaderIdAndEpoch, PartitionData};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    run_local(|| async {
        let target = target("");
        let topic_id = target.topic_id;
        let requests = Rc::new(RefCell::new(Vec::new()));
        let seen_requests = Rc::clone(&requests);
        let (addr, _) = scripted_broker(move |key, version, body| {
            assert_eq!((key, version), (ApiKey::Fetch, crate::cluster::client::versions::FETCH));
            seen_requests.borrow_mut().push(FetchRequest::decode(body, version).unwrap());
            let part = PartitionData::default()
                .with_partition_index(0)
                .with_error_code(ErrorCode::NOT_LEADER_OR_FOLLOWER.code())
                .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(BrokerId(3)).with_leader_epoch(6));
            let topic = FetchableTopicResponse::default().with_topic_id(topic_id).with_partitions(vec![part]);
            Some(encoded(&FetchResponse::default().with_responses(vec![topic]), version))
        });
        let stop = StopSignal::new();
        let fetcher = ReplicaFetcher::new(FetchTarget { leader_addr: addr, ..target }, Rc::new(MemoryLog::new()), BrokerPool::new(1), Rc::clone(&stop));
        let progress = fetcher.progress();
        let task = glommio::spawn_local(fetcher.run());
        glommio::timer::sleep(Duration::from_millis(300)).await;
        assert_eq!(progress.state(), FetcherState::LeaderRefused(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        assert_eq!(progress.leader_hint(), Some(LeaderHint { leader_id: 3, leader_epoch: 6 }));
        // Refused fetches are retried after Kafka's 1 s back-off, not in a loop.
        assert_eq!(requests.borrow().len(), 1);
        stop.stop();
        assert!(matches!(task.await, FetcherExit::Stopped));

        let request = &requests.borrow()[0];
        assert_eq!(request.replica_state.replica_id, BrokerId(1));
        assert_eq!((request.max_wait_ms, request.min_bytes), (FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES));
        let part = &request.topics[0].partitions[0];
        assert_eq!(request.topics[0].topic_id, topic_id);
        assert_eq!((part.partition, part.fetch_offset, part.current_leader_epoch), (0, 0, 5));
        assert_eq!(part.partition_max_bytes, PARTITION_MAX_BYTES);
    });
}

#[test]
fn out_of_range_behind_the_leaders_start_resets_the_log_there() {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    use kafka_protocol::messages::{FetchResponse, ListOffsetsRequest, ListOffsetsResponse};
    run_local(|| async {
        let target = target("");
        let topic_id = target.topic_id;
        // The leader's log is [50, 80): deleted below 50 while the follower was away.
        let (addr, seen) = scripted_broker(move |key, version, body| match key {
            ApiKey::Fetch => {
                let part = PartitionData::default().with_partition_index(0).with_error_code(ErrorCode::OFFSET_OUT_OF_RANGE.code());
                let topic = FetchableTopicResponse::default().with_topic_id(topic_id).with_partitions(vec![part]);
                Some(encoded(&FetchResponse::default().with_responses(vec![topic]), version))
            }
            ApiKey::ListOffsets => {
                let request = ListOffsetsRequest::decode(body, version).unwrap();
                assert_eq!(request.replica_id, BrokerId(1));
                let offset = match request.topics[0].partitions[0].timestamp {
                    -2 => 50,
                    -1 => 80,
                    other => panic!("timestamp {other}"),
                };
                let part = ListOffsetsPartitionResponse::default().with_partition_index(0).with_offset(offset);
                let topic = ListOffsetsTopicResponse::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_partitions(vec![part]);
                Some(encoded(&ListOffsetsResponse::default().with_topics(vec![topic]), version))
            }
            other => panic!("unexpected {other:?}"),
        });
        // An empty follower at 0: no epochs to compare, so no OffsetForLeaderEpoch.
        let log = Rc::new(MemoryLog::new());
        let stop = StopSignal::new();
        let fetcher = ReplicaFetcher::new(FetchTarget { leader_addr: addr, ..target }, log.clone(), BrokerPool::new(1), Rc::clone(&stop));
        let progress = fetcher.progress();
        let task = glommio::spawn_local(fetcher.run());
        let deadline = Instant::now() + Duration::from_secs(5);
        while progress.fetched_to() != 50 {
            assert!(Instant::now() < deadline, "fetched to {}", progress.fetched_to());
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        // At 50 the scripted leader still says out of range: the fetcher backs off, not spins.
        glommio::timer::sleep(Duration::from_millis(300)).await;
        assert_eq!(progress.state(), FetcherState::LeaderRefused(ErrorCode::OFFSET_OUT_OF_RANGE));
        assert_eq!(seen.borrow().len(), 6, "two rounds of Fetch and ListOffsets x2, then a back-off");
        stop.stop();
        assert!(matches!(task.await, FetcherExit::Stopped));
        assert_eq!(log.truncations(), [50], "started over at the leader's log start");
        assert_eq!((log.log_end(), log.high_watermark()), (50, 50));
        let keys: Vec<i16> = seen.borrow().iter().take(3).map(|h| h.request_api_key).collect();
        assert_eq!(keys, [ApiKey::Fetch as i16, ApiKey::ListOffsets as i16, ApiKey::ListOffsets as i16]);
    });
}
