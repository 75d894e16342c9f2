//! Tests of the glommio runtime adapter: openraft's own conformance suite, then the behaviours
//! openraft leans on, each checked against an outcome that would differ if the adapter were wrong.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use openraft_rt::testing::Suite;
use openraft_rt::{
    AsyncRuntime, Mpsc, MpscReceiver, MpscSender, MpscWeakSender, Oneshot, OneshotSender,
    SendError, TryRecvError, Watch, WatchReceiver, WatchSender,
};

use super::runtime::{GlommioRuntime, JoinError, TimeoutElapsed};

type Rt = GlommioRuntime;

/// Runs `test` on a fresh glommio executor on its own thread, as a shard would.
fn on_glommio<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(test)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn openraft_runtime_suite_passes() {
    // Builds its executors through `AsyncRuntime::new` and drives them with `block_on`,
    // including the DeterministicRng wrapper's checks and the single-threaded (!Send) cases.
    Suite::<Rt>::test_all();
}

#[test]
fn spawned_tasks_run_concurrently_and_join_with_their_output() {
    on_glommio(|| async {
        let (sender, receiver) = <Rt as AsyncRuntime>::Oneshot::channel::<u32>();
        // The waiter is spawned first and can only finish once the second task has run.
        let waiter = Rt::spawn(async move { receiver.await.unwrap() * 2 });
        let shared = Rc::new(Cell::new(0));
        let shared_in_task = shared.clone();
        let sender_task = Rt::spawn(async move {
            shared_in_task.set(7); // !Send state is fine under `single-threaded`
            sender.send(21).unwrap();
            "sent"
        });
        assert_eq!(waiter.await.unwrap(), 42);
        assert_eq!(sender_task.await.unwrap(), "sent");
        assert_eq!(shared.get(), 7);
    });
}

#[test]
fn dropping_a_join_handle_detaches_the_task() {
    on_glommio(|| async {
        let (sender, receiver) = <Rt as AsyncRuntime>::Oneshot::channel::<&str>();
        drop(Rt::spawn(async move {
            Rt::sleep(Duration::from_millis(10)).await;
            sender.send("still ran").unwrap();
        }));
        let outcome = Rt::timeout(Duration::from_secs(2), receiver).await;
        assert_eq!(outcome.unwrap().unwrap(), "still ran");
    });
}

#[test]
fn an_aborted_task_joins_with_cancelled_and_stops_running() {
    on_glommio(|| async {
        let finished = Rc::new(Cell::new(false));
        let finished_in_task = finished.clone();
        let handle = Rt::spawn(async move {
            Rt::sleep(Duration::from_millis(30)).await;
            finished_in_task.set(true);
        });
        Rt::sleep(Duration::from_millis(5)).await; // let it start and park on its sleep
        handle.abort();
        let joined = handle.await;
        assert!(matches!(joined, Err(JoinError::Cancelled)), "{joined:?}");
        assert!(!Rt::is_panic(&joined.unwrap_err()));
        Rt::sleep(Duration::from_millis(60)).await;
        assert!(
            !finished.get(),
            "an aborted task must not run to completion"
        );
    });
}

#[test]
fn a_panicking_task_reports_a_panic_and_the_executor_carries_on() {
    on_glommio(|| async {
        let handle = Rt::spawn(async {
            Rt::sleep(Duration::from_millis(1)).await;
            panic!("raft core exploded");
        });
        let error = handle.await.unwrap_err();
        assert!(Rt::is_panic(&error));
        assert!(error.to_string().contains("raft core exploded"), "{error}");
        // The shard's executor survived: it still runs tasks.
        assert_eq!(Rt::spawn(async { 5 }).await.unwrap(), 5);
    });
}

