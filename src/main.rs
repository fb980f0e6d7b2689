//! The `vcproxy` command line: a thin layer over the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use vcproxy::auth::{AuthMode, Secret};
use vcproxy::cmd::logging::LogHandle;
use vcproxy::config::Config;

#[derive(Parser)]
#[command(
    name = "vcproxy",
    version,
    about = "Caching, aggregating reverse proxy for VMware vCenter's task API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Validate the configuration, then reach (and, with credentials, log in to)
    /// every vCenter and report on each. Exits non-zero if any check fails.
    Check {
        #[arg(long, short, default_value = "proxy.toml")]
        config: PathBuf,
        /// Also test a login as this user (passthrough mode); the password is read
        /// from the environment variable VCPROXY_CHECK_PASSWORD.
        #[arg(long)]
        user: Option<String>,
    },
    /// Start three simulated vCenters and the proxy in front of them, and print
    /// commands to try.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the admin API (metrics, health) listens.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// The first simulator's port; the other two follow.
        #[arg(long, default_value_t = 9001)]
        sim_port: u16,
    },
    /// Run a simulated vCenter (sessions, List Tasks, faults) for trying clients without one.
    Sim(vcproxy::cmd::sim::SimArgs),
    /// Hash a password for the service-account mode's users file (reads it from stdin).
    HashPassword,
    /// Print a shell completion script to standard output
    /// (e.g. `vcproxy completions bash > /etc/bash_completion.d/vcproxy`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output (e.g. `vcproxy man | man -l -`).
    Man,
}

async fn serve(config: Config, log: LogHandle) -> anyhow::Result<()> {
    // First: until a handler is installed, SIGHUP would end the process.
    let mut hangups = vcproxy::cmd::signal::hangups().context("cannot wait for SIGHUP")?;
    let proxy = vcproxy::Proxy::new(&config)?;
    proxy.set_log_control(Box::new(log));
    let listener = tokio::net::TcpListener::bind(config.listen.addr)
        .await
        .with_context(|| format!("listen.addr: cannot listen on {}", config.listen.addr))?;
    let admin = tokio::net::TcpListener::bind(config.admin.addr)
        .await
        .with_context(|| format!("admin.addr: cannot listen on {}", config.admin.addr))?;
    tracing::info!(
        listen = %config.listen.addr,
        admin = %config.admin.addr,
        vcenters = config.vcenters.len(),
        auth = config.auth.mode.name(),
        tls = proxy.is_tls(),
        "vcproxy serving"
    );
    let shutdown = async {
        if let Err(e) = vcproxy::cmd::signal::shutdown().await {
            tracing::error!(error = %e, "cannot wait for Ctrl-C or SIGTERM; stopping");
        }
        vcproxy::cmd::notify::stopping();
    };
    // SIGHUP (systemd's ExecReload, nginx habit): read the file again and apply it;
    // an invalid one is logged, naming the key, and the running configuration stays.
    let reloader = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                vcproxy::cmd::notify::reloading();
                let _ = proxy.reload().await;
                vcproxy::cmd::notify::ready();
            }
        })
    };
    // Ready for systemd (Type=notify) once the listeners are bound and every vCenter
    // was tried; one that cannot be reached is logged and does not stop start-up.
    let tried = vcproxy::cmd::check::try_at_start(&config).await;
    let reachable = tried.iter().filter(|r| r.ok).count();
    vcproxy::cmd::notify::status(&format!(
        "serving {} vCenters ({reachable} reachable at start)",
        tried.len()
    ));
    vcproxy::cmd::notify::ready();
    vcproxy::run(proxy, listener, admin, shutdown).await;
    reloader.abort();
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: configuration errors
/// already quote their cause (toml's excerpt of the offending line).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(cause.trim_end()) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            let log = vcproxy::cmd::logging::init(&config.log);
            serve(config, log).await
        }
        Command::Check { config, user } => {
            let config = Config::load(&config)?;
            println!("configuration OK: {} vCenter(s)", config.vcenters.len());
            let credentials = match (&config.auth.mode, user) {
                (AuthMode::ServiceAccount(sa), _) => {
                    Some((sa.username.clone(), sa.password.clone()))
                }
                (_, Some(user)) => {
                    let pw = std::env::var("VCPROXY_CHECK_PASSWORD")
                        .context("--user needs the password in VCPROXY_CHECK_PASSWORD")?;
                    Some((user, Secret::new(pw)))
                }
                _ => None,
            };
            let reports = vcproxy::cmd::check::check(&config, credentials).await;
            let mut failed = 0;
            for r in &reports {
                println!(
                    "{:<4} {:<16} {}",
                    if r.ok { "ok" } else { "FAIL" },
                    r.vcenter,
                    r.detail
                );
                failed += usize::from(!r.ok);
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} vCenter(s) failed the check", reports.len());
            }
            Ok(())
        }
        Command::Demo {
            listen,
            admin,
            sim_port,
        } => {
            let log = vcproxy::cmd::logging::init(&vcproxy::config::Log::default());
            let demo = vcproxy::cmd::demo::start(vcproxy::cmd::demo::DemoAddrs {
                proxy: listen,
                admin,
                first_sim_port: sim_port,
            })
            .await?;
            println!(
                "{}",
                vcproxy::cmd::demo::instructions(listen, admin, &demo.sims)
            );
            serve(demo.config, log).await?;
            for s in demo.sims {
                s.shutdown().await;
            }
            Ok(())
        }
        Command::Sim(args) => vcproxy::cmd::sim::run_cli(args).await,
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!("{}", vcproxy::auth::users::hash_password(password));
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics when its writer fails (a
            // closed pipe); this way that is an error like any other.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "vcproxy", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}
