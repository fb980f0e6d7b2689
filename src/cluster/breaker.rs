//! The circuit breaker in front of every Redis call.
//!
//! Closed: calls go through; `failures` consecutive failures (timeouts, I/O,
//! refused commands) open it. Open: calls are refused at once, without touching
//! Redis, except one probe every `probe` period (half-open); any success closes it.
//! It starts open with a probe due at once, so nothing counts as up before Redis
//! first answered.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Whether a call may go to Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The breaker is closed.
    Closed,
    /// The breaker is open and this call is its probe.
    Probe,
    /// The breaker is open: do not call.
    Refused,
}

/// What a recorded outcome changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Closed,
    Opened,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { next_probe: Instant },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    probe: Duration,
}

impl Breaker {
    /// A breaker that opens after `threshold` consecutive failures (at least 1) and
    /// probes every `probe` while open. It starts open, its first probe due now.
    pub(crate) fn new(threshold: u32, probe: Duration) -> Breaker {
        Breaker {
            state: Mutex::new(State::Open {
                next_probe: Instant::now(),
            }),
            threshold: threshold.max(1),
            probe,
        }
    }

    pub(crate) fn admit(&self) -> Admit {
        let mut state = self.lock();
        match &mut *state {
            State::Closed { .. } => Admit::Closed,
            State::Open { next_probe } => {
                let now = Instant::now();
                if now >= *next_probe {
                    *next_probe = now + self.probe;
                    Admit::Probe
                } else {
                    Admit::Refused
                }
            }
        }
    }

    pub(crate) fn success(&self) -> Transition {
        let mut state = self.lock();
        let was_open = matches!(*state, State::Open { .. });
        *state = State::Closed { failures: 0 };
        if was_open {
            Transition::Closed
        } else {
            Transition::None
        }
    }

    pub(crate) fn failure(&self) -> Transition {
        let mut state = self.lock();
        match &mut *state {
            State::Closed { failures } => {
                *failures += 1;
                if *failures >= self.threshold {
                    *state = State::Open {
                        next_probe: Instant::now() + self.probe,
                    };
                    Transition::Opened
                } else {
                    Transition::None
                }
            }
            // A failed probe (or a call let through before the breaker opened):
            // the next probe is already scheduled.
            State::Open { .. } => Transition::None,
        }
    }

    /// Closed, and the last call succeeded.
    pub(crate) fn is_up(&self) -> bool {
        matches!(*self.lock(), State::Closed { failures: 0 })
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { .. })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn starts_open_with_a_probe_due() {
        let b = Breaker::new(3, HOUR);
        assert!(!b.is_up());
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::Refused, "one probe per period");
        assert_eq!(b.success(), Transition::Closed);
        assert!(b.is_up());
        assert_eq!(b.admit(), Admit::Closed);
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_until_a_probe_is_due() {
        let b = Breaker::new(3, HOUR);
        b.success();
        assert_eq!(b.failure(), Transition::None);
        assert!(!b.is_up(), "the last call failed");
        assert_eq!(b.admit(), Admit::Closed);
        assert_eq!(b.success(), Transition::None, "a success resets the count");
        assert_eq!(b.failure(), Transition::None);
        assert_eq!(b.failure(), Transition::None);
        assert_eq!(b.failure(), Transition::Opened);
        assert!(b.is_open());
        for _ in 0..100 {
            assert_eq!(b.admit(), Admit::Refused);
        }
        assert_eq!(
            b.failure(),
            Transition::None,
            "failures while open change nothing"
        );
    }

    #[test]
    fn a_probe_that_fails_keeps_it_open_one_that_succeeds_closes_it() {
        // A zero period: a probe is always due once open.
        let b = Breaker::new(1, Duration::ZERO);
        b.success();
        assert_eq!(b.failure(), Transition::Opened);
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.failure(), Transition::None);
        assert!(b.is_open());
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.success(), Transition::Closed);
        assert_eq!(b.admit(), Admit::Closed);
        assert!(b.is_up());
    }
}
