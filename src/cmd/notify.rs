//! Telling systemd how the service is doing (`sd_notify(3)`), through the
//! `sd-notify` crate.
//!
//! `contrib/systemd/vcproxy.service` is `Type=notify`: systemd counts vcproxy as
//! started only when it says `READY=1`, so units ordered after it (and
//! `systemctl start`) wait until the listeners are bound and the vCenters were
//! tried, not merely until the process exists. `ExecReload=` sends SIGHUP; the
//! reload code says `RELOADING=1` and then `READY=1` again, so `systemctl reload`
//! returns when the new configuration is in force. `STOPPING=1` shows the
//! graceful shutdown in `systemctl status`.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is unset (run by hand, in a
//! container, in tests), never panics, and only logs a debug line when the
//! message cannot be sent: a service manager that cannot be told is no reason to
//! stop serving. `NOTIFY_SOCKET` stays set (the crate is told not to unset it):
//! these messages are sent more than once over the process's life.

use sd_notify::NotifyState;

/// `READY=1`: start-up (or a reload) is complete.
pub fn ready() {
    send("READY=1", &[NotifyState::Ready]);
}

/// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC now), as systemd's
/// `Type=notify-reload` protocol wants for a reload it did not start itself;
/// follow with [`ready`] when the reload is done (or failed and the old
/// configuration stays).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING=1", &[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::debug!(error = %e, "sd_notify: cannot read CLOCK_MONOTONIC");
            send("RELOADING=1", &[NotifyState::Reloading]);
        }
    }
}

/// `STOPPING=1`: the graceful shutdown has begun.
pub fn stopping() {
    send("STOPPING=1", &[NotifyState::Stopping]);
}

/// `STATUS=text`: one line shown by `systemctl status`.
pub fn status(text: &str) {
    // A line feed would end the STATUS= assignment and start another one.
    let line = text.replace(['\n', '\r'], " ");
    send("STATUS", &[NotifyState::Status(&line)]);
}

fn send(what: &str, states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, message = what, "sd_notify: cannot tell the service manager");
    }
}
