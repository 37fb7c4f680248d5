//! A client connection's byte stream: plain TCP, TLS through rustls, or TLS the kernel does after
//! rustls's handshake (`crate::kernel_tls`). The connection loop reads and writes it the same way each
//! time; only a Fetch response's file bytes differ. On TCP, and on kernel TLS, they go with `sendfile(2)`
//! and never enter this process (the kernel encrypts the pages as it sends them). Under rustls they must
//! be encrypted here, so they are read (`pread`, a chunk at a time) and written through the TLS session,
//! as Kafka does over SSL.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::kernel_tls::{Offloaded, RecordBoundary};
use crate::zero_copy::{send_file, set_cork};

/// How much of a segment is read at a time to be encrypted: rustls cuts it into 16 KiB records.
const TLS_FILE_CHUNK: usize = 64 * 1024;

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<RecordBoundary<TcpStream>>>),
    /// Kernel TLS: written like a plain socket, read through `kernel_tls::poll_read`.
    Kernel(Box<Offloaded>),
}

impl Transport {
    /// The principal the TLS client's certificate names under the listener's mapping rules: `None` without
    /// a certificate, `Some(Err(()))` for one no rule maps (Kafka refuses that client).
    pub fn client_certificate_principal(
        &self,
        rules: &crate::principal::MappingRules,
    ) -> Option<Result<String, ()>> {
        let leaf = match self {
            Transport::Plain(_) => return None,
            Transport::Tls(tls) => tls.get_ref().1.peer_certificates()?.first()?,
            Transport::Kernel(kernel) => kernel.peer_certificate.as_ref()?,
        };
        Some(crate::principal::of_certificate_mapped(leaf, rules).ok_or(()))
    }

    /// Under kernel TLS, whether the session's keys have done their share (`kernel_tls::RecordBudget`):
    /// the connection should close, and the client reconnect with fresh ones.
    pub fn keys_spent(&self) -> bool {
        matches!(self, Transport::Kernel(kernel) if kernel.budget.spent())
    }

    /// Writes one response made of pieces, some of them file ranges, as one burst.
    pub async fn write_pieces(
        &mut self,
        pieces: Vec<sluice_protocol::Piece<sluice_storage::FileSlice>>,
    ) -> io::Result<()> {
        let (tcp, mut budget) = match self {
            Transport::Plain(tcp) => (tcp, None),
            // The kernel encrypts whatever is written, sendfile's pages included.
            Transport::Kernel(kernel) => {
                let Offloaded { tcp, budget, .. } = kernel.as_mut();
                (tcp, Some(budget))
            }
            Transport::Tls(tls) => {
                for piece in pieces {
                    match piece {
                        sluice_protocol::Piece::Bytes(bytes) => tls.write_all(&bytes).await?,
                        sluice_protocol::Piece::File(slice) => {
                            copy_file(tls, &slice.file, slice.position, slice.len).await?
                        }
                    }
                }
                return tls.flush().await;
            }
        };
        // Framing, file bytes and more framing would otherwise each leave as a small segment (TCP_NODELAY
        // is on; under kernel TLS, each as its own record).
        let corked = pieces.len() > 1;
        if corked {
            set_cork(tcp, true)?;
        }
        for piece in pieces {
            match piece {
                // Charged per system call: each one the kernel sees may close a record of its own.
                sluice_protocol::Piece::Bytes(bytes) => {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let n = tcp.write(rest).await?;
                        if n == 0 {
                            return Err(io::ErrorKind::WriteZero.into());
                        }
                        if let Some(budget) = budget.as_mut() {
                            budget.charge_write(n);
                        }
                        rest = &rest[n..];
                    }
                }
                sluice_protocol::Piece::File(slice) => {
                    send_file(tcp, &slice.file, slice.position, slice.len, |n| {
                        if let Some(budget) = budget.as_mut() {
                            budget.charge_file(n);
                        }
                    })
                    .await?
                }
            }
        }
        if corked {
            set_cork(tcp, false)?;
        }
        Ok(())
    }
}

/// `len` bytes of `file` from `position`, through the TLS session. Fails with `UnexpectedEof` if the
/// file ends first (a segment deleted or truncated under the reader), as `send_file` does.
async fn copy_file(
    tls: &mut TlsStream<RecordBoundary<TcpStream>>,
    file: &File,
    position: u64,
    len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; TLS_FILE_CHUNK.min(len as usize)];
    let mut at = position;
    let end = position + len;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        // A read of page-cache pages; the segment is only appended to, so this does not block on
        // anything but the disk.
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file ended before the promised bytes were sent",
            ));
        }
        tls.write_all(&buf[..n]).await?;
        at += n as u64;
    }
    Ok(())
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Kernel(k) => {
                let Offloaded { tcp, pending, .. } = k.as_mut();
                crate::kernel_tls::poll_read(tcp, pending, cx, buf)
            }
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Kernel(k) => {
                let written = Pin::new(&mut k.tcp).poll_write(cx, buf);
                if let Poll::Ready(Ok(n)) = &written {
                    k.budget.charge_write(*n);
                }
                written
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Kernel(k) => Pin::new(&mut k.tcp).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Kernel(k) => Pin::new(&mut k.tcp).poll_shutdown(cx),
        }
    }
}
