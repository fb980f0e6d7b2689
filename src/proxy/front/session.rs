//! Sessions, in every protocol: one namespace of session ids, so a session made by
//! one protocol's log-in works in the others.

use bytes::Bytes;
use http::StatusCode;
use std::sync::Arc;
use std::time::SystemTime;

use super::{client_session, Reply};
use crate::protocol::{Family, VapiError};
use crate::proxy::answer::Answer;
use crate::proxy::sessions::{Credentials, LoginError};
use crate::proxy::state::Proxy;

pub(super) async fn login(
    proxy: &Proxy,
    family: Family,
    credentials: Option<Credentials>,
) -> Reply {
    let user: Option<Arc<str>> = credentials.as_ref().map(|c| c.user.as_str().into());
    let reply = match proxy.sessions.login(family, credentials).await {
        Ok(id) => {
            let (status, body) = family.login_answer(&id);
            Reply::new(Answer::json(status, body))
        }
        Err(LoginError::Proxy(e)) => Reply::error(family, &e),
        Err(LoginError::Upstream(f)) => Reply::new(f.into_answer(family)),
    };
    match &user {
        Some(user) => reply.by(user),
        None => reply,
    }
}

pub(super) async fn whoami(proxy: &Proxy, family: Family, session: Option<&str>) -> Reply {
    let Some(session) = client_session(proxy, session).await else {
        return Reply::error(family, &VapiError::unauthenticated());
    };
    let time = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    let body = family.session_info(
        &session.user,
        &time(session.created),
        &time(SystemTime::now()),
    );
    Reply::new(Answer::json(StatusCode::OK, Bytes::from(body))).by(&session.user)
}

pub(super) async fn logout(proxy: &Proxy, family: Family, session: Option<&str>) -> Reply {
    match session {
        Some(id) if proxy.sessions.logout(id).await => {
            let (status, body) = family.logout_answer();
            Reply::new(Answer::json(status, body))
        }
        _ => Reply::error(family, &VapiError::unauthenticated()),
    }
}
