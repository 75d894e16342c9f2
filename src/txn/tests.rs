//! The coordinator's state machine, driven through its calls against an in-memory log.

use futures::executor::block_on;

use super::api::{TxnCall, TxnReply};
use super::coordinator::TxnCoordinator;
use super::records::{decode_key, TxnValue};
use super::state::TxnState;
use super::testing::MemLog;
use crate::codes::ErrorCode;
use crate::config::TxnConfig;
use crate::types::TopicPartition;

fn init(c: &TxnCoordinator, log: &MemLog, id: &str, expected: Option<(i64, i16)>) -> (ErrorCode, i64, i16) {
    match block_on(c.handle(TxnCall::InitProducerId { transactional_id: id.into(), timeout_ms: 60_000, expected }, log)) {
        TxnReply::Producer { code, producer_id, producer_epoch } => (code, producer_id, producer_epoch),
        TxnReply::Refused(code) => (code, -1, -1),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn add(c: &TxnCoordinator, log: &MemLog, id: &str, pid: i64, epoch: i16, parts: &[i32]) -> Vec<ErrorCode> {
    let partitions = parts.iter().map(|p| TopicPartition::new("t", *p)).collect();
    let call = TxnCall::AddPartitions {
        transactional_id: id.into(),
        producer_id: pid,
        producer_epoch: epoch,
        partitions,
        verify_only: false,
        client_txn_version: 0,
    };
    match block_on(c.handle(call, log)) {
        TxnReply::Partitions(codes) => codes.into_iter().map(|(_, c)| c).collect(),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn end(c: &TxnCoordinator, log: &MemLog, id: &str, pid: i64, epoch: i16, commit: bool, tv2: bool) -> (ErrorCode, i64, i16) {
    match block_on(c.handle(TxnCall::EndTxn { transactional_id: id.into(), producer_id: pid, producer_epoch: epoch, commit, tv2 }, log)) {
        TxnReply::Producer { code, producer_id, producer_epoch } => (code, producer_id, producer_epoch),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn state(c: &TxnCoordinator, id: &str) -> TxnState {
    c.txns.borrow()[id].state
}

#[test]
fn commit_goes_through_prepare_markers_and_complete() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (code, pid, epoch) = init(&c, &log, "tx", None);
    assert_eq!((code, epoch), (ErrorCode::NONE, 0));
    assert_eq!(add(&c, &log, "tx", pid, epoch, &[0, 1]), vec![ErrorCode::NONE; 2]);
    assert_eq!(state(&c, "tx"), TxnState::Ongoing);
    assert_eq!(end(&c, &log, "tx", pid, epoch, true, false).0, ErrorCode::NONE);
    assert_eq!(state(&c, "tx"), TxnState::PrepareCommit, "answered once the decision is durable, before markers");
    // A retry while markers are written is told to wait.
    assert_eq!(end(&c, &log, "tx", pid, epoch, true, false).0, ErrorCode::CONCURRENT_TRANSACTIONS);
    block_on(c.drive_markers(&log));
    assert_eq!(state(&c, "tx"), TxnState::CompleteCommit);
    let markers = log.markers.borrow();
    assert_eq!(markers.len(), 2);
    assert!(markers.iter().all(|(_, m)| m.commit && m.producer_id == pid && m.producer_epoch == 0 && m.coordinator_epoch == 5));
    // The retry after completion succeeds; an abort now is out of place.
    assert_eq!(end(&c, &log, "tx", pid, epoch, true, false).0, ErrorCode::NONE);
    assert_eq!(end(&c, &log, "tx", pid, epoch, false, false).0, ErrorCode::INVALID_TXN_STATE);
    // Every step was written: init, add, prepare, complete.
    let states: Vec<TxnState> = log.records.borrow().iter().map(|(_, _, v)| TxnValue::decode(v.as_ref().unwrap()).unwrap().state).collect();
    assert_eq!(states, [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::CompleteCommit]);
}

#[test]
fn refused_markers_keep_the_transaction_prepared_until_they_land() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    log.refuse_markers.set(true);
    let (_, pid, epoch) = init(&c, &log, "tx", None);
    add(&c, &log, "tx", pid, epoch, &[2]);
    assert_eq!(end(&c, &log, "tx", pid, epoch, false, false).0, ErrorCode::NONE);
    for _ in 0..3 {
        block_on(c.drive_markers(&log));
        assert_eq!(state(&c, "tx"), TxnState::PrepareAbort);
    }
    assert_eq!(add(&c, &log, "tx", pid, epoch, &[2]), vec![ErrorCode::CONCURRENT_TRANSACTIONS]);
    log.refuse_markers.set(false);
    block_on(c.drive_markers(&log));
    assert_eq!(state(&c, "tx"), TxnState::CompleteAbort);
    assert!(!log.markers.borrow()[0].1.commit);
}

#[test]
fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, e0) = init(&c, &log, "tx", None);
    add(&c, &log, "tx", pid, e0, &[0]);
    // The new producer finds a transaction open: it is aborted with a higher epoch, and the new
    // producer is told to retry.
    assert_eq!(init(&c, &log, "tx", None).0, ErrorCode::CONCURRENT_TRANSACTIONS);
    assert_eq!(state(&c, "tx"), TxnState::PrepareAbort);
    assert_eq!(add(&c, &log, "tx", pid, e0, &[1]), vec![ErrorCode::PRODUCER_FENCED]);
    block_on(c.drive_markers(&log));
    assert_eq!(log.markers.borrow()[0].1.producer_epoch, e0 + 1, "the abort marker fences the old epoch");
    let (code, pid2, e2) = init(&c, &log, "tx", None);
    assert_eq!((code, pid2, e2), (ErrorCode::NONE, pid, e0 + 2));
    assert_eq!(end(&c, &log, "tx", pid, e0, true, false).0, ErrorCode::PRODUCER_FENCED);
    assert_eq!(add(&c, &log, "tx", pid, e2, &[0]), vec![ErrorCode::NONE]);
    // Another producer id is not this id's.
    assert_eq!(add(&c, &log, "tx", pid + 7, e2, &[0]), vec![ErrorCode::INVALID_PRODUCER_ID_MAPPING]);
    assert_eq!(add(&c, &log, "other", pid, e2, &[0]), vec![ErrorCode::INVALID_PRODUCER_ID_MAPPING]);
}

#[test]
fn kip_360_recovery_bumps_the_epoch_once_and_a_retry_gets_the_same_answer() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, e0) = init(&c, &log, "tx", None);
    let (code, _, e1) = init(&c, &log, "tx", Some((pid, e0)));
    assert_eq!((code, e1), (ErrorCode::NONE, e0 + 1));
    assert_eq!(init(&c, &log, "tx", Some((pid, e0))), (ErrorCode::NONE, pid, e1), "a retry is answered the same");
    assert_eq!(init(&c, &log, "tx", Some((pid, e0 + 5))).0, ErrorCode::PRODUCER_FENCED);
    assert_eq!(init(&c, &log, "tx", Some((pid + 1, e1))).0, ErrorCode::PRODUCER_FENCED);
}

