//! The cluster layer's settings from the configuration's `[cluster]` section.

use std::time::Duration;

use super::ClusterSettings;

/// Consecutive failed calls that stop the replica calling Redis.
const BREAKER_FAILURES: u32 = 3;
/// While stopped, one call this often finds out whether Redis is back.
const BREAKER_PROBE: Duration = Duration::from_secs(2);

impl From<&crate::config::Cluster> for ClusterSettings {
    fn from(c: &crate::config::Cluster) -> ClusterSettings {
        ClusterSettings {
            url: c.redis.clone(),
            username: c.username.clone(),
            password: c.password.clone(),
            ca_certs: c.ca_certs.clone(),
            secret: c.secret.clone(),
            key_prefix: c.key_prefix.clone(),
            command_timeout: c.command_timeout,
            connect_timeout: c.connect_timeout,
            breaker_failures: BREAKER_FAILURES,
            breaker_probe: BREAKER_PROBE,
        }
    }
}
