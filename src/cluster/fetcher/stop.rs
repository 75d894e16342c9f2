//! The stop signal of a fetcher: a flag and an event, so every wait can also wait on it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;

/// Tells a fetcher to stop; every wait of the fetcher also waits on it.
#[derive(Default)]
pub struct StopSignal {
    stopped: Cell<bool>,
    event: event_listener::Event,
}

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> Rc<StopSignal> {
        Rc::new(StopSignal::default())
    }

    /// Stops every fetcher that holds this signal.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.event.notify(usize::MAX);
    }

    /// Whether [`StopSignal::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Resolves once the signal is given.
    pub async fn stopped(&self) {
        while !self.is_stopped() {
            let listener = self.event.listen();
            // Checked again after listening, so a stop between the two is not missed.
            if self.is_stopped() {
                return;
            }
            listener.await;
        }
    }

    /// Sleeps for `delay`; false when the signal came first.
    pub async fn sleep(&self, delay: Duration) -> bool {
        let sleep = glommio::timer::sleep(delay).fuse();
        let stopped = self.stopped().fuse();
        futures::pin_mut!(sleep, stopped);
        futures::select! {
            _ = sleep => !self.is_stopped(),
            _ = stopped => false,
        }
    }
}
