//! `vcproxy demo`: three simulated vCenters and the proxy in front, in one process.
//!
//! It is the first thing a new user runs, so it shows the real thing: the same
//! proxy `serve` runs, configured through the same TOML path, in front of three
//! simulators with different task sets and two users who see different tasks.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::sim::{self, SimConfig, SimHandle, UserSpec};

/// The demo's restricted user: sees only two services' tasks.
pub const OPERATOR: (&str, &str) = ("operator@vsphere.local", "Operator1!");

/// Where the demo listens.
#[derive(Debug, Clone, Copy)]
pub struct DemoAddrs {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The first simulator's port; the others follow it. 0 picks free ports.
    pub first_sim_port: u16,
}

/// The running simulators and the configuration that puts the proxy in front.
pub struct Demo {
    pub sims: Vec<SimHandle>,
    pub config: Config,
}

/// Starts three simulators (200, 150 and 100 evolving tasks from different seeds)
/// and builds the proxy configuration for them.
pub async fn start(addrs: DemoAddrs) -> anyhow::Result<Demo> {
    let services = sim::service_ids();
    let users = vec![
        UserSpec::default_admin(),
        UserSpec::restricted(OPERATOR.0, OPERATOR.1, services.iter().take(2).copied()),
    ];
    let mut sims = Vec::new();
    for (i, tasks) in [200usize, 150, 100].into_iter().enumerate() {
        let port = if addrs.first_sim_port == 0 {
            0
        } else {
            addrs.first_sim_port + i as u16
        };
        let config = SimConfig {
            users: users.clone(),
            tasks,
            seed: 1 + i as u64,
            faults: sim::Faults {
                latency: Duration::from_millis(40),
                jitter: Duration::from_millis(30),
                ..Default::default()
            },
            ..SimConfig::default()
        };
        let addr = SocketAddr::new(addrs.proxy.ip(), port);
        sims.push(sim::start(addr, config).await?);
    }
    let vcenters: String = sims
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "[[vcenter]]\nname = \"vc{}\"\nurl = \"{}\"\n\n",
                i + 1,
                s.base_url()
            )
        })
        .collect();
    let toml = format!(
        "[listen]\naddr = \"{}\"\n\n[admin]\naddr = \"{}\"\n\n[cache]\nttl = \"5s\"\n\n{vcenters}",
        addrs.proxy, addrs.admin
    );
    let config = Config::from_toml_str(&toml)?;
    Ok(Demo { sims, config })
}

/// What to try, printed once the demo is up.
pub fn instructions(proxy: SocketAddr, admin: SocketAddr, sims: &[SimHandle]) -> String {
    let (user, password) = (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD);
    let backends: Vec<String> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  vc{} (simulated) at {}", i + 1, s.base_url()))
        .collect();
    format!(
        r#"vcproxy demo: three simulated vCenters behind one proxy.

{backends}
  proxy         at http://{proxy}
  web view      at http://{proxy}/ui/   (log in as {user} / {password}; the tasks move as the simulators' time runs)
  metrics       at http://{admin}/metrics

Log in (the proxy logs in to all three vCenters once and pools the sessions):
  SID=$(curl -s -X POST -u '{user}:{password}' http://{proxy}/rest/com/vmware/cis/session | sed 's/.*"value":"\([^"]*\)".*/\1/')

List running and failed tasks of all three vCenters, merged (/rest family):
  curl -s -H "vmware-api-session-id: $SID" 'http://{proxy}/rest/cis/tasks?filter_spec.services.1=com.vmware.esx.settings.clusters.software&filter_spec.status=RUNNING&filter_spec.status=FAILED' -D - | head -20

Run it again within 5 s: "vcproxy-cache: hit", and no vCenter is asked.

The same question in the /api family (answers of another shape, cached apart):
  curl -s -H "vmware-api-session-id: $SID" -X POST 'http://{proxy}/api/cis/tasks?action=list' \
       -H 'content-type: application/json' \
       -d '{{"filter_spec":{{"services":["com.vmware.esx.settings.clusters.software"],"status":["FAILED","RUNNING"]}}}}' -D - | head -20

Every vCenter's tasks with their vCenter named (vcproxy's own API), and the same live:
  curl -s -H "vmware-api-session-id: $SID" 'http://{proxy}/vcproxy/v1/tasks?filter_spec.services=com.vmware.esx.settings.clusters.software&vcenter=vc1&vcenter=vc2'
  curl -sN -H "vmware-api-session-id: $SID" 'http://{proxy}/vcproxy/v1/tasks/watch?filter_spec.services=com.vmware.esx.settings.clusters.software'

A second user who may see only two services ({op}, password {op_pw}) gets a different answer:
  curl -s -X POST -u '{op}:{op_pw}' http://{proxy}/api/session

Press Ctrl-C to stop.
"#,
        backends = backends.join("\n"),
        op = OPERATOR.0,
        op_pw = OPERATOR.1,
    )
}
