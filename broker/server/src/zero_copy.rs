//! Sending segment bytes to a socket with `sendfile(2)`.
//!
//! This is the one place the server uses `unsafe`: the kernel copies file pages straight into the socket, so
//! record bytes never pass through a userspace buffer on the way to a consumer.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Send `len` bytes of `file` starting at `position` to `stream`.
///
/// Fails with `UnexpectedEof` if the file ends first (a segment deleted or truncated under the reader): the
/// response promised those bytes, so the caller must close the connection.
pub async fn send_file(
    stream: &TcpStream,
    file: &File,
    position: u64,
    len: u64,
    mut on_sent: impl FnMut(u64),
) -> io::Result<()> {
    let mut offset = position as libc::off_t;
    let end = position + len;
    while (offset as u64) < end {
        stream.writable().await?;
        let remaining = (end - offset as u64).min(1 << 30) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the whole call (we hold `stream` and `file` by reference),
            // and `offset` is a valid, exclusively borrowed off_t the kernel updates in place.
            let n = unsafe {
                libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, remaining)
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended before the promised bytes were sent",
                ));
            }
            Ok(n) => on_sent(n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Hold back partial TCP segments until `set_cork(false)`: a Fetch response is written as framing, file bytes
/// and more framing, and with `TCP_NODELAY` each piece would otherwise leave as its own small segment.
pub fn set_cork(stream: &TcpStream, on: bool) -> io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: the descriptor is open (we hold `stream`), and we pass a valid pointer to a c_int with its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
