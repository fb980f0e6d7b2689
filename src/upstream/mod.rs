//! The proxy's side facing vCenters: one HTTP client per vCenter, how its
//! certificate is trusted, and the calls to its session service.
//!
//! The list of vCenters ([`Backends`]) is built once, at start, from the
//! configuration, and handed to everything that talks to them (the session pool and
//! the fan-out), so no part of the proxy owns it by accident.

mod client;
pub(crate) mod session_service;
mod settings;
mod trust;

use std::sync::Arc;

pub use client::{TransportError, Upstream, UpstreamResponse, MAX_UPSTREAM_BODY};
pub use settings::{UpstreamConfigError, UpstreamSettings};

use crate::protocol::Family;

/// One vCenter: its client and the families it serves.
#[derive(Clone, Debug)]
pub struct Backend {
    pub upstream: Upstream,
    /// The families this vCenter serves; empty means both.
    pub families: Vec<Family>,
}

impl Backend {
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
        let backends = vcenters
            .iter()
            .map(|vc| {
                Ok(Backend {
                    upstream: Upstream::new(&UpstreamSettings::from(vc))?,
                    families: vc.families.clone(),
                })
            })
            .collect::<Result<Vec<_>, UpstreamConfigError>>()?;
        Ok(Backends(backends.into()))
    }
}

impl std::ops::Deref for Backends {
    type Target = [Backend];

    fn deref(&self) -> &[Backend] {
        &self.0
    }
}
