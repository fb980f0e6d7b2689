//! Keep-alive: every request body is read before the answer, on every route, so a
//! pooled connection carries the next request; when the proxy must close, it says
//! `Connection: close` first. Go's clients (govmomi) send an empty log-in body
//! chunked, whose terminator can arrive after the head.

use super::*;
use common::basic;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off a raw connection: status, head (lower-cased), body.
async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    conn: &mut R,
    buf: &mut Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "the connection closed before an answer: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    (status, head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_arriving_late_leaves_the_connection_usable() {
    let env = Env::start(three_static(), "", "").await;
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    let mut buf = Vec::new();
    let auth = basic(ADMIN.0, ADMIN.1);
    // govmomi's log-in: the head, a pause, then the empty chunked body.
    conn.write_all(
        format!(
            "POST /rest/com/vmware/cis/session HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, head, body) = read_response(&mut conn, &mut buf).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!head.contains("connection: close"), "{head}");
    let sid: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let sid = sid["value"].as_str().unwrap().to_owned();
    // Who-am-I, again with a late chunked body, then a 404 route with a body, then
    // List Tasks: all on the same connection.
    for (request, late_body, want) in [
        (
            format!("POST /rest/com/vmware/cis/session?~action=get HTTP/1.1\r\nHost: x\r\nvmware-api-session-id: {sid}\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "0\r\n\r\n",
            200,
        ),
        (
            format!("POST /api/vcenter/vm HTTP/1.1\r\nHost: x\r\nvmware-api-session-id: {sid}\r\nContent-Length: 11\r\n\r\n"),
            "{\"a\":\"xyz\"}",
            404,
        ),
        (
            format!("GET /rest/cis/tasks?{} HTTP/1.1\r\nHost: x\r\nvmware-api-session-id: {sid}\r\n\r\n", svc_query()),
            "",
            200,
        ),
    ] {
        conn.write_all(request.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.write_all(late_body.as_bytes()).await.unwrap();
        let (status, head, body) = read_response(&mut conn, &mut buf).await;
        assert_eq!(status, want, "{request}: {}", String::from_utf8_lossy(&body));
        assert!(!head.contains("connection: close"), "{head}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_connection_close() {
    let sims = common::start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head = "[listen]\naddr = \"127.0.0.1:0\"\nmax_body_bytes = \"1KiB\"\n[admin]\naddr = \"127.0.0.2:0\"\n";
    let env = Env::start_with_config(sims, &common::config(head, &urls, |_| String::new())).await;
    let mut conn = TcpStream::connect(env.addr).await.unwrap();
    let mut buf = Vec::new();
    let body = vec![b' '; 4096];
    conn.write_all(
        format!(
            "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    conn.write_all(&body).await.unwrap();
    let (status, head, answer) = read_response(&mut conn, &mut buf).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    assert!(head.contains("connection: close"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["error_type"], "INVALID_ARGUMENT");
    // And the proxy does close it.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "closed after the answer");
    env.stop().await;
}

/// A client that drips its body (1 byte every 200 ms) holds neither the connection
/// nor a task past `body_read_timeout`: 408 in the family's error shape, and the
/// connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_drips_gets_408_and_connection_close() {
    let sims = common::start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head = "[listen]\naddr = \"127.0.0.1:0\"\nbody_read_timeout = \"1s\"\n[admin]\naddr = \"127.0.0.2:0\"\n";
    let env = Env::start_with_config(sims, &common::config(head, &urls, |_| String::new())).await;
    let conn = TcpStream::connect(env.addr).await.unwrap();
    let (mut rd, mut wr) = conn.into_split();
    wr.write_all(
        b"POST /api/cis/tasks?action=list HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buf = Vec::new();
    let (status, head, answer) = read_response(&mut rd, &mut buf).await;
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&answer));
    assert!(head.contains("connection: close"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    let text = v.to_string();
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "closed after the answer");
    drip.abort();
    env.stop().await;
}
