//! A client connection that sends an HTTP/1 response head ahead of a large body.
//!
//! hyper hands a response to the socket as one vectored write: head and body in one
//! `writev`, so the head leaves in the body's first segment. nginx, serving the same
//! cached answer with `sendfile`, writes the head first and the body after it. With
//! BBR congestion control, writing the head first as nginx does keeps the kernel from
//! pacing the answer, which otherwise raises the hit path's tail latency (measured in
//! `benches/RESULTS.md`).
//!
//! The price is one more system call for answers of [`MIN_BODY`] bytes or more;
//! smaller answers, HTTP/2 frames and everything else are written exactly as hyper
//! asks. TLS connections are not wrapped: rustls frames its own records.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bodies at least this long get their head written first. (HTTP/2 writes never
/// qualify: they start with a frame header, not a response head.)
pub const MIN_BODY: usize = 16 * 1024;

/// A connection whose vectored writes send a complete HTTP/1 response head on its
/// own when a body of [`MIN_BODY`] bytes or more follows it in the same write.
#[derive(Debug)]
pub struct HeadFirst<T> {
    inner: T,
}

impl<T> HeadFirst<T> {
    pub fn new(inner: T) -> HeadFirst<T> {
        HeadFirst { inner }
    }
}

/// How many of `bufs` to write now: just the head when a large body follows it,
/// all of them otherwise. Writing fewer is always allowed: a writer may write less
/// than it is given, and hyper calls again with the rest.
fn to_write(bufs: &[IoSlice<'_>]) -> usize {
    match bufs {
        [head, body, ..]
            if body.len() >= MIN_BODY
                && head.starts_with(b"HTTP/1.")
                && head.ends_with(b"\r\n\r\n") =>
        {
            1
        }
        _ => bufs.len(),
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadFirst<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadFirst<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = to_write(bufs);
        Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..n])
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A writer that records each write call's bytes and accepts everything.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.writes.push(all);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";

    /// Writes `bufs` until all are written, as hyper does; returns the write calls.
    async fn write_all_vectored(bufs: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut conn = HeadFirst::new(Recorder::default());
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let n = conn.write_vectored(slices).await.unwrap();
            IoSlice::advance_slices(&mut slices, n);
        }
        conn.inner.writes
    }

    #[tokio::test]
    async fn a_head_before_a_large_body_is_written_alone_then_the_body() {
        let body = vec![b'x'; MIN_BODY];
        let writes = write_all_vectored(&[HEAD, &body]).await;
        assert_eq!(writes, vec![HEAD.to_vec(), body]);
    }

    #[tokio::test]
    async fn small_bodies_and_other_writes_go_as_hyper_gave_them() {
        let small = vec![b'x'; MIN_BODY - 1];
        assert_eq!(
            write_all_vectored(&[HEAD, &small]).await,
            vec![[HEAD, &small[..]].concat()]
        );
        // Not a response head (an HTTP/2 frame header, or the rest of a head that
        // was written in part): one write.
        let large = vec![b'y'; MIN_BODY];
        let frame_head = [0u8, 64, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            write_all_vectored(&[&frame_head, &large]).await,
            vec![[&frame_head[..], &large[..]].concat()]
        );
        assert_eq!(
            write_all_vectored(&[b"200 OK\r\n\r\n", &large]).await,
            vec![[&b"200 OK\r\n\r\n"[..], &large[..]].concat()]
        );
        // A head cut short (no blank line yet) is not split off either.
        let part = &HEAD[..HEAD.len() - 2];
        assert_eq!(
            write_all_vectored(&[part, &large]).await,
            vec![[part, &large[..]].concat()]
        );
    }

    #[tokio::test]
    async fn only_a_head_at_the_start_of_a_write_is_split_off() {
        let a = vec![b'a'; MIN_BODY + 1];
        let b = vec![b'b'; 10];
        let c = vec![b'c'; MIN_BODY * 3];
        let writes = write_all_vectored(&[HEAD, &a, HEAD, &b, HEAD, &c]).await;
        assert_eq!(
            writes,
            vec![HEAD.to_vec(), [&a[..], HEAD, &b, HEAD, &c].concat(),],
            "pipelined answers after the first go as hyper gave them"
        );
    }
}
