//! openraft's [`AsyncRuntime`] on glommio: [`GlommioRuntime`].
//!
//! openraft ships tokio, monoio and compio runtimes; this one follows the monoio adapter's shape.
//! With openraft's `single-threaded` feature nothing here needs `Send`: every task openraft
//! spawns runs on the executor of the shard that created the `Raft`, beside that shard's state.
//!
//! What maps to what, and why:
//! - tasks: [`glommio::spawn_local`], detached so that dropping a [`GlommioJoinHandle`] leaves the
//!   task running (tokio's semantics, which openraft relies on: it drops most of its handles).
//!   A panic is caught and reported to the joiner, as tokio does, instead of unwinding through the
//!   shard's executor; openraft turns a panicked core into `Fatal::Panicked`.
//! - time: [`std::time::Instant`] (glommio's timers are on that clock) and glommio [`Timer`]s.
//! - channels and the mutex: tokio's `sync` module, as the monoio adapter does for mpsc, watch and
//!   mutex. It needs no tokio runtime (no reactor, no threads), and openraft's own test suite runs
//!   against exactly these types, so their semantics (weak senders, `changed()` marking a value
//!   seen, `try_recv` on a closed channel) are the ones openraft expects. Their `Send`-ness costs
//!   an atomic per operation, which the control plane can afford.
//!
//! The traits are openraft's; the types below are the ones the rest of the crate names.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use glommio::timer::Timer;
use openraft_rt::{
    AsyncRuntime, Mpsc, MpscReceiver, MpscSender, MpscWeakSender, OptionalSend, OptionalSync,
    SendError, TryRecvError, mutex, oneshot, watch,
};
use pin_project_lite::pin_project;
use tokio::sync as tokio_sync;

/// The longest span one glommio [`Timer`] is armed for. `Instant + Duration` panics on overflow,
/// and openraft may ask for "never" as a huge duration; a longer sleep re-arms when this expires.
const MAX_TIMER_SPAN: Duration = Duration::from_secs(60 * 60 * 24 * 365);

/// openraft's [`AsyncRuntime`] on a glommio `LocalExecutor`.
///
/// Production code only names the type (`type AsyncRuntime = GlommioRuntime` in the Raft type
/// config) and runs openraft inside a shard's executor. A value of it is only built by
/// [`AsyncRuntime::new`] for tests: it owns an executor of its own, which
/// [`AsyncRuntime::block_on`] runs on the calling thread. That must not be inside another glommio
/// executor (glommio panics on nested executors).
pub struct GlommioRuntime {
    executor: glommio::LocalExecutor,
}

impl std::fmt::Debug for GlommioRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlommioRuntime")
            .field("executor_id", &self.executor.id())
            .finish()
    }
}

/// Why a spawned task did not produce its output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The task was cancelled ([`GlommioJoinHandle::abort`]) or its executor stopped first.
    #[error("task was cancelled before it finished")]
    Cancelled,
    /// The task panicked; the panic's message, when it was a string.
    #[error("task panicked: {0}")]
    Panicked(String),
}

/// [`GlommioRuntime::timeout`]'s error: the deadline came before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline has elapsed")]
pub struct TimeoutElapsed;

/// A spawned task's handle: awaiting it gives the task's output or a [`JoinError`].
///
/// Dropping it detaches the task, which keeps running (as a tokio `JoinHandle` does).
pub struct GlommioJoinHandle<T> {
    inner: glommio::task::JoinHandle<Result<T, JoinError>>,
}

impl<T> GlommioJoinHandle<T> {
    /// Cancels the task: it is not polled again and its future is dropped. Awaiting the handle
    /// afterwards gives [`JoinError::Cancelled`] unless the task had already finished.
    pub fn abort(&self) {
        self.inner.cancel();
    }
}

impl<T> Future for GlommioJoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // glommio reports a cancelled task as `None`; a panic was caught inside the task.
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|output| output.unwrap_or(Err(JoinError::Cancelled)))
    }
}

/// A sleep until a deadline on glommio's timer wheel.
///
/// The glommio [`Timer`] is armed on the first poll, not at creation, so a sleep can be built
/// outside an executor (openraft builds some before awaiting them) and is only charged when used.
#[derive(Debug)]
pub struct GlommioSleep {
    deadline: Instant,
    timer: Option<Timer>,
}

impl GlommioSleep {
    fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            timer: None,
        }
    }

    fn after(duration: Duration) -> Self {
        let now = Instant::now();
        // An overflowing deadline means "practically never": cap it instead of panicking.
        let deadline = now.checked_add(duration).unwrap_or(now + MAX_TIMER_SPAN);
        Self::until(deadline)
    }
}