#[test]
fn an_exhausted_epoch_moves_the_id_to_a_new_producer_id() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, _) = init(&c, &log, "tx", None);
    c.txns.borrow_mut().get_mut("tx").unwrap().producer_epoch = i16::MAX - 1;
    let (code, pid2, epoch) = init(&c, &log, "tx", None);
    assert_eq!(code, ErrorCode::NONE);
    assert_ne!(pid2, pid);
    assert_eq!(epoch, 0);
    assert_eq!(c.txns.borrow()["tx"].prev_producer_id, pid);
}

#[test]
fn transaction_version_2_bumps_the_epoch_at_every_end() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, e0) = init(&c, &log, "tx", None);
    add(&c, &log, "tx", pid, e0, &[0]);
    let (code, pid1, e1) = end(&c, &log, "tx", pid, e0, true, true);
    assert_eq!((code, pid1, e1), (ErrorCode::NONE, pid, e0 + 1));
    block_on(c.drive_markers(&log));
    assert_eq!(log.markers.borrow()[0].1.producer_epoch, e1, "markers carry the bumped epoch");
    // The retry with the old epoch is answered with the new one; the old epoch is fenced otherwise.
    assert_eq!(end(&c, &log, "tx", pid, e0, true, true), (ErrorCode::NONE, pid, e1));
    assert_eq!(add(&c, &log, "tx", pid, e0, &[0]), vec![ErrorCode::PRODUCER_FENCED]);
    // An abort with no transaction open still bumps (KIP-890).
    let (code, _, e2) = end(&c, &log, "tx", pid, e1, false, true);
    assert_eq!((code, e2), (ErrorCode::NONE, e1 + 1));
    block_on(c.drive_markers(&log));
    assert_eq!(state(&c, "tx"), TxnState::CompleteAbort);
    // TV1: ending with nothing open is refused.
    assert_eq!(end(&c, &log, "tx", pid, e2, true, false).0, ErrorCode::INVALID_TXN_STATE);
}

