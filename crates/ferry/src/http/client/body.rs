//! A request body the caller writes piece by piece while the request is under way: memory is
//! bounded by the pieces in the channel (see [`channel`]), whatever the body's size.
//!
//! The body has no length, so hyper sends it with `Transfer-Encoding: chunked`. A body that
//! cannot be finished (the chunk could not be read) is aborted ([`BodySender::abort`]): the
//! connection is closed before the last chunk marker, so the server never takes a truncated
//! body for a whole one. Dropping the sender without [`BodySender::finish`] aborts too.

use super::ClientError;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// Pieces waiting for the connection: one being written, one ready.
const PIECES_IN_FLIGHT: usize = 1;

/// Why a body stopped before its end.
#[derive(Debug, thiserror::Error)]
#[error("the request body was aborted")]
pub struct Aborted;

enum Item {
    Data(Bytes),
    End,
}

/// The receiving end, given to hyper as the request's body.
#[derive(Debug)]
pub struct StreamBody {
    rx: Option<mpsc::Receiver<Item>>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Data(b) => write!(f, "Data({} bytes)", b.len()),
            Self::End => f.write_str("End"),
        }
    }
}

/// The writing end, kept by the caller.
#[derive(Debug)]
pub struct BodySender {
    tx: Option<mpsc::Sender<Item>>,
    /// How long a piece may wait for the connection to take it.
    write_timeout: Duration,
    sent: u64,
}

/// A body and its sender; a piece waits at most `write_timeout` for the server to read the
/// previous ones.
pub fn channel(write_timeout: Duration) -> (StreamBody, BodySender) {
    let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
    (
        StreamBody { rx: Some(rx) },
        BodySender {
            tx: Some(tx),
            write_timeout,
            sent: 0,
        },
    )
}

impl BodySender {
    /// Queues `piece` for the connection (an empty piece is skipped).
    pub async fn send(&mut self, piece: Bytes) -> Result<(), ClientError> {
        if piece.is_empty() {
            return Ok(());
        }
        let len = piece.len() as u64;
        self.put(Item::Data(piece)).await?;
        self.sent += len;
        Ok(())
    }

    /// Ends the body: the server gets the last chunk marker.
    pub async fn finish(mut self) -> Result<u64, ClientError> {
        self.put(Item::End).await?;
        self.tx = None;
        Ok(self.sent)
    }

    /// Stops the body where it is; the connection is closed without ending it.
    pub fn abort(mut self) {
        self.tx = None;
    }

    /// Bytes queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    async fn put(&mut self, item: Item) -> Result<(), ClientError> {
        let Some(tx) = &self.tx else {
            return Err(ClientError::BodyClosed);
        };
        match tokio::time::timeout(self.write_timeout, tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClientError::BodyClosed),
            Err(_) => Err(ClientError::WriteTimeout(self.write_timeout)),
        }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Item::Data(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Item::End)) => {
                self.rx = None;
                Poll::Ready(None)
            }
            // The sender went away without `End`: abort, never end the body cleanly.
            Poll::Ready(None) => {
                self.rx = None;
                Poll::Ready(Some(Err(Aborted)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn pieces_arrive_in_order_and_finish_ends_the_body() {
        let (mut body, mut tx) = channel(Duration::from_secs(1));
        let writer = tokio::spawn(async move {
            tx.send(Bytes::from_static(b"ab")).await.unwrap();
            tx.send(Bytes::new()).await.unwrap();
            tx.send(Bytes::from_static(b"c")).await.unwrap();
            tx.finish().await.unwrap()
        });
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(got, b"abc");
        assert_eq!(writer.await.unwrap(), 3);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_dropped_or_aborted_sender_aborts_the_body() {
        let (mut body, mut tx) = channel(Duration::from_secs(1));
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        tx.abort();
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_err(), "no clean end");
        let (mut body, tx) = channel(Duration::from_secs(1));
        drop(tx);
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_piece_the_connection_does_not_take_times_out() {
        let (_body, mut tx) = channel(Duration::from_secs(5));
        tx.send(Bytes::from_static(b"fills the channel"))
            .await
            .unwrap();
        let e = tx.send(Bytes::from_static(b"waits")).await.unwrap_err();
        assert!(matches!(e, ClientError::WriteTimeout(_)), "{e}");
    }
}
