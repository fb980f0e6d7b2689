//! The body of every response the proxy sends: up to three byte buffers sent one
//! after the other, never copied together.
//!
//! A JSON-RPC answer is the cached value between a per-request head (which carries
//! the request's id) and a fixed tail; sending the three as they are keeps the hit
//! path free of a copy of the answer. Other answers are one buffer. A watch stream
//! (Server-Sent Events) is the one body of unknown length: its frames arrive
//! through a channel.

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug, Default)]
pub struct Body {
    parts: [Bytes; 3],
    /// The next part to send.
    next: usize,
    /// After the parts: frames sent until the sender is dropped.
    stream: Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

impl Body {
    /// `bytes` as the whole body.
    pub fn full(bytes: Bytes) -> Body {
        Body {
            parts: [bytes, Bytes::new(), Bytes::new()],
            next: 0,
            stream: None,
        }
    }

    /// Frames as they come from `frames`, until its sender is dropped.
    pub fn stream(frames: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
        Body {
            stream: Some(frames),
            ..Body::default()
        }
    }

    /// `head`, `value` and `tail`, in that order.
    pub fn parts(head: Bytes, value: Bytes, tail: Bytes) -> Body {
        Body {
            parts: [head, value, tail],
            next: 0,
            stream: None,
        }
    }

    fn remaining(&self) -> u64 {
        self.parts[self.next.min(3)..]
            .iter()
            .map(|p| p.len() as u64)
            .sum()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::full(bytes)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while self.next < 3 {
            let i = self.next;
            self.next += 1;
            let part = std::mem::take(&mut self.parts[i]);
            if !part.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(part))));
            }
        }
        match &mut self.stream {
            Some(frames) => frames.poll_recv(cx).map(|f| f.map(|b| Ok(Frame::data(b)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none() && self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        match self.stream {
            Some(_) => SizeHint::default(),
            None => SizeHint::with_exact(self.remaining()),
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
}
