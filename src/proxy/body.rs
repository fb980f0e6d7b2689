//! The body of every response the proxy sends: up to three byte buffers sent one
//! after the other, never copied together.
//!
//! A JSON-RPC answer is the cached value between a per-request head (which carries
//! the request's id) and a fixed tail; sending the three as they are keeps the hit
//! path free of a copy of the answer. Other answers are one buffer. A watch stream
//! (Server-Sent Events) is the one body of unknown length: its frames arrive
//! through a channel.
//!
//! The parts go to hyper as *one* frame ([`Parts`], a [`Buf`] over the three):
//! hyper queues a frame's buffers for one vectored write, but flushes its queue
//! once it holds more than its buffer limit (`listen.max_header_bytes`, which
//! bounds the request head too) before it asks the body for its next frame. Sent
//! as three frames, a large answer value would leave the two-byte tail to a write,
//! a TCP segment and a wake-up of the client of its own.

use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug, Default)]
pub struct Body {
    /// Sent as the first frame, unless empty.
    parts: Option<Parts>,
    /// After the parts: frames sent until the sender is dropped.
    stream: Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

impl Body {
    /// `bytes` as the whole body.
    pub fn full(bytes: Bytes) -> Body {
        Body::parts(bytes, Bytes::new(), Bytes::new())
    }

    /// Frames as they come from `frames`, until its sender is dropped.
    pub fn stream(frames: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
        Body {
            parts: None,
            stream: Some(frames),
        }
    }

    /// `head`, `value` and `tail`, in that order.
    pub fn parts(head: Bytes, value: Bytes, tail: Bytes) -> Body {
        let parts = Parts([head, value, tail]);
        Body {
            parts: parts.has_remaining().then_some(parts),
            stream: None,
        }
    }