impl Future for GlommioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let now = Instant::now();
            if now >= this.deadline {
                this.timer = None;
                return Poll::Ready(());
            }
            let span = (this.deadline - now).min(MAX_TIMER_SPAN);
            let timer = this.timer.get_or_insert_with(|| Timer::new(span));
            if Pin::new(timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Only a capped timer expires before the deadline: arm the next stretch.
            this.timer = None;
        }
    }
}

pin_project! {
    /// A future bounded by a deadline: its output, or [`TimeoutElapsed`] once the deadline passes.
    ///
    /// The inner future is polled first, so an output that is ready at the deadline still wins.
    pub struct GlommioTimeout<F> {
        #[pin]
        future: F,
        sleep: GlommioSleep,
    }
}

impl<F: Future> Future for GlommioTimeout<F> {
    type Output = Result<F::Output, TimeoutElapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(TimeoutElapsed))
    }
}

/// A panic payload's message, for [`JoinError::Panicked`].
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl AsyncRuntime for GlommioRuntime {
    type JoinError = JoinError;
    type JoinHandle<T: OptionalSend + 'static> = GlommioJoinHandle<T>;
    type Sleep = GlommioSleep;
    type Instant = Instant;
    type TimeoutError = TimeoutElapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = GlommioTimeout<T>;
    type ThreadLocalRng = rand::rngs::ThreadRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        // AssertUnwindSafe: a panicked task's state is dropped with it and the joiner only sees
        // the error, which is tokio's contract too.
        let task = AssertUnwindSafe(future)
            .catch_unwind()
            .map(|result| result.map_err(|payload| JoinError::Panicked(panic_message(&*payload))));
        GlommioJoinHandle {
            inner: glommio::spawn_local(task).detach(),
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        GlommioSleep::after(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        GlommioSleep::until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        GlommioTimeout {
            future,
            sleep: GlommioSleep::after(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        GlommioTimeout {
            future,
            sleep: GlommioSleep::until(deadline),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        matches!(join_error, JoinError::Panicked(_))
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rand::rng()
    }

    type Mpsc = GlommioMpsc;
    type Watch = GlommioWatch;
    type Oneshot = GlommioOneshot;
    type Mutex<T: OptionalSend + 'static> = GlommioMutex<T>;

    /// Builds an unpinned executor of its own; `threads` is ignored (glommio is one thread).
    /// Test-only, like openraft's own use of it: a failure to set up io_uring panics here.
    fn new(_threads: usize) -> Self {
        let executor = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("glommio executor for GlommioRuntime::new");
        Self { executor }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.executor.run(future)
    }
}

/// The bounded mpsc channel family: tokio's, which has the weak senders openraft needs.
#[derive(Debug)]
pub struct GlommioMpsc;

/// Sends into a [`GlommioMpsc`] channel; waits for room when the channel is full.
pub struct GlommioMpscSender<T>(tokio_sync::mpsc::Sender<T>);

/// Receives from a [`GlommioMpsc`] channel, in send order.
pub struct GlommioMpscReceiver<T>(tokio_sync::mpsc::Receiver<T>);

/// A sender that does not keep a [`GlommioMpsc`] channel open.
pub struct GlommioMpscWeakSender<T>(tokio_sync::mpsc::WeakSender<T>);

// Manual impls: a derive would require `T: Clone`, which a sender does not need.
impl<T> Clone for GlommioMpscSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Clone for GlommioMpscWeakSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl Mpsc for GlommioMpsc {
    type Sender<T: OptionalSend> = GlommioMpscSender<T>;
    type Receiver<T: OptionalSend> = GlommioMpscReceiver<T>;
    type WeakSender<T: OptionalSend> = GlommioMpscWeakSender<T>;

    fn channel<T: OptionalSend>(buffer: usize) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (sender, receiver) = tokio_sync::mpsc::channel(buffer);
        (GlommioMpscSender(sender), GlommioMpscReceiver(receiver))
    }
}

impl<T: OptionalSend> MpscSender<GlommioMpsc, T> for GlommioMpscSender<T> {
    fn send(&self, msg: T) -> impl Future<Output = Result<(), SendError<T>>> + OptionalSend {
        let send = self.0.send(msg);
        async move { send.await.map_err(|error| SendError(error.0)) }
    }

    fn downgrade(&self) -> GlommioMpscWeakSender<T> {
        GlommioMpscWeakSender(self.0.downgrade())
    }
}

impl<T: OptionalSend> MpscReceiver<T> for GlommioMpscReceiver<T> {
    fn recv(&mut self) -> impl Future<Output = Option<T>> + OptionalSend {
        self.0.recv()
    }

    fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map_err(|error| match error {
            tokio_sync::mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
            tokio_sync::mpsc::error::TryRecvError::Disconnected => TryRecvError::Disconnected,
        })
    }
}

impl<T: OptionalSend> MpscWeakSender<GlommioMpsc, T> for GlommioMpscWeakSender<T> {
    fn upgrade(&self) -> Option<GlommioMpscSender<T>> {
        self.0.upgrade().map(GlommioMpscSender)
    }
}

/// The watch channel family (the latest value, with change notification): tokio's.
///
/// Its `Ref` holds a read lock: never hold one across an `.await`, or a `send` on the same
/// thread deadlocks (openraft's `Watch::Ref` documents the same rule).
#[derive(Debug)]
pub struct GlommioWatch;

/// Publishes values to every [`GlommioWatchReceiver`].
pub struct GlommioWatchSender<T>(tokio_sync::watch::Sender<T>);

/// Reads the latest value of a [`GlommioWatch`] channel and waits for changes.
pub struct GlommioWatchReceiver<T>(tokio_sync::watch::Receiver<T>);

impl<T> Clone for GlommioWatchSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Clone for GlommioWatchReceiver<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl watch::Watch for GlommioWatch {
    type Sender<T: OptionalSend + OptionalSync> = GlommioWatchSender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = GlommioWatchReceiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = tokio_sync::watch::Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (sender, receiver) = tokio_sync::watch::channel(init);
        (GlommioWatchSender(sender), GlommioWatchReceiver(receiver))
    }
}

impl<T: OptionalSend + OptionalSync> watch::WatchSender<GlommioWatch, T> for GlommioWatchSender<T> {
    fn send(&self, value: T) -> Result<(), watch::SendError<T>> {
        self.0
            .send(value)
            .map_err(|error| watch::SendError(error.0))
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        self.0.send_if_modified(modify)
    }

    fn borrow_watched(&self) -> tokio_sync::watch::Ref<'_, T> {
        self.0.borrow()
    }

    fn subscribe(&self) -> GlommioWatchReceiver<T> {
        GlommioWatchReceiver(self.0.subscribe())
    }
}

