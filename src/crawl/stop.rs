/*!
Why a crawl stops, and how a stop travels: the first request of a session wins, its tokens
reach every task, and the lanes' reasons combine into the one that most needs the user.
*/

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::LaneSummary;
use crate::domain::ProviderId;
use crate::providers::Rejection;
use crate::store;

/// Why a crawl ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// Nothing left to do.
    Finished,
    /// Google says the day's quota is spent.
    QuotaExhausted { message: String },
    /// `--daily-budget` is spent.
    BudgetSpent,
    /// The provider refused the key, the project or the client.
    ApiRejected {
        provider: ProviderId,
        kind: Rejection,
        message: String,
    },
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The store failed (the error itself is returned by [`crawl`](super::crawl)).
    StoreFailed,
}

impl StopReason {
    /// The `runs.stop_reason` value.
    pub fn code(&self) -> &'static str {
        match self {
            StopReason::Finished => "finished",
            StopReason::QuotaExhausted { .. } => "quota",
            StopReason::BudgetSpent => "budget",
            StopReason::ApiRejected { .. } => "api-rejected",
            StopReason::Interrupted => "interrupted",
            StopReason::StoreFailed => "error",
        }
    }
}

/// Signals from outside: `interrupt` stops claiming, `abort` also cuts requests in flight.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub interrupt: CancellationToken,
    pub abort: CancellationToken,
}

/// The first stop request of a session, and the tokens that carry it to every task.
#[derive(Debug, Clone)]
pub(super) struct Stop {
    pub(super) soft: CancellationToken,
    pub(super) hard: CancellationToken,
    pub(super) interrupt: CancellationToken,
    pub(super) reason: Arc<Mutex<Option<StopReason>>>,
    pub(super) error: Arc<Mutex<Option<store::Error>>>,
}

impl Stop {
    pub(super) fn new(control: &Control) -> Stop {
        Stop {
            soft: control.interrupt.child_token(),
            hard: control.abort.child_token(),
            interrupt: control.interrupt.clone(),
            reason: Arc::default(),
            error: Arc::default(),
        }
    }

    pub(super) fn request(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::info!(reason = reason.code(), "stopping");
            *slot = Some(reason);
        }
        self.soft.cancel();
    }

    pub(super) fn fail(&self, e: store::Error) {
        // The first error ends the crawl and is printed once, by `main`; later ones (often its
        // echoes from other tasks) only in the log.
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(_) => tracing::debug!("after the first store error: {e}"),
            None => *slot = Some(e),
        }
        drop(slot);
        self.request(StopReason::StoreFailed);
        self.hard.cancel();
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.soft.is_cancelled()
    }

    pub(super) fn reason(&self) -> StopReason {
        let slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(r) => r.clone(),
            None if self.interrupt.is_cancelled() => StopReason::Interrupted,
            None => StopReason::Finished,
        }
    }

    pub(super) fn take_error(&self) -> Option<store::Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The stop that most needs the user, of all lanes.
pub(super) fn combined(lanes: &[LaneSummary]) -> StopReason {
    let rank = |s: &StopReason| match s {
        StopReason::StoreFailed => 5,
        StopReason::Interrupted => 4,
        StopReason::ApiRejected { .. } => 3,
        StopReason::QuotaExhausted { .. } => 2,
        StopReason::BudgetSpent => 1,
        StopReason::Finished => 0,
    };
    lanes
        .iter()
        .map(|l| &l.stop)
        .max_by_key(|s| rank(s))
        .cloned()
        .unwrap_or(StopReason::Finished)
}
