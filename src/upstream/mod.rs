//! The proxy's side facing vCenters: one HTTP client per vCenter, how its
//! certificate is trusted, and the calls to its session service.
//!
//! The list of vCenters ([`Backends`]) is built from the configuration at start
//! and again at each reload, and handed to everything that talks to them (the
//! session pool and the fan-out), so no part of the proxy owns it by accident. A
//! reload keeps the [`Backend`] of every vCenter whose settings did not change
//! (same [`BackendId`], same pooled connections, same vCenter sessions) and makes
//! new ones for the rest.

mod client;
pub(crate) mod session_service;
mod settings;
mod trust;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use client::{TransportError, Upstream, UpstreamResponse, MAX_UPSTREAM_BODY};
pub use settings::{UpstreamConfigError, UpstreamSettings};

use crate::protocol::Family;

/// Which configured vCenter a session belongs to, stable across reloads while the
/// vCenter's settings stay the same. A vCenter whose URL, trust or timeouts change
/// gets a new id, so sessions opened with the old settings are never sent to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendId(u64);

impl BackendId {
    fn next() -> BackendId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        BackendId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// One vCenter: its client and the families it serves.
#[derive(Clone, Debug)]
pub struct Backend {
    pub id: BackendId,
    pub upstream: Upstream,
    /// The families this vCenter serves; empty means both.
    pub families: Vec<Family>,
    /// What it was built from, to tell at a reload whether it changed.
    settings: Arc<UpstreamSettings>,
}

impl Backend {
    /// A client for one vCenter, with a new id.
    pub fn new(
        settings: UpstreamSettings,
        families: Vec<Family>,
    ) -> Result<Backend, UpstreamConfigError> {
        Ok(Backend {
            id: BackendId::next(),
            upstream: Upstream::new(&settings)?,
            families,
            settings: Arc::new(settings),
        })
    }

    /// The name the operator gave it, in headers, logs and metric labels.
    pub fn name(&self) -> &str {
        self.upstream.name()
    }

    /// Whether clients of `family` may be sent to this vCenter.
    pub fn serves(&self, family: Family) -> bool {
        self.families.is_empty() || self.families.contains(&family)
    }

    /// The family to log in with: the client's when served, so that a refusal
    /// passes through in the shape the client expects; for JSON-RPC clients `/api`
    /// (the same session service, on the same path) when served.
    pub fn login_family(&self, preferred: Family) -> Family {
        let preferred = match preferred {
            Family::JsonRpc => Family::Api,
            f => f,
        };
        if self.serves(preferred) {
            preferred
        } else {
            self.families
                .iter()
                .copied()
                .find(|f| f.logs_in())
                .unwrap_or(Family::Api)
        }
    }
}

/// Every configured vCenter, in configuration order (which decides ties between
/// failures and which copy of a duplicate task is kept). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Backends(Arc<[Backend]>);

impl Backends {
    /// A client for each configured vCenter.
    pub fn from_config(
        vcenters: &[crate::config::Vcenter],
    ) -> Result<Backends, UpstreamConfigError> {
        Backends::rebuild(vcenters, &Backends(Arc::new([])))
    }

    /// The vCenters of a new configuration: the `previous` backend of every vCenter
    /// whose name, settings and families are unchanged, a new one for the others.
    pub fn rebuild(
        vcenters: &[crate::config::Vcenter],
        previous: &Backends,
    ) -> Result<Backends, UpstreamConfigError> {
        let backends = vcenters
            .iter()
            .map(|vc| {
                let settings = UpstreamSettings::from(vc);
                let families = vc.families.clone();
                match previous
                    .iter()
                    .find(|b| *b.settings == settings && b.families == families)
                {
                    Some(kept) => Ok(kept.clone()),
                    None => Backend::new(settings, families),
                }
            })
            .collect::<Result<Vec<_>, UpstreamConfigError>>()?;
        Ok(Backends(backends.into()))
    }

    /// The backend with this id, if it is one of these.
    pub fn by_id(&self, id: BackendId) -> Option<&Backend> {
        self.iter().find(|b| b.id == id)
    }
}

impl std::ops::Deref for Backends {
    type Target = [Backend];

    fn deref(&self) -> &[Backend] {
        &self.0
    }
}
