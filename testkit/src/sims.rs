//! Simulated vCenters on loopback, and the users they know.

use vcproxy::sim::{self, SimConfig, SimHandle};

/// The simulators' administrator: sees every task.
pub const ADMIN: (&str, &str) = (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD);

/// A restricted user of [`sim_config`]'s simulators: sees the tasks of the first two
/// services only.
pub const OPERATOR: (&str, &str) = ("operator@vsphere.local", "Operator1!");

/// A static simulator with `tasks` tasks from `seed`, and two users: [`ADMIN`] and
/// [`OPERATOR`].
pub fn sim_config(tasks: usize, seed: u64) -> SimConfig {
    SimConfig {
        users: vec![
            sim::UserSpec::default_admin(),
            sim::UserSpec::restricted(
                OPERATOR.0,
                OPERATOR.1,
                sim::service_ids().into_iter().take(2),
            ),
        ],
        tasks,
        seed,
        static_tasks: true,
        ..SimConfig::default()
    }
}

/// One simulator on 127.0.0.1, on a port of its own.
pub async fn start_sim(config: SimConfig) -> SimHandle {
    sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("simulator")
}

/// One simulator per configuration, started in order (vc1, vc2, ... in a proxy
/// configuration built from their URLs).
pub async fn start_sims(configs: Vec<SimConfig>) -> Vec<SimHandle> {
    let mut sims = Vec::new();
    for c in configs {
        sims.push(start_sim(c).await);
    }
    sims
}
