//! Connections that hold a slot without using it (issue 16): silent after
//! connecting, after the TLS handshake, after the HTTP/2 preface, in the middle of
//! an HTTP/2 header block, or idle between keep-alive requests, are closed by the
//! proxy; and `/readyz` says not ready while every connection slot is taken.
//! Raw sockets: no client library would behave this badly.

use super::*;
use http::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client listener with deadlines `header` (to a first request head) and `idle`
/// (between requests), and TLS with `tls`.
async fn proxy_with(header: &str, idle: &str, tls: Option<&vcproxy::net::tls::SelfSigned>) -> Env {
    let sims = common::start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let mut head = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\nheader_read_timeout = \"{header}\"\nidle_timeout = \"{idle}\"\n"
    );
    if let Some(cert) = tls {
        let dir = common::temp_dir("silent-tls");
        std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
        head.push_str(&format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            dir.join("cert.pem").display().to_string(),
            dir.join("key.pem").display().to_string()
        ));
    }
    head.push_str("[admin]\naddr = \"127.0.0.2:0\"\n");
    Env::start_with_config(sims, &common::config(&head, &urls, |_| String::new())).await
}

/// Reads until the proxy closes the connection (EOF or reset); panics if it is
/// still open after `within`.
async fn closed_within<R: tokio::io::AsyncRead + Unpin>(
    conn: &mut R,
    within: Duration,
    what: &str,
) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: still open after {within:?}");
    got
}

/// [`closed_within`] 15 s (the deadlines under test are 1 s; the bound only turns a
/// regression into a failure instead of a hang).
async fn closed_by_proxy<R: tokio::io::AsyncRead + Unpin>(conn: &mut R, what: &str) -> Vec<u8> {
    closed_within(conn, Duration::from_secs(15), what).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed() {
    let env = proxy_with("1s", "1s", None).await;
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    closed_by_proxy(&mut conn, "silent after connecting").await;
    // Half a request head, then nothing: hyper's header timeout, or ours.
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    conn.write_all(b"GET /rest/cis/tasks HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    closed_by_proxy(&mut conn, "half a head").await;
    env.stop().await;
}

/// The HTTP/2 client preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_preface_then_nothing_or_an_unfinished_header_block_is_closed() {
    let env = proxy_with("1s", "1s", None).await;
    // The preface and an empty SETTINGS frame, then silence.
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    closed_by_proxy(&mut conn, "HTTP/2 preface then nothing").await;

    // A HEADERS frame without END_HEADERS (a CONTINUATION is owed), then silence.
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    // HPACK: :method GET (indexed 2), :scheme http (6), :path / (4).
    conn.write_all(&frame(1, 0x1, 1, &[0x82, 0x86, 0x84]))
        .await
        .unwrap();
    closed_by_proxy(&mut conn, "HEADERS without END_HEADERS").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_silent_after_the_handshake_is_closed() {
    let cert = vcproxy::net::tls::self_signed(&["127.0.0.1"]).unwrap();
    let env = proxy_with("1s", "1s", Some(&cert)).await;
    let roots = common::roots(&cert.cert_pem);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("the handshake");
    closed_by_proxy(&mut tls, "TLS, silent after the handshake").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    // The header deadline is far off: only the idle limit can close it in time.
    let env = proxy_with("60s", "1s", None).await;
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    // Connected a moment before the request, so that the proxy has looked at the
    // connection (and its 60 s first-request deadline) before the request arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(b"GET /api/session HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut conn, Duration::from_secs(30), "idle after one answer").await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "answered first: {text}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_every_connection_slot_is_taken() {
    // Long deadlines here: the slots must stay taken while /readyz is asked.
    let sims = common::start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head =
        "[listen]\naddr = \"127.0.0.1:0\"\nmax_connections = 2\nheader_read_timeout = \"2s\"\n\
                [admin]\naddr = \"127.0.0.2:0\"\n";
    let env = Env::start_with_config(sims, &common::config(head, &urls, |_| String::new())).await;
    // A new connection per question: with a 2 s header deadline, a pooled one may be
    // closed by the listener just as it is reused (the keep-alive race every client
    // of a server with an idle limit lives with).
    let ready = |env: &Env| {
        let admin = Http::new(env.admin.base.clone());
        async move { admin.call(Method::GET, "/readyz", &[], None).await }
    };
    assert_eq!(ready(&env).await.status, 200);
    let mut a = TcpStream::connect(env.addr).await.unwrap();
    let mut b = TcpStream::connect(env.addr).await.unwrap();
    let mut full = None;
    for _ in 0..100 {
        let r = ready(&env).await;
        if r.status == 503 {
            full = Some(r.text());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let full = full.expect("/readyz 503 with both slots taken");
    assert!(
        full.contains("all 2 client connections are taken"),
        "{full}"
    );
    let metrics = Http::new(env.admin.base.clone())
        .call(Method::GET, "/metrics", &[], None)
        .await
        .text();
    assert!(
        metrics.contains("vcproxy_client_connections_open 2"),
        "{metrics}"
    );
    // The silent ones are closed at their deadline, and the proxy is ready again.
    closed_by_proxy(&mut a, "slot a").await;
    closed_by_proxy(&mut b, "slot b").await;
    let mut again = false;
    for _ in 0..200 {
        if ready(&env).await.status == 200 {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again, "ready again once the slots are free");
    env.stop().await;
}

/// The admin listener has the same deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_closes_silent_and_idle_connections_too() {
    let env = proxy_with("1s", "1s", None).await;
    let admin: std::net::SocketAddr = env
        .admin
        .base
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let mut silent = TcpStream::connect(admin).await.unwrap();
    closed_by_proxy(&mut silent, "admin, silent").await;
    let mut idle = TcpStream::connect(admin).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = closed_by_proxy(&mut idle, "admin, idle after an answer").await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    env.stop().await;
}

/// An HTTP/2 connection idle after its request is answered is closed at
/// `idle_timeout` (hyper's pings alone would take 20 s + 20 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_idle_timeout() {
    let env = proxy_with("60s", "1s", None).await;
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    // HEADERS, END_STREAM | END_HEADERS: GET http://x/ (HPACK: :method GET,
    // :scheme http, :path /, :authority "x" as a literal with an indexed name).
    conn.write_all(&frame(1, 0x5, 1, &[0x82, 0x86, 0x84, 0x01, 0x01, b'x']))
        .await
        .unwrap();
    let got = closed_within(
        &mut conn,
        Duration::from_secs(10),
        "HTTP/2, idle after an answer",
    )
    .await;
    // Frames came back before the close (SETTINGS at least, and the answer).
    assert!(got.len() > 9, "{got:?}");
    env.stop().await;
}
