//! The process's log output (`[log]`), built so that a reload can change its level
//! and its format (text or JSON lines) in place.
//!
//! `RUST_LOG`, when set, overrides `log.level` at start and at every reload: an
//! operator who set it by hand is debugging and keeps what was asked for.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

use crate::config::{Log, LogFormat};
use crate::LogControl;

type FormatLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Switches the installed subscriber's level and format.
pub struct LogHandle {
    format: reload::Handle<FormatLayer, Registry>,
    filter: Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>,
}

/// Installs the process's log subscriber with `log`'s level and format.
pub fn init(log: &Log) -> LogHandle {
    let (format, format_handle) = reload::Layer::new(format_layer(log.format));
    let (filter, filter_handle) = reload::Layer::new(filter(log));
    tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .init();
    LogHandle {
        format: format_handle,
        filter: Box::new(move |f| filter_handle.reload(f)),
    }
}

fn format_layer(format: LogFormat) -> FormatLayer {
    // Colours only for a person at a terminal, not for journald or a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let layer = fmt::layer().with_target(false).with_ansi(ansi);
    match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer.boxed(),
    }
}

/// `log.level`, or `RUST_LOG` when set; with the access log on, its target at
/// `info` whatever the level.
fn filter(log: &Log) -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    if log.access {
        filter.add_directive("vcproxy::access=info".parse().expect("a valid directive"))
    } else {
        filter
    }
}

impl LogControl for LogHandle {
    fn apply(&self, log: &Log) -> Result<(), String> {
        self.format
            .reload(format_layer(log.format))
            .map_err(|e| format!("log.format: {e}"))?;
        (self.filter)(filter(log)).map_err(|e| format!("log.level: {e}"))?;
        if std::env::var_os("RUST_LOG").is_some() {
            return Err("log.level: RUST_LOG is set and overrides it".into());
        }
        Ok(())
    }
}
