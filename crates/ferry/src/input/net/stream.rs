//! One accepted connection's bytes: a read buffer that starts small, the idle timeout, replies
//! written whole, and a graceful close.
//!
//! - Memory: the read buffer starts at [`INITIAL_READ`] bytes and doubles while reads fill it,
//!   up to [`MAX_READ`]; it grows only as bytes arrive, never from a length the peer declared.
//!   A buffer left empty and large for [`SHRINK_AFTER`] is released, so idle keepalive
//!   connections cost a few KiB.
//! - `idle_timeout`: a read that waits longer ends the connection ([`Read::TimedOut`]); a
//!   handshake passes its own deadline instead. A reply write is bounded by the same timeout.
//! - Every reply is one buffer written with one `write_all` and flushed (Fluent Bit reads
//!   each with a single 512-byte read; TLS sends its record at once).
//! - [`Stream::linger`]: after a refusal or a last reply, FIN, then what the peer still sends is
//!   drained (bounded in time and bytes) so the reply is not destroyed by a reset.

use crate::task::TaskHandle;
use bytes::BytesMut;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

pub const INITIAL_READ: usize = 1024;
pub const MAX_READ: usize = 1024 * 1024;
const SHRINK_ABOVE: usize = 64 * 1024;
pub const SHRINK_AFTER: Duration = Duration::from_secs(1);
/// After a refusal, how long the peer's remaining bytes are drained so the reply is not lost
/// to a reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// What a read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Data,
    Eof,
    TimedOut,
    Cancelled,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A socket that can say whether its peer reset it (a killed process's socket resets once it
/// is written to). Reading is no help: bytes still queued are read before the error.
pub trait PeerSocket {
    /// Whether the peer reset the connection (the pending socket error, taken).
    fn was_reset(&self) -> bool;
}

impl PeerSocket for tokio::net::TcpStream {
    fn was_reset(&self) -> bool {
        matches!(self.take_error(), Ok(Some(_)))
    }
}

impl PeerSocket for tokio::net::UnixStream {
    fn was_reset(&self) -> bool {
        matches!(self.take_error(), Ok(Some(_)))
    }
}

impl<S: PeerSocket> PeerSocket for tokio_rustls::server::TlsStream<S> {
    fn was_reset(&self) -> bool {
        self.get_ref().0.was_reset()
    }
}

impl PeerSocket for tokio::io::DuplexStream {
    fn was_reset(&self) -> bool {
        false
    }
}

/// A connection's stream and read buffer.
#[derive(Debug)]
pub struct Stream<S> {
    pub inner: S,
    /// Bytes read and not consumed yet; decoders take frames from the front.
    pub buf: BytesMut,
    read_size: usize,
    /// Bytes read in all.
    pub received: u64,
    idle_timeout: Option<Duration>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream<S> {
    pub fn new(inner: S, idle_timeout: Option<Duration>) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            read_size: INITIAL_READ,
            received: 0,
            idle_timeout,
        }
    }

    /// Whether the peer reset the connection (see [`PeerSocket`]). An end of stream alone is
    /// not death: a client may close its sending side and still read replies.
    pub fn reset_by_peer(&self) -> bool
    where
        S: PeerSocket,
    {
        self.inner.was_reset()
    }

    /// Reads more bytes into the buffer. `deadline`: a handshake's deadline, else the idle
    /// timeout applies.
    pub async fn fill(&mut self, deadline: Option<Instant>, h: &TaskHandle) -> io::Result<Read> {
        let deadline = deadline.or_else(|| self.idle_timeout.map(|idle| Instant::now() + idle));
        loop {
            let spare = self.buf.capacity() - self.buf.len();
            if spare < self.read_size / 2 {
                self.buf.reserve(self.read_size);
            }
            let spare = self.buf.capacity() - self.buf.len();
            let shrink_at = (self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE)
                .then(|| Instant::now() + SHRINK_AFTER);
            let wake = match (deadline, shrink_at) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            };
            let read = tokio::select! {
                biased;
                () = h.cancelled() => return Ok(Read::Cancelled),
                r = self.inner.read_buf(&mut self.buf) => r,
                () = sleep_until(wake) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(Read::TimedOut);
                    }
                    // Quiet with an empty, large buffer: give the memory back.
                    self.buf = BytesMut::new();
                    self.read_size = INITIAL_READ;
                    continue;
                }
            };
            return match read? {
                0 => Ok(Read::Eof),
                n => {
                    self.received += n as u64;
                    if n == spare && self.read_size < MAX_READ {
                        self.read_size *= 2;
                    }
                    Ok(Read::Data)
                }
            };
        }
    }

    /// Writes one reply with one write call, then flushes (TLS sends its record).
    pub async fn send(&mut self, reply: &[u8]) -> io::Result<()> {
        let write = async {
            self.inner.write_all(reply).await?;
            self.inner.flush().await
        };
        match self.idle_timeout {
            Some(t) => tokio::time::timeout(t, write)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
            None => write.await,
        }
    }

    /// FIN, then drain what the peer still sends (bounded in time and bytes) so the last reply
    /// is not destroyed by a reset.
    pub async fn linger(&mut self) {
        let _ = self.inner.shutdown().await;
        let deadline = Instant::now() + LINGER;
        let mut drained = 0usize;
        // On the heap: an array here would make every connection's task 4 KiB larger.
        let mut scratch = vec![0u8; 4096];
        while drained < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, self.inner.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use crate::task::Tasks;
    use tokio::io::DuplexStream;

    /// Runs `test` with a task handle, as a connection task would.
    async fn with_handle<F, Fut>(test: F)
    where
        F: FnOnce(TaskHandle) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let fut_maker = test;
        tasks.spawn("test", move |h| {
            let fut = fut_maker(h);
            async move {
                fut.await;
                let _ = tx.send(());
            }
        });
        rx.await.unwrap();
    }

    async fn tcp_pair() -> (std::net::TcpStream, Stream<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, Stream::new(server, None))
    }

    /// Polls `reset_by_peer` for up to a second.
    async fn reset_seen(s: &mut Stream<tokio::net::TcpStream>) -> bool {
        for _ in 0..100 {
            if s.reset_by_peer() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_reset_connection_is_seen_as_dead_and_a_closed_sending_side_is_not() {
        use std::io::Write;
        // A killed process: its socket is reset (SO_LINGER 0 makes close send RST).
        let (mut client, mut s) = tcp_pair().await;
        client.write_all(b"request").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!s.reset_by_peer(), "alive while the peer is");
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        assert!(
            reset_seen(&mut s).await,
            "a reset with bytes still unread is seen"
        );
        // A client that closes its sending side and still reads replies is alive.
        let (client, mut s) = tcp_pair().await;
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(
            !reset_seen(&mut s).await,
            "an end of stream alone is not death"
        );
    }

    fn pair(idle: Option<Duration>) -> (DuplexStream, Stream<DuplexStream>) {
        let (client, server) = tokio::io::duplex(8 << 20);
        (client, Stream::new(server, idle))
    }

    #[tokio::test(start_paused = true)]
    async fn the_buffer_starts_small_grows_with_traffic_and_is_released_when_idle() {
        with_handle(|h| async move {
            let (mut client, mut s) = pair(None);
            client.write_all(&[1u8; 10]).await.unwrap();
            assert_eq!(s.fill(None, &h).await.unwrap(), Read::Data);
            assert!(s.buf.capacity() <= 2 * INITIAL_READ, "{}", s.buf.capacity());
            client.write_all(&vec![2u8; 4 << 20]).await.unwrap();
            while s.received < (4 << 20) + 10 {
                assert_eq!(s.fill(None, &h).await.unwrap(), Read::Data);
            }
            assert!(
                s.buf.capacity() > SHRINK_ABOVE,
                "grew: {}",
                s.buf.capacity()
            );
            // Consumed, then quiet for longer than SHRINK_AFTER: the memory goes back.
            s.buf.clear();
            let writer = tokio::spawn(async move {
                tokio::time::sleep(SHRINK_AFTER * 3).await;
                client.write_all(b"x").await.unwrap();
                client
            });
            assert_eq!(s.fill(None, &h).await.unwrap(), Read::Data);
            assert!(
                s.buf.capacity() <= 2 * INITIAL_READ,
                "shrank: {}",
                s.buf.capacity()
            );
            drop(writer.await.unwrap());
            s.buf.clear();
            assert_eq!(s.fill(None, &h).await.unwrap(), Read::Eof);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_peer_times_out_and_a_handshake_deadline_wins_over_it() {
        with_handle(|h| async move {
            let (_client, mut s) = pair(Some(Duration::from_secs(30)));
            let started = Instant::now();
            assert_eq!(s.fill(None, &h).await.unwrap(), Read::TimedOut);
            assert!(started.elapsed() >= Duration::from_secs(30));
            let started = Instant::now();
            let deadline = Some(started + Duration::from_secs(2));
            assert_eq!(s.fill(deadline, &h).await.unwrap(), Read::TimedOut);
            assert!(started.elapsed() < Duration::from_secs(30));
        })
        .await;
    }

    #[tokio::test]
    async fn a_reply_is_written_whole_and_linger_drains_the_peer() {
        with_handle(|_h| async move {
            let (mut client, mut s) = pair(None);
            s.send(b"reply").await.unwrap();
            let mut got = [0u8; 5];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"reply");
            client.write_all(&[0u8; 1000]).await.unwrap();
            drop(client);
            s.linger().await;
        })
        .await;
    }
}
