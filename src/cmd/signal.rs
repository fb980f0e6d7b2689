//! The signals that stop a server: Ctrl-C, and SIGTERM (what systemd and container
//! runtimes send); and SIGHUP, which asks it to reload its configuration.

/// Resolves when Ctrl-C or SIGTERM arrives. Fails if a handler cannot be installed,
/// so that a server never runs without a way to stop it gracefully.
pub async fn shutdown() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// The SIGHUP stream. Installing it replaces SIGHUP's default action (ending the
/// process) for good, so it is installed before anything else starts.
#[cfg(unix)]
pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}