#[test]
fn verify_only_answers_membership_without_adding() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, e) = init(&c, &log, "tx", None);
    add(&c, &log, "tx", pid, e, &[0]);
    let call = |parts: Vec<i32>, epoch| TxnCall::AddPartitions {
        transactional_id: "tx".into(),
        producer_id: pid,
        producer_epoch: epoch,
        partitions: parts.into_iter().map(|p| TopicPartition::new("t", p)).collect(),
        verify_only: true,
        client_txn_version: 0,
    };
    let TxnReply::Partitions(codes) = block_on(c.handle(call(vec![0, 1], e), &log)) else { panic!() };
    assert_eq!(codes.iter().map(|(_, c)| *c).collect::<Vec<_>>(), [ErrorCode::NONE, ErrorCode::INVALID_TXN_STATE]);
    assert_eq!(c.txns.borrow()["tx"].partitions.len(), 1, "verify_only adds nothing");
    let TxnReply::Partitions(codes) = block_on(c.handle(call(vec![0], e + 1), &log)) else { panic!() };
    assert_eq!(codes[0].1, ErrorCode::PRODUCER_FENCED);
}

#[test]
fn unknown_partitions_fail_alone_and_the_rest_is_not_attempted() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, e) = init(&c, &log, "tx", None);
    assert_eq!(add(&c, &log, "tx", pid, e, &[0, 9]), [ErrorCode::OPERATION_NOT_ATTEMPTED, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION]);
    assert_eq!(state(&c, "tx"), TxnState::Empty);
}

#[test]
fn timeouts_are_checked_and_timed_out_transactions_are_aborted_with_a_fence() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let call = |timeout_ms| TxnCall::InitProducerId { transactional_id: "tx".into(), timeout_ms, expected: None };
    for bad in [0, 900_001] {
        let TxnReply::Producer { code, .. } = block_on(c.handle(call(bad), &log)) else { panic!() };
        assert_eq!(code, ErrorCode::INVALID_TRANSACTION_TIMEOUT);
    }
    let (_, pid, e) = init(&c, &log, "tx", None);
    add(&c, &log, "tx", pid, e, &[0]);
    assert_eq!(block_on(c.abort_timed_out(&log)), 0, "not timed out yet");
    c.txns.borrow_mut().get_mut("tx").unwrap().start_ms -= 61_000;
    assert_eq!(block_on(c.abort_timed_out(&log)), 1);
    assert_eq!(state(&c, "tx"), TxnState::PrepareAbort);
    block_on(c.drive_markers(&log));
    assert_eq!(state(&c, "tx"), TxnState::CompleteAbort);
    assert_eq!(end(&c, &log, "tx", pid, e, true, false).0, ErrorCode::PRODUCER_FENCED, "the late producer is fenced");
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let config = TxnConfig { id_expiration_ms: 1000, ..TxnConfig::default() };
    let c = TxnCoordinator::serving_all(config);
    let log = MemLog::default();
    init(&c, &log, "tx", None);
    assert_eq!(block_on(c.expire_ids(&log)), 0);
    c.txns.borrow_mut().get_mut("tx").unwrap().last_update_ms -= 2000;
    assert_eq!(block_on(c.expire_ids(&log)), 1);
    assert!(c.txns.borrow().is_empty());
    let (_, key, value) = log.records.borrow().last().cloned().unwrap();
    assert_eq!((decode_key(&key).as_deref(), value), (Some("tx"), None));
}

