//! `vcproxy sim`: the simulator on the command line.

use crate::sim::{start, Endpoint, Faults, SimConfig, UserSpec};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Run a simulated vCenter: sessions, List Tasks and Get Task in the `/rest` and
/// `/api` families, with deterministic evolving tasks, injectable faults and a
/// JSON control API under `/_sim/` (faults, stats, tasks, expire-sessions, advance).
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,

    /// Number of tasks to generate.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub tasks: usize,

    /// Seed of the task data: the same N and seed give the same tasks and ids.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,

    /// Keep every task exactly as generated (no evolution with time), for exact
    /// comparisons.
    #[arg(long = "static")]
    pub static_tasks: bool,

    /// A user who may log in (HTTP Basic): NAME:PASSWORD sees every task,
    /// NAME:PASSWORD:SVC1,SVC2 only tasks of those services. Repeatable. Default:
    /// administrator@vsphere.local:VMware1! seeing everything. A password containing
    /// ':' needs a trailing service list, possibly empty (NAME:pa:ss:).
    #[arg(long = "user", value_name = "NAME:PASSWORD[:SVC1,SVC2]")]
    pub users: Vec<UserSpec>,

    /// Sessions idle longer than this expire (humantime: 30m, 90s, 1h).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub session_idle: Duration,

    /// Serve HTTPS on a self-signed certificate generated at start, valid for
    /// localhost, 127.0.0.1, ::1 and the listen address.
    #[arg(long)]
    pub tls: bool,

    /// Write the generated certificate (PEM) to this file, for use as a client's CA
    /// or to pin; its SHA-256 fingerprint is printed at start. Requires --tls.
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub write_cert: Option<PathBuf>,

    /// An extra DNS name or IP for the certificate. Repeatable. Requires --tls.
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls")]
    pub tls_names: Vec<String>,

    /// Fault: fixed latency added to every answer (humantime: 50ms).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,

    /// Fault: extra random latency, uniform in [0, DURATION], on top of --latency.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub jitter: Duration,

    /// Fault: fraction (0 to 1) of requests answered 503 service_unavailable.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,

    /// Fault: fraction of requests answered 500 with an HTML (non-JSON) body.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub http500_rate: f64,

    /// Fault: fraction of requests accepted and never answered.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub hang_rate: f64,

    /// Fault: fraction of answers cut mid-body (headers and Content-Length sent,
    /// half the body, then the connection is closed).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub truncate_rate: f64,

    /// Limit the faults to these endpoints (session_create, session_get,
    /// session_delete, tasks_list, tasks_get, other). Repeatable; default: all.
    #[arg(long = "fault-endpoint", value_name = "ENDPOINT")]
    pub fault_endpoints: Vec<Endpoint>,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

impl SimArgs {
    /// The in-process configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            users: self.users.clone(),
            tasks: self.tasks,
            seed: self.seed,
            static_tasks: self.static_tasks,
            session_idle: self.session_idle,
            tls: self.tls,
            tls_names: self.tls_names.clone(),
            faults: Faults {
                latency: self.latency,
                jitter: self.jitter,
                error_rate: self.error_rate,
                http500_rate: self.http500_rate,
                hang_rate: self.hang_rate,
                truncate_rate: self.truncate_rate,
                endpoints: self.fault_endpoints.clone(),
            },
            ..SimConfig::default()
        }
    }
}

/// Runs `vcproxy sim` until Ctrl-C or SIGTERM, then stops gracefully.
pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();

    let config = args.config();
    let sim = start(args.listen, config.clone())
        .await
        .with_context(|| format!("starting the simulator on {}", args.listen))?;
    if let (Some(path), Some(pem)) = (&args.write_cert, sim.cert_pem()) {
        std::fs::write(path, pem)
            .with_context(|| format!("writing the certificate to {}", path.display()))?;
    }

    let base = sim.base_url();
    println!("vcproxy sim listening on {base}");
    println!(
        "  tasks: {} (seed {}, {})",
        config.tasks,
        config.seed,
        if config.static_tasks {
            "static"
        } else {
            "evolving"
        }
    );
    let users = if config.users.is_empty() {
        vec![UserSpec::default_admin()]
    } else {
        config.users.clone()
    };
    for u in &users {
        match &u.services {
            None => println!("  user: {} (every task)", u.name),
            Some(s) => println!("  user: {} (tasks of {})", u.name, s.join(", ")),
        }
    }
    if let Some(fp) = sim.cert_fingerprint() {
        match &args.write_cert {
            Some(path) => println!("  certificate: {} (SHA-256 {fp})", path.display()),
            None => println!("  certificate: SHA-256 {fp}"),
        }
    }
    if config.faults != Faults::default() {
        println!("  faults: {:?}", config.faults);
    }
    println!("  control: {base}/_sim/{{faults,stats,tasks,expire-sessions,advance}}");

    super::signal::shutdown()
        .await
        .context("waiting for Ctrl-C or SIGTERM")?;
    tracing::info!("stopping");
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn flags_build_the_config() {
        let cli = Cli::try_parse_from([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--tasks",
            "5",
            "--seed",
            "9",
            "--static",
            "--user",
            "a:b",
            "--user",
            "c:d:x.y,z",
            "--session-idle",
            "90s",
            "--latency",
            "50ms",
            "--jitter",
            "10ms",
            "--error-rate",
            "0.1",
            "--hang-rate",
            "1",
            "--fault-endpoint",
            "tasks_list",
        ])
        .unwrap();
        let c = cli.sim.config();
        assert_eq!((c.tasks, c.seed, c.static_tasks), (5, 9, true));
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users[1].services.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(c.session_idle, Duration::from_secs(90));
        assert_eq!(c.faults.latency, Duration::from_millis(50));
        assert_eq!(c.faults.error_rate, 0.1);
        assert_eq!(c.faults.hang_rate, 1.0);
        assert_eq!(c.faults.endpoints, vec![Endpoint::TasksList]);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Cli::try_parse_from(["sim", "--error-rate", "2"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--write-cert", "x.pem"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--user", "nopass"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--fault-endpoint", "nope"]).is_err());
        let ok = Cli::try_parse_from(["sim"]).unwrap();
        assert_eq!(ok.sim.config().faults, Faults::default());
    }
}
