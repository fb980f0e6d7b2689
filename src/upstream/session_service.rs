//! A vCenter's session service, as the proxy calls it: log in, log out, who-am-I.
//!
//! The session pool and `vcproxy check` both talk to it, so the paths, the
//! credentials header and the reading of the session id live here once.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{Method, StatusCode};

use super::client::{TransportError, Upstream, UpstreamResponse};
use crate::auth::Secret;
use crate::protocol::{Family, SESSION_HEADER};

/// Why a log-in gave no session.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// The user name or password cannot travel in an HTTP header.
    Unsendable,
    /// No answer from the vCenter.
    Transport(TransportError),
    /// The vCenter refused: its own answer.
    Refused(UpstreamResponse),
    /// A success whose body holds no usable session id (not a vCenter?).
    NoSessionId(StatusCode),
}

/// The header that carries session `id`, marked sensitive so that it is never
/// logged (hyper and `Debug` honour the mark). `None` if the id cannot be a header.
pub(crate) fn session_header(id: &Secret) -> Option<(HeaderName, HeaderValue)> {
    let mut value = HeaderValue::from_str(id.expose()).ok()?;
    value.set_sensitive(true);
    Some((SESSION_HEADER, value))
}

/// Logs in with HTTP Basic credentials in `family`; the new session and the status
/// the vCenter answered with.
pub(crate) async fn login(
    upstream: &Upstream,
    family: Family,
    user: &str,
    password: &Secret,
) -> Result<(Secret, StatusCode), LoginError> {
    let mut auth =
        crate::auth::basic_auth::encode(user, password.expose()).ok_or(LoginError::Unsendable)?;
    auth.set_sensitive(true);
    let response = upstream
        .send(
            Method::POST,
            family.session_path(),
            &[(AUTHORIZATION, auth)],
            None,
        )
        .await
        .map_err(LoginError::Transport)?;
    if !response.status.is_success() {
        return Err(LoginError::Refused(response));
    }
    match family.session_id(&response.body) {
        Some(id) => Ok((Secret::new(id), response.status)),
        None => Err(LoginError::NoSessionId(response.status)),
    }
}

/// Ends session `id`.
pub(crate) async fn logout(
    upstream: &Upstream,
    family: Family,
    id: &Secret,
) -> Result<UpstreamResponse, TransportError> {
    let header = session_header(id)
        .ok_or_else(|| TransportError::Request("the session id cannot be sent".into()))?;
    upstream
        .send(Method::DELETE, family.session_path(), &[header], None)
        .await
}

/// Who-am-I without a session: a vCenter answers 401 in vAPI form, which is how
/// `check` knows the endpoint speaks the API.
pub(crate) async fn whoami_anonymous(
    upstream: &Upstream,
    family: Family,
) -> Result<UpstreamResponse, TransportError> {
    let (method, path) = family.whoami_request();
    upstream.send(method, path, &[], None).await
}