#[test]
fn a_replayed_partition_serves_the_same_state_and_resends_prepared_markers() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    log.refuse_markers.set(true);
    let (_, pid, e) = init(&c, &log, "tx", None);
    add(&c, &log, "tx", pid, e, &[0, 3]);
    end(&c, &log, "tx", pid, e, true, false);
    let partition = c.partition_of("tx");

    // Another broker takes over: not served while it loads, then the same state.
    let next = TxnCoordinator::new(TxnConfig::default());
    assert_eq!(init(&next, &log, "tx", None).0, ErrorCode::NOT_COORDINATOR);
    let load = next.begin_load(partition, 6).unwrap();
    assert_eq!(init(&next, &log, "tx", None).0, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    for (_, k, v) in log.records.borrow().iter() {
        next.replay(k, v.as_deref());
    }
    assert!(next.finish_load(load));
    assert_eq!(state(&next, "tx"), TxnState::PrepareCommit);
    log.refuse_markers.set(false);
    block_on(next.drive_markers(&log));
    assert_eq!(state(&next, "tx"), TxnState::CompleteCommit);
    assert!(log.markers.borrow().iter().all(|(_, m)| m.coordinator_epoch == 6), "markers carry the new coordinator epoch");
    assert_eq!(next.unload(partition), 1);
    assert_eq!(init(&next, &log, "tx", None).0, ErrorCode::NOT_COORDINATOR);
}

#[test]
fn a_failed_state_write_changes_nothing() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, pid, e) = init(&c, &log, "tx", None);
    log.fail_appends.set(Some(ErrorCode::NOT_ENOUGH_REPLICAS));
    assert_eq!(add(&c, &log, "tx", pid, e, &[0]), [ErrorCode::COORDINATOR_NOT_AVAILABLE]);
    assert_eq!(state(&c, "tx"), TxnState::Empty);
    assert!(!c.txns.borrow()["tx"].pending);
    assert_eq!(init(&c, &log, "fresh", None).0, ErrorCode::COORDINATOR_NOT_AVAILABLE);
    assert!(!c.txns.borrow().contains_key("fresh"));
}

#[test]
fn list_and_describe_report_served_ids_with_filters() {
    let c = TxnCoordinator::serving_all(TxnConfig::default());
    let log = MemLog::default();
    let (_, p1, e1) = init(&c, &log, "a", None);
    init(&c, &log, "b", None);
    add(&c, &log, "a", p1, e1, &[0]);
    let list = |states: Vec<TxnState>, pids: Vec<i64>, dur| match block_on(c.handle(TxnCall::List { states, producer_ids: pids, min_duration_ms: dur }, &log)) {
        TxnReply::Listed(l) => l.into_iter().map(|t| t.transactional_id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(list(vec![], vec![], -1), ["a", "b"]);
    assert_eq!(list(vec![TxnState::Ongoing], vec![], -1), ["a"]);
    assert_eq!(list(vec![], vec![p1], -1), ["a"]);
    assert_eq!(list(vec![TxnState::Ongoing], vec![], 3_600_000), Vec::<String>::new());
    match block_on(c.handle(TxnCall::Describe { transactional_id: "a".into() }, &log)) {
        TxnReply::Described(Ok(m)) => assert_eq!((m.state, m.partitions.len()), (TxnState::Ongoing, 1)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        block_on(c.handle(TxnCall::Describe { transactional_id: "zz".into() }, &log)),
        TxnReply::Described(Err(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND))
    ));
}

#[test]
fn state_ids_and_names_are_kafkas() {
    let ids: Vec<i8> = TxnState::ALL.iter().map(|s| s.id()).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(TxnState::from_name("PrepareEpochFence"), Some(TxnState::PrepareEpochFence));
    assert_eq!(TxnState::from_id(3), Some(TxnState::PrepareAbort));
    assert_eq!(TxnState::from_name("ongoing"), None);
}
