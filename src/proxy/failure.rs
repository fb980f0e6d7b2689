//! Why a vCenter gave no usable answer, and which failure the client hears of.
//!
//! Log-ins (the session pool) and List Tasks (the fan-out) ask every vCenter at
//! once and report one failure by the same rule, so both use this module.

use bytes::Bytes;
use http::header::HeaderValue;
use http::StatusCode;
use std::sync::Arc;
use std::time::Instant;

use super::answer::Answer;
use crate::protocol::jsonrpc::error_from_rest;
use crate::protocol::{Family, VapiError, JSON};
use crate::upstream::{TransportError, UpstreamResponse};

/// What the client gets instead of an answer from one vCenter.
#[derive(Debug, Clone)]
pub enum FailureBody {
    /// The vCenter's own answer: passes through unchanged.
    Answer {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// No answer to pass through: the proxy renders this error in the client's family.
    Proxy(VapiError),
}

/// One vCenter's failure, naming the vCenter.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    pub vcenter: Arc<str>,
    pub body: FailureBody,
}

impl UpstreamFailure {
    /// The vCenter answered, but not with what was asked for.
    pub fn answer(vcenter: &str, response: UpstreamResponse) -> Self {
        UpstreamFailure {
            vcenter: vcenter.into(),
            body: FailureBody::Answer {
                status: response.status,
                content_type: response.content_type,
                body: response.body,
            },
        }
    }

    /// No answer at all: `service_unavailable` naming the vCenter and the reason.
    pub fn transport(vcenter: &str, error: &TransportError) -> Self {
        Self::proxy(
            vcenter,
            VapiError::service_unavailable(format!("vCenter {vcenter} gave no answer: {error}")),
        )
    }

    /// The proxy's own error about this vCenter.
    pub fn proxy(vcenter: &str, error: VapiError) -> Self {
        UpstreamFailure {
            vcenter: vcenter.into(),
            body: FailureBody::Proxy(error),
        }
    }

    pub fn status(&self) -> StatusCode {
        match &self.body {
            FailureBody::Answer { status, .. } => *status,
            FailureBody::Proxy(e) => e.status(),
        }
    }

    /// The answer the client gets, in `family` when the proxy renders it.
    ///
    /// A JSON-RPC client can only read vAPI error values: a vCenter's JSON-RPC error
    /// passes through as it is, a REST-shaped one (a refused log-in, made through
    /// a REST session service) is re-encoded with its name and messages.
    pub fn into_answer(self, family: Family) -> Answer {
        let (status, content_type, body) = match self.body {
            FailureBody::Answer { status, body, .. }
                if family == Family::JsonRpc && !body.starts_with(b"{\"ERROR\"") =>
            {
                (status, JSON, error_from_rest(status, &body, &self.vcenter))
            }
            FailureBody::Answer {
                status,
                content_type,
                body,
            } => (status, content_type.unwrap_or(JSON), body),
            FailureBody::Proxy(e) => (e.status(), JSON, e.render(family)),
        };
        Answer {
            status,
            content_type,
            body,
            upstream: HeaderValue::from_str(&self.vcenter).ok(),
            partial: None,
            timing: None,
            spare: 0,
            created: Instant::now(),
            encoded: None,
            incomplete: false,
        }
    }
}

#[cfg(test)]
impl UpstreamFailure {
    /// A vCenter's answer with `status` and no body.
    pub(crate) fn with_status(vcenter: &str, status: u16) -> Self {
        UpstreamFailure::answer(
            vcenter,
            UpstreamResponse {
                status: StatusCode::from_u16(status).unwrap(),
                content_type: None,
                body: Bytes::new(),
            },
        )
    }
}

/// Precedence among failures: the client learns first what it can fix itself.
fn rank(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 0,
        401 => 1,
        403 => 2,
        404 => 3,
        402..=499 => 4,
        500..=599 => 5,
        _ => 6,
    }
}

/// The failure to report, from failures in configuration order: a 400, then 401,
/// 403, 404, other 4xx, then 5xx; ties go to the vCenter listed first.
pub fn pick_failure(failures: Vec<UpstreamFailure>) -> Option<UpstreamFailure> {
    // min_by_key keeps the first of equal keys: ties go to configuration order.
    failures.into_iter().min_by_key(|f| rank(f.status()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_400_401_403_404_4xx_5xx_then_config_order() {
        let pick = |list: &[(&str, u16)]| {
            let f = pick_failure(
                list.iter()
                    .map(|(v, s)| UpstreamFailure::with_status(v, *s))
                    .collect(),
            )
            .unwrap();
            (f.vcenter.to_string(), f.status().as_u16())
        };
        assert_eq!(
            pick(&[("a", 503), ("b", 400), ("c", 401)]),
            ("b".into(), 400)
        );
        assert_eq!(
            pick(&[("a", 503), ("b", 403), ("c", 401)]),
            ("c".into(), 401)
        );
        assert_eq!(pick(&[("a", 404), ("b", 403)]), ("b".into(), 403));
        assert_eq!(pick(&[("a", 500), ("b", 404)]), ("b".into(), 404));
        assert_eq!(pick(&[("a", 500), ("b", 429)]), ("b".into(), 429));
        assert_eq!(pick(&[("a", 503), ("b", 500)]), ("a".into(), 503));
        assert_eq!(pick(&[("a", 500), ("b", 503)]), ("a".into(), 500));
        assert!(pick_failure(vec![]).is_none());
    }

    #[test]
    fn transport_failures_render_service_unavailable_naming_the_vcenter() {
        let f = UpstreamFailure::transport(
            "vc7",
            &TransportError::Timeout(std::time::Duration::from_secs(2)),
        );
        let e = f.into_answer(Family::Api);
        assert_eq!(e.status, 503);
        let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["error_type"], "SERVICE_UNAVAILABLE");
        assert!(v["messages"][0]["default_message"]
            .as_str()
            .unwrap()
            .contains("vc7"));
        assert_eq!(e.upstream.unwrap(), "vc7");
    }
}