    fn remaining(&self) -> u64 {
        self.parts.as_ref().map_or(0, |p| p.remaining() as u64)
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::full(bytes)
    }
}

impl hyper::body::Body for Body {
    type Data = Parts;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Parts>, Infallible>>> {
        if let Some(parts) = self.parts.take() {
            return Poll::Ready(Some(Ok(Frame::data(parts))));
        }
        match &mut self.stream {
            Some(frames) => frames
                .poll_recv(cx)
                .map(|f| f.map(|b| Ok(Frame::data(Parts::from(b))))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none() && self.parts.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.stream {
            Some(_) => SizeHint::default(),
            None => SizeHint::with_exact(self.remaining()),
        }
    }
}

/// One frame of a [`Body`]: up to three buffers, in order, as one [`Buf`] whose
/// [`Buf::chunks_vectored`] gives each of them (so a vectored write sends them
/// together, uncopied).
#[derive(Debug, Default)]
pub struct Parts([Bytes; 3]);

impl From<Bytes> for Parts {
    fn from(bytes: Bytes) -> Parts {
        Parts([bytes, Bytes::new(), Bytes::new()])
    }
}

impl Parts {
    /// The first part with bytes left, if any.
    fn first(&mut self) -> Option<&mut Bytes> {
        self.0.iter_mut().find(|p| !p.is_empty())
    }
}

impl Buf for Parts {
    fn remaining(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    fn chunk(&self) -> &[u8] {
        self.0
            .iter()
            .find(|p| !p.is_empty())
            .map_or(&[], |p| &p[..])
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(self.0.iter().filter(|p| !p.is_empty())) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(part) = self.first() else {
                panic!("advance past the end of a body's parts ({cnt} bytes over)");
            };
            let n = cnt.min(part.len());
            part.advance(n);
            cnt -= n;
        }
    }

    /// Without a copy when the bytes asked for lie within one part (HTTP/2 takes
    /// its DATA frames this way).
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self.first() {
            Some(part) if part.len() >= len => part.split_to(len),
            _ => {
                assert!(len <= self.remaining(), "copy_to_bytes past the end");
                let mut out = bytes::BytesMut::with_capacity(len);
                let mut left = len;
                while left > 0 {
                    let part = self.first().expect("checked against remaining");
                    let n = left.min(part.len());
                    out.extend_from_slice(&part.split_to(n));
                    left -= n;
                }
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_parts_arrive_in_order_with_an_exact_length() {
        let b = Body::parts(
            Bytes::from_static(b"{\"a\":"),
            Bytes::new(),
            Bytes::from_static(b"1}"),
        );
        assert_eq!(hyper::body::Body::size_hint(&b).exact(), Some(7));
        assert_eq!(&b.collect().await.unwrap().to_bytes()[..], b"{\"a\":1}");
        let e = Body::full(Bytes::new());
        assert!(hyper::body::Body::is_end_stream(&e));
    }

    #[tokio::test]
    async fn the_parts_are_one_frame() {
        let mut b = Body::parts(
            Bytes::from_static(b"head"),
            Bytes::from(vec![b'v'; 100_000]),
            Bytes::from_static(b"}}"),
        );
        let frame = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame.remaining(), 100_006);
        assert!(b.frame().await.is_none());
        let mut iov = [IoSlice::new(&[]); 4];
        assert_eq!(frame.chunks_vectored(&mut iov), 3);
        assert_eq!(
            (&*iov[0], iov[1].len(), &*iov[2]),
            (&b"head"[..], 100_000, &b"}}"[..])
        );
    }

    /// A connection that hands hyper one request, then records each write (as one
    /// length however many buffers it carries) and wakes the test.
    struct Recorder {
        request: &'static [u8],
        writes: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
        wrote: std::sync::Arc<tokio::sync::Notify>,
    }

    impl tokio::io::AsyncRead for Recorder {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.request.is_empty() {
                // The client waits for its answer; it never closes.
                return Poll::Pending;
            }
            let n = self.request.len().min(buf.remaining());
            buf.put_slice(&self.request[..n]);
            self.request = &self.request[n..];
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.lock().unwrap().push(buf.len());
            self.wrote.notify_one();
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let n = bufs.iter().map(|b| b.len()).sum();
            self.writes.lock().unwrap().push(n);
            self.wrote.notify_one();
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// With hyper's write buffer limited as the proxy limits it (16 KiB, the
    /// default `listen.max_header_bytes`), a 200 KB JSON-RPC answer still leaves
    /// with its head and tail in one write (as three frames it took two: the tail's
    /// two bytes went alone).
    #[tokio::test]
    async fn a_large_answer_and_its_tail_leave_in_one_write() {
        let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let wrote = std::sync::Arc::new(tokio::sync::Notify::new());
        let io = Recorder {
            request: b"POST /api HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
            writes: writes.clone(),
            wrote: wrote.clone(),
        };
        let service = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(http::Response::new(Body::parts(
                Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":\"0\",\"result\":{\"output\":"),
                Bytes::from(vec![b' '; 200_000]),
                Bytes::from_static(b"}}"),
            )))
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .max_buf_size(16 * 1024)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let served = tokio::spawn(conn);
        let total = |w: &[usize]| w.iter().sum::<usize>();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while total(&writes.lock().unwrap()) < 200_047 {
                wrote.notified().await;
            }
        })
        .await
        .expect("the answer was written");
        served.abort();
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 1, "writes: {writes:?}");
        assert!(
            writes[0] > 200_047,
            "head and body in the one write: {writes:?}"
        );
    }

    #[test]
    fn parts_advance_and_copy_across_their_boundaries() {
        let mut p = Parts([
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cdef"),
        ]);
        p.advance(1);
        assert_eq!(p.chunk(), b"b");
        assert_eq!(&p.copy_to_bytes(3)[..], b"bcd");
        assert_eq!(p.remaining(), 2);
        let mut iov = [IoSlice::new(&[]); 1];
        assert_eq!(p.chunks_vectored(&mut iov), 1);
        assert_eq!(&*iov[0], b"ef");
        assert_eq!(&p.copy_to_bytes(2)[..], b"ef");
        assert!(!p.has_remaining());
        assert_eq!(p.chunk(), b"");
    }
}