#[test]
fn a_timeout_fires_at_its_deadline_and_not_before() {
    on_glommio(|| async {
        let start = Instant::now();
        let outcome =
            Rt::timeout(Duration::from_millis(20), Rt::sleep(Duration::from_secs(5))).await;
        let waited = start.elapsed();
        assert_eq!(outcome, Err(TimeoutElapsed));
        assert!(
            waited >= Duration::from_millis(20),
            "fired early: {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "fired late: {waited:?}");

        let deadline = Instant::now() + Duration::from_millis(20);
        let outcome = Rt::timeout_at(deadline, std::future::pending::<()>()).await;
        assert_eq!(outcome, Err(TimeoutElapsed));
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn a_timeout_does_not_fire_when_the_future_finishes_first() {
    on_glommio(|| async {
        let start = Instant::now();
        let outcome = Rt::timeout(Duration::from_secs(5), async {
            Rt::sleep(Duration::from_millis(10)).await;
            "done"
        })
        .await;
        assert_eq!(outcome, Ok("done"));
        assert!(start.elapsed() < Duration::from_secs(2));
    });
}

#[test]
fn sleeps_wait_their_time_and_survive_huge_durations() {
    on_glommio(|| async {
        let start = Instant::now();
        Rt::sleep_until(start + Duration::from_millis(15)).await;
        assert!(start.elapsed() >= Duration::from_millis(15));
        // A deadline in the past is ready at once.
        Rt::sleep_until(start).await;
        // "Never" as Duration::MAX must not overflow `Instant + Duration` (it would panic).
        let outcome = Rt::timeout(Duration::from_millis(10), Rt::sleep(Duration::MAX)).await;
        assert_eq!(outcome, Err(TimeoutElapsed));
    });
}

#[test]
fn a_sleep_can_be_built_outside_an_executor() {
    // The timer is armed on the first poll, so building one needs no glommio context.
    let sleep = Rt::sleep(Duration::from_millis(5));
    let executor = glommio::LocalExecutorBuilder::default().make().unwrap();
    let start = Instant::now();
    executor.run(sleep);
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(1), "{waited:?}");
}

#[test]
fn mpsc_delivers_in_order_under_backpressure_and_reports_closed_peers() {
    on_glommio(|| async {
        let (sender, mut receiver) = <Rt as AsyncRuntime>::Mpsc::channel::<u32>(4);
        let producer = Rt::spawn(async move {
            for value in 0..100 {
                sender.send(value).await.unwrap();
            }
        });
        let mut received = Vec::new();
        while let Some(value) = receiver.recv().await {
            received.push(value);
        }
        assert_eq!(received, (0..100).collect::<Vec<_>>());
        producer.await.unwrap();
        // Every sender is gone: the channel reports the closed peer.
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Disconnected));

        let (sender, receiver) = <Rt as AsyncRuntime>::Mpsc::channel::<String>(4);
        let weak = sender.downgrade();
        assert!(weak.upgrade().is_some());
        drop(receiver);
        let refused = sender.send("lost".to_owned()).await;
        assert_eq!(
            refused,
            Err(SendError("lost".to_owned())),
            "the value comes back"
        );
        drop(sender);
        assert!(
            weak.upgrade().is_none(),
            "a weak sender does not keep the channel open"
        );
    });
}

#[test]
fn watch_gives_the_latest_value_and_reports_a_dropped_sender() {
    on_glommio(|| async {
        let (sender, mut receiver) = <Rt as AsyncRuntime>::Watch::channel(0u64);
        let waiter = Rt::spawn(async move {
            let reached = receiver.wait_until_ge(&3).await.unwrap();
            (reached, receiver)
        });
        for value in 1..=3 {
            sender.send(value).unwrap();
            Rt::sleep(Duration::from_millis(1)).await;
        }
        let (reached, mut receiver) = waiter.await.unwrap();
        assert_eq!(reached, 3);
        assert!(!sender.send_if_greater(2), "2 is not greater than 3");
        drop(sender);
        assert!(receiver.changed().await.is_err(), "the sender is gone");
    });
}

#[test]
fn oneshot_reports_a_dropped_sender_and_a_dropped_receiver() {
    on_glommio(|| async {
        let (sender, receiver) = <Rt as AsyncRuntime>::Oneshot::channel::<u8>();
        drop(sender);
        assert!(receiver.await.is_err());

        let (sender, receiver) = <Rt as AsyncRuntime>::Oneshot::channel::<u8>();
        drop(receiver);
        assert_eq!(sender.send(9), Err(9));
    });
}

#[test]
fn spawn_blocking_wakes_the_glommio_task_from_another_thread() {
    on_glommio(|| async {
        let caller = std::thread::current().id();
        let worker = Rt::spawn_blocking(move || std::thread::current().id() != caller);
        let ran_elsewhere = Rt::timeout(Duration::from_secs(5), worker).await;
        assert!(ran_elsewhere.unwrap().unwrap());
    });
}
