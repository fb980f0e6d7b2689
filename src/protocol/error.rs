//! vAPI standard errors, rendered in either API family.
//!
//! Clients of vcproxy parse errors exactly as they parse vCenter's, so every error the
//! proxy (or the simulator) produces itself is one of vAPI's standard errors, in the
//! shape of the family the request came in:
//!
//! * `/rest`: `{"type":"com.vmware.vapi.std.errors.<name>","value":{"messages":[...]}}`
//! * `/api`:  `{"error_type":"<NAME>","messages":[...]}`
//! * JSON-RPC: `{"ERROR":{"com.vmware.vapi.std.errors.<name>":{"messages":[...],..}}}`,
//!   the value of the envelope's `result.error`
//!
//! Errors that a vCenter answered are never re-rendered: their bytes pass through.

use bytes::Bytes;
use http::StatusCode;
use std::fmt;

use super::json::write_json_str;
use super::Family;

/// The vAPI standard errors that vcproxy and its simulator produce themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    Unauthorized,
    NotFound,
    ResourceInaccessible,
    ServiceUnavailable,
    /// `com.vmware.vapi.std.errors.error`: the catch-all for internal failures.
    Error,
    /// An operation the server does not have: what a vAPI server answers a JSON-RPC
    /// call to a service or operation it does not serve.
    OperationNotFound,
}

impl ErrorKind {
    /// The `/rest` suffix, e.g. `invalid_argument`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::ResourceInaccessible => "resource_inaccessible",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::Error => "error",
            ErrorKind::OperationNotFound => "operation_not_found",
        }
    }

    /// The `/api` `error_type`, the upper-case form of [`ErrorKind::name`].
    pub fn api_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::Unauthorized => "UNAUTHORIZED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::ResourceInaccessible => "RESOURCE_INACCESSIBLE",
            ErrorKind::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorKind::Error => "ERROR",
            ErrorKind::OperationNotFound => "OPERATION_NOT_FOUND",
        }
    }

    /// The HTTP status vCenter's runtime uses for this error.
    ///
    /// `unauthorized` is 403, as the vAPI runtimes map it (the reference page's 401
    /// would make clients re-login in a loop); `resource_inaccessible` is 404 as on the
    /// List Tasks reference page.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::ResourceInaccessible => StatusCode::NOT_FOUND,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Error => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::OperationNotFound => StatusCode::NOT_FOUND,
        }
    }

    /// Every kind, for tests and lookups by name.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Unauthenticated,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::ResourceInaccessible,
        ErrorKind::ServiceUnavailable,
        ErrorKind::Error,
        ErrorKind::OperationNotFound,
    ];

    /// The kind whose `/rest` suffix is `name`, if the proxy knows it.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One vAPI error with one localizable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VapiError {
    pub kind: ErrorKind,
    /// Message id, e.g. `vcproxy.filter.invalid`.
    pub id: &'static str,
    /// The English message; names the offending parameter where there is one.
    pub message: String,
}

impl VapiError {
    pub fn new(kind: ErrorKind, id: &'static str, message: impl Into<String>) -> Self {
        VapiError {
            kind,
            id,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::InvalidArgument,
            "vcproxy.invalid_argument",
            message,
        )
    }

    /// vCenter's own message for a missing or unknown session, so that clients which
    /// match on it keep working.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            "com.vmware.vapi.endpoint.method.authentication.required",
            "Authentication required.",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "vcproxy.not_found", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::ServiceUnavailable,
            "vcproxy.service_unavailable",
            message,
        )
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The JSON body in `family`'s error shape.
    pub fn render(&self, family: Family) -> Bytes {
        family.error_body(self)
    }

    /// The `messages` array the REST shapes share: one message with its id.
    pub(super) fn write_messages(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"[{\"args\":[],\"default_message\":");
        write_json_str(out, &self.message);
        out.extend_from_slice(b",\"id\":");
        write_json_str(out, self.id);
        out.extend_from_slice(b"}]");
    }
}

impl fmt::Display for VapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for VapiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_rest_sample_byte_for_byte() {
        let e = VapiError::unauthenticated();
        assert_eq!(
            &e.render(Family::Rest)[..],
            br#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}}"#
        );
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn renders_the_documented_api_sample_byte_for_byte() {
        let e = VapiError::unauthenticated();
        assert_eq!(
            &e.render(Family::Api)[..],
            br#"{"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}"#
        );
    }

    #[test]
    fn every_kind_renders_valid_json_in_both_families() {
        for kind in ErrorKind::ALL {
            let e = VapiError::new(kind, "x.y", "quote \" and \\ and \u{1}");
            let rest: serde_json::Value = serde_json::from_slice(&e.render(Family::Rest)).unwrap();
            assert_eq!(
                rest["type"],
                format!("com.vmware.vapi.std.errors.{}", kind.name())
            );
            assert_eq!(
                rest["value"]["messages"][0]["default_message"],
                "quote \" and \\ and \u{1}"
            );
            let api: serde_json::Value = serde_json::from_slice(&e.render(Family::Api)).unwrap();
            assert_eq!(api["error_type"], kind.api_name());
            assert_eq!(api["messages"][0]["id"], "x.y");
            assert_eq!(api["error_type"], kind.name().to_uppercase());
        }
    }

    #[test]
    fn statuses_follow_the_runtime_mapping() {
        assert_eq!(ErrorKind::InvalidArgument.status(), 400);
        assert_eq!(ErrorKind::Unauthorized.status(), 403);
        assert_eq!(ErrorKind::ResourceInaccessible.status(), 404);
        assert_eq!(ErrorKind::ServiceUnavailable.status(), 503);
    }
}