impl<T: OptionalSend + OptionalSync> watch::WatchReceiver<GlommioWatch, T>
    for GlommioWatchReceiver<T>
{
    async fn changed(&mut self) -> Result<(), watch::RecvError> {
        self.0.changed().await.map_err(|_| watch::RecvError(()))
    }

    fn borrow_watched(&self) -> tokio_sync::watch::Ref<'_, T> {
        self.0.borrow()
    }

    fn borrow_and_update(&mut self) -> tokio_sync::watch::Ref<'_, T> {
        self.0.borrow_and_update()
    }
}

/// The oneshot channel family: tokio's (its receiver is the future openraft awaits).
#[derive(Debug)]
pub struct GlommioOneshot;

/// Sends the one value of a [`GlommioOneshot`] channel.
pub struct GlommioOneshotSender<T>(tokio_sync::oneshot::Sender<T>);

impl oneshot::Oneshot for GlommioOneshot {
    type Sender<T: OptionalSend> = GlommioOneshotSender<T>;
    type Receiver<T: OptionalSend> = tokio_sync::oneshot::Receiver<T>;
    type ReceiverError = tokio_sync::oneshot::error::RecvError;

    fn channel<T: OptionalSend>() -> (Self::Sender<T>, Self::Receiver<T>) {
        let (sender, receiver) = tokio_sync::oneshot::channel();
        (GlommioOneshotSender(sender), receiver)
    }
}

impl<T: OptionalSend> oneshot::OneshotSender<T> for GlommioOneshotSender<T> {
    fn send(self, value: T) -> Result<(), T> {
        self.0.send(value)
    }
}

/// openraft's async mutex: tokio's (FIFO-fair; a guard may be held across `.await`).
pub struct GlommioMutex<T>(tokio_sync::Mutex<T>);

impl<T: OptionalSend + 'static> mutex::Mutex<T> for GlommioMutex<T> {
    type Guard<'a> = tokio_sync::MutexGuard<'a, T>;

    fn new(value: T) -> Self {
        Self(tokio_sync::Mutex::new(value))
    }

    fn lock(&self) -> impl Future<Output = Self::Guard<'_>> + OptionalSend {
        self.0.lock()
    }
}
