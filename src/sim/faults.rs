//! Fault injection: how an unhealthy vCenter misbehaves.
//!
//! The proxy must survive a slow vCenter (latency and jitter), one whose services
//! are down (`service_unavailable` in vAPI's shape: 503 in the REST families, a
//! `result.error` on HTTP 200 in JSON-RPC), one whose front end fails
//! with a non-JSON 500 page (as vCenter's reverse proxy does), one that accepts a
//! request and never answers, and one whose connection dies mid-body. Each is a
//! fraction of requests (1 = every request), optionally limited to some endpoints,
//! settable at start and replaced at run time (`PUT /_sim/faults`).
//!
//! Draws use a seeded PRNG so that a sequential client sees the same sequence of
//! faults on every run with the same seed.

use super::rng::SplitMix64;
use super::stats::Endpoint;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// The faults in force. Every fraction is in `[0, 1]`; all zero means healthy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every answer (humantime in JSON: `"50ms"`).
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// A uniformly random extra delay in `[0, jitter]`, on top of `latency`.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// Fraction answered `service_unavailable` in the request's protocol: 503 with
    /// a vAPI body in `/rest` and `/api`, HTTP 200 with a `result.error` in JSON-RPC.
    pub error_rate: f64,
    /// Fraction answered 500 with an HTML (non-JSON) body.
    pub http500_rate: f64,
    /// Fraction accepted and never answered (until the simulator shuts down).
    pub hang_rate: f64,
    /// Fraction whose answer sends its headers (with `Content-Length`) and part of
    /// its body, then closes the connection.
    pub truncate_rate: f64,
    /// Endpoints the faults apply to; empty means all of them.
    pub endpoints: Vec<Endpoint>,
}

impl Faults {
    /// Checks that every fraction is in `[0, 1]`.
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("http500_rate", self.http500_rate),
            ("hang_rate", self.hang_rate),
            ("truncate_rate", self.truncate_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(InvalidFaults(format!("{name} must be in [0, 1], not {v}")));
            }
        }
        Ok(())
    }

    fn applies_to(&self, endpoint: Endpoint) -> bool {
        self.endpoints.is_empty() || self.endpoints.contains(&endpoint)
    }
}

/// A [`Faults`] value that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid faults: {0}")]
pub struct InvalidFaults(pub String);

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answer normally; cut the body short if `truncate`.
    Proceed {
        truncate: bool,
    },
    Hang,
    Unavailable,
    Http500,
}

/// The faults in force and the PRNG that draws them.
pub(crate) struct FaultState {
    faults: RwLock<Faults>,
    rng: Mutex<SplitMix64>,
}

impl FaultState {
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        FaultState {
            faults: RwLock::new(faults),
            rng: Mutex::new(SplitMix64::new(seed ^ 0xfa17_5eed)),
        }
    }

    pub(crate) fn get(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set(&self, faults: Faults) -> Result<(), InvalidFaults> {
        faults.validate()?;
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
        Ok(())
    }

    /// The delay and the action for one request to `endpoint`.
    pub(crate) fn plan(&self, endpoint: Endpoint) -> (Duration, Action) {
        let f = self.faults.read().unwrap_or_else(|e| e.into_inner());
        if !f.applies_to(endpoint) {
            return (Duration::ZERO, Action::Proceed { truncate: false });
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut hit = |rate: f64| rate > 0.0 && (rate >= 1.0 || rng.unit() < rate);
        let action = if hit(f.hang_rate) {
            Action::Hang
        } else if hit(f.error_rate) {
            Action::Unavailable
        } else if hit(f.http500_rate) {
            Action::Http500
        } else {
            Action::Proceed {
                truncate: hit(f.truncate_rate),
            }
        };
        let jitter = if f.jitter.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(f.jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.next_u64() % nanos.saturating_add(1))
        };
        (f.latency.saturating_add(jitter), action)
    }
}

/// The body of a 500 from a broken front end: HTML, as vCenter's envoy/rhttpproxy
/// would send, so that clients expecting JSON must cope.
pub(crate) const HTTP500_BODY: &str = "<html><head><title>500 Internal Server Error</title></head>\
<body><h1>500 Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>\n";

/// The simulator's response body: whole, or cut short with a connection error.
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    /// Sends `part`, pauses so that it is flushed to the client, then fails, which
    /// makes hyper close the connection (HTTP/1) or reset the stream (HTTP/2)
    /// short of the advertised length.
    Truncated {
        part: Option<Bytes>,
        full_len: u64,
        pause: Pin<Box<tokio::time::Sleep>>,
    },
}

impl SimBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        SimBody::Full(Some(b.into()))
    }

    pub(crate) fn empty() -> Self {
        SimBody::Full(None)
    }

    /// This body cut to its first half (at least one byte short).
    pub(crate) fn truncate(self) -> Self {
        let whole = match self {
            SimBody::Full(b) => b.unwrap_or_default(),
            t @ SimBody::Truncated { .. } => return t,
        };
        let full_len = whole.len() as u64;
        let part = whole.slice(..whole.len() / 2);
        SimBody::Truncated {
            part: Some(part).filter(|p| !p.is_empty()),
            full_len,
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(20))),
        }
    }
}

/// The error that ends a truncated body.
#[derive(Debug, thiserror::Error)]
#[error("simulated connection loss mid-body")]
pub(crate) struct Truncated;

impl Body for SimBody {
    type Data = Bytes;
    type Error = Truncated;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Truncated>>> {
        match self.get_mut() {
            SimBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Truncated { part, pause, .. } => {
                if let Some(p) = part.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                match pause.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => Poll::Ready(Some(Err(Truncated))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            SimBody::Truncated { full_len, .. } => SizeHint::with_exact(*full_len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Faults::default().validate().is_ok());
        let f = Faults {
            error_rate: 1.5,
            ..Faults::default()
        };
        assert!(f.validate().is_err());
        let f = Faults {
            hang_rate: f64::NAN,
            ..Faults::default()
        };
        assert!(f.validate().is_err());
    }

    #[test]
    fn json_uses_humantime_and_defaults() {
        let f: Faults = serde_json::from_str(
            r#"{"latency":"50ms","error_rate":0.5,"endpoints":["tasks_list"]}"#,
        )
        .unwrap();
        assert_eq!(f.latency, Duration::from_millis(50));
        assert_eq!(f.jitter, Duration::ZERO);
        assert_eq!(f.endpoints, vec![Endpoint::TasksList]);
        assert!(serde_json::from_str::<Faults>(r#"{"bogus":1}"#).is_err());
        let back: Faults = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn rates_of_one_and_zero_are_certain() {
        let s = FaultState::new(
            Faults {
                error_rate: 1.0,
                endpoints: vec![Endpoint::TasksList],
                ..Faults::default()
            },
            1,
        );
        for _ in 0..100 {
            assert_eq!(s.plan(Endpoint::TasksList).1, Action::Unavailable);
            assert_eq!(
                s.plan(Endpoint::SessionCreate).1,
                Action::Proceed { truncate: false }
            );
        }
        s.set(Faults {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            ..Faults::default()
        })
        .unwrap();
        for _ in 0..100 {
            let (d, a) = s.plan(Endpoint::TasksGet);
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(10));
            assert_eq!(a, Action::Proceed { truncate: false });
        }
    }
}
