//! Connections a handler can close without answering.
//!
//! [`crate::Faults::token_connection_reset`] needs the token endpoint to drop a
//! connection *before* any byte of a response is written, which a handler cannot
//! do by returning a `Response` (hyper writes its head first). So every accepted
//! socket is wrapped in a [`KillableIo`] whose [`ConnKill`] switch reaches the
//! handler through axum's `ConnectInfo`: once the switch is set, the next write
//! fails, hyper abandons the connection, and the socket is closed with a zero
//! linger, so the client sees a TCP reset and no HTTP response at all.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections can be killed by their handler.
pub(crate) struct KillableListener(pub(crate) TcpListener);

impl Listener for KillableListener {
    type Io = KillableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (KillableIo, SocketAddr) {
        // axum's own implementation retries (and backs off on) accept errors.
        let (tcp, addr) = <TcpListener as Listener>::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!(error = %e, "set_nodelay failed");
        }
        let io = KillableIo {
            tcp,
            kill: ConnKill::default(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The switch that kills one connection (shared by the socket and its requests).
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    /// From now on the connection writes nothing and is reset.
    pub(crate) fn kill(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.io().kill.clone()
    }
}

/// A TCP stream that refuses every write once its [`ConnKill`] is set.
pub(crate) struct KillableIo {
    tcp: TcpStream,
    kill: ConnKill,
}

impl KillableIo {
    /// The error every write returns once killed; arms the reset on close.
    fn killed(&self) -> io::Error {
        // A zero linger turns the close into a RST, as a crashed peer or a
        // middlebox dropping the flow would produce.
        if let Err(e) = self.tcp.set_zero_linger() {
            tracing::trace!(error = %e, "set_zero_linger failed");
        }
        io::Error::new(io::ErrorKind::ConnectionReset, "injected fault: connection reset")
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.is_killed() {
            return Poll::Ready(Err(this.killed()));
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.is_killed() {
            return Poll::Ready(Err(this.killed()));
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.is_killed() {
            return Poll::Ready(Err(this.killed()));
        }
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.is_killed() {
            // No FIN: dropping the socket with a zero linger sends the RST.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
