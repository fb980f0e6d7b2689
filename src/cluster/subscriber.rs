//! The one pub/sub connection per replica: subscribed to the done and logout
//! channels, fanning messages out in-process (waiters share it), reconnecting with
//! backoff, and sending [`Revocation::Resync`] after a reconnection (messages
//! published meanwhile were missed).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};

use super::store::classify;
use super::{Inner, Revocation};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How often an idle subscription is checked with a `PING` (the breaker's probe
/// period, within these bounds): a connection that died without a reset (a stalled
/// network, a frozen server) is noticed about this late.
const PING_MIN: Duration = Duration::from_secs(1);
const PING_MAX: Duration = Duration::from_secs(5);

pub(crate) async fn run(inner: Arc<Inner>) {
    let backoff_max = inner.store.breaker_probe().max(BACKOFF_MIN);
    let mut backoff = BACKOFF_MIN;
    let mut subscribed_before = false;
    loop {
        match connect(&inner).await {
            Ok((sink, stream)) => {
                backoff = BACKOFF_MIN;
                inner.subscribed.send_replace(true);
                if subscribed_before {
                    let _ = inner.revocations.send(Revocation::Resync);
                }
                subscribed_before = true;
                serve(&inner, sink, stream).await;
                inner.subscribed.send_replace(false);
                tracing::debug!("Redis subscriber connection lost; reconnecting");
            }
            Err(kind) => {
                inner.metrics.error(kind);
                tracing::debug!(kind, "Redis subscriber could not connect");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(backoff_max);
    }
}

/// Connects and subscribes, each step bounded. `Err`: the metric kind.
async fn connect(inner: &Inner) -> Result<(PubSubSink, PubSubStream), &'static str> {
    let store = &inner.store;
    let mut pubsub =
        tokio::time::timeout(store.connect_timeout(), store.client().get_async_pubsub())
            .await
            .map_err(|_| "timeout")?
            .map_err(|e| classify(&e))?;
    let channels = [inner.done_channel.as_str(), inner.logout_channel.as_str()];
    tokio::time::timeout(
        store.command_timeout().max(store.connect_timeout()),
        pubsub.subscribe(&channels),
    )
    .await
    .map_err(|_| "timeout")?
    .map_err(|e| classify(&e))?;
    Ok(pubsub.split())
}

/// Hands messages out until the connection ends or stops answering pings.
async fn serve(inner: &Inner, mut sink: PubSubSink, mut stream: PubSubStream) {
    let ping_timeout = inner.store.command_timeout().max(Duration::from_secs(1));
    let every = inner.store.breaker_probe().clamp(PING_MIN, PING_MAX);
    let mut ping = tokio::time::interval(every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                dispatch(inner, message.get_channel_name(), message.get_payload_bytes());
            }
            _ = ping.tick() => {
                let pong = tokio::time::timeout(ping_timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

fn dispatch(inner: &Inner, channel: &str, payload: &[u8]) {
    let Ok(id) = <[u8; 32]>::try_from(payload) else {
        tracing::debug!("ignoring a malformed message on a cluster channel");
        return;
    };
    if channel == inner.done_channel {
        // No waiter listening is fine.
        let _ = inner.done.send(id);
    } else if channel == inner.logout_channel {
        let _ = inner.revocations.send(Revocation::Handle(id));
    }
}
