//! Kernel TLS (kTLS): rustls does the handshake, then the session's keys are handed to the socket
//! (`TCP_ULP` "tls", `TLS_TX`, `TLS_RX`), and the kernel encrypts what is written and decrypts what is
//! read. A Fetch response's file ranges then keep `sendfile(2)`: the kernel encrypts the page-cache pages
//! on their way out, and record bytes never enter this process, as over plaintext.
//!
//! Three things make the hand-over safe:
//! - During the handshake rustls is given one TLS record per read ([`RecordBoundary`]), and after it the
//!   stream is "corked" at the next record boundary, so no encrypted byte rustls has not processed is left
//!   in its buffers when the keys move to the kernel. Whatever plaintext rustls had already decrypted (a
//!   client sends its first request right behind its Finished) is carried over ([`Offloaded::pending`]).
//! - The ciphers are probed once per process on a loopback socket ([`support`]); a connection whose
//!   cipher the kernel cannot take stays on rustls.
//! - After the hand-over, a record that is not application data (a close_notify or other alert, a TLS 1.3
//!   KeyUpdate) makes `read` fail with `EIO`. This module turns that into the end of the stream: the
//!   connection closes and the client reconnects. (Kernels before 6.13 cannot re-key a kTLS socket, so a
//!   KeyUpdate could not be followed anyway; Kafka's clients do not send one in practice.)
//!
//! - The kernel never re-keys a session, so it would go on past AES-GCM's usage limit (about 2^24.5
//!   records under one key, which rustls enforces by re-keying). [`RecordBudget`] counts, from above,
//!   the records the kernel may have sent, and the connection closes once it is spent; the client
//!   reconnects with fresh keys.
//!
//! Why not the `ktls` crate: it panics on records a peer controls (a ChangeCipherSpec after the
//! handshake), and it sets the socket up before knowing whether the kernel can take the cipher.

use std::io;
use std::net::{TcpListener, TcpStream as StdTcpStream};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use rustls::ConnectionTrafficSecrets;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TLS record's header: content type, legacy version, length.
const HEADER_LEN: usize = 5;
/// The largest record a peer may send (TLS 1.2's limit on ciphertext: 2^14 + 2048).
const MAX_RECORD_LEN: usize = 16384 + 2048;

/// What the kernel can take, probed once per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// (TLS version, kernel cipher) pairs the kernel accepted for both directions.
    pub ciphers: Vec<(u16, u16)>,
    /// Why there is none, for the log.
    pub unavailable: Option<String>,
}

impl Support {
    pub fn any(&self) -> bool {
        !self.ciphers.is_empty()
    }

    fn accepts(&self, version: u16, cipher: u16) -> bool {
        self.ciphers.contains(&(version, cipher))
    }
}

/// Probes the running kernel once: `TCP_ULP` "tls" and then each cipher, in both directions, on a
/// loopback connection with a zero key.
pub fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| match probe() {
        Ok(support) => support,
        Err(e) => Support {
            ciphers: Vec::new(),
            unavailable: Some(e.to_string()),
        },
    })
}

fn probe() -> io::Result<Support> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let mut ciphers = Vec::new();
    let mut last_error = None;
    for version in [libc::TLS_1_3_VERSION, libc::TLS_1_2_VERSION] {
        for cipher in [
            libc::TLS_CIPHER_AES_GCM_128,
            libc::TLS_CIPHER_AES_GCM_256,
            libc::TLS_CIPHER_CHACHA20_POLY1305,
        ] {
            let socket = StdTcpStream::connect(address)?;
            let _peer = listener.accept()?;
            let info = CryptoInfo::zeroed(version, cipher);
            let result = set_ulp(socket.as_raw_fd())
                .and_then(|()| info.apply(socket.as_raw_fd(), libc::TLS_TX))
                .and_then(|()| info.apply(socket.as_raw_fd(), libc::TLS_RX));
            match result {
                Ok(()) => ciphers.push((version, cipher)),
                Err(e) => last_error = Some(e),
            }
        }
    }
    Ok(Support {
        unavailable: if ciphers.is_empty() {
            last_error.map(|e| format!("the kernel refused TCP_ULP \"tls\" or every cipher: {e}"))
        } else {
            None
        },
        ciphers,
    })
}

fn set_ulp(fd: i32) -> io::Result<()> {
    const NAME: &[u8] = b"tls";
    // SAFETY: `fd` is an open socket for the whole call, and the pointer and length describe `NAME`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            NAME.as_ptr().cast(),
            NAME.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel's `tls12_crypto_info_*` for one direction of a session.
#[derive(Clone, Copy)]
pub enum CryptoInfo {
    AesGcm128(libc::tls12_crypto_info_aes_gcm_128),
    AesGcm256(libc::tls12_crypto_info_aes_gcm_256),
    Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305),
}

impl CryptoInfo {
    fn zeroed(version: u16, cipher: u16) -> CryptoInfo {
        let info = libc::tls_crypto_info {
            version,
            cipher_type: cipher,
        };
        match cipher {
            libc::TLS_CIPHER_AES_GCM_128 => {
                CryptoInfo::AesGcm128(libc::tls12_crypto_info_aes_gcm_128 {
                    info,
                    iv: [0; 8],
                    key: [0; 16],
                    salt: [0; 4],
                    rec_seq: [0; 8],
                })
            }
            libc::TLS_CIPHER_AES_GCM_256 => {
                CryptoInfo::AesGcm256(libc::tls12_crypto_info_aes_gcm_256 {
                    info,
                    iv: [0; 8],
                    key: [0; 32],
                    salt: [0; 4],
                    rec_seq: [0; 8],
                })
            }
            _ => CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                info,
                iv: [0; 12],
                key: [0; 32],
                salt: [0; 0],
                rec_seq: [0; 8],
            }),
        }
    }

    /// One direction's keys as rustls hands them over, at record sequence number `seq`. rustls gives
    /// AES-GCM's 12-byte nonce whole; the kernel wants its first 4 bytes as the salt and the other 8 as
    /// the IV. ChaCha20 takes the whole nonce.
    ///
    /// TLS 1.2 AES-GCM needs care. rustls sends `iv XOR seq` as each record's explicit nonce, but the
    /// kernel sends its IV as given and adds one per record. Given rustls's IV unchanged, the kernel's
    /// first record would reuse the nonce of rustls's record 0 (the Finished) under the same key. So the
    /// kernel starts at `iv + seq`: every nonce rustls used is `iv XOR j <= iv + j < iv + seq` for
    /// j < seq, so none comes again. (A sum past 2^64 wraps to values below `iv`, which rustls never used
    /// either: `iv XOR j` for small j keeps iv's high bits.) TLS 1.3 and ChaCha20 XOR the sequence number
    /// in on both sides.
    pub fn from_secrets(
        version: u16,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> Option<CryptoInfo> {
        let rec_seq = seq.to_be_bytes();
        let info = |cipher_type| libc::tls_crypto_info {
            version,
            cipher_type,
        };
        let gcm = |key: &[u8], iv: &[u8]| -> Option<CryptoInfo> {
            let salt: [u8; 4] = iv.get(..4)?.try_into().ok()?;
            let mut iv: [u8; 8] = iv.get(4..)?.try_into().ok()?;
            if version == libc::TLS_1_2_VERSION {
                iv = u64::from_be_bytes(iv).wrapping_add(seq).to_be_bytes();
            }
            // The key's length says which AES, whichever variant rustls used.
            Some(match key.len() {
                16 => CryptoInfo::AesGcm128(libc::tls12_crypto_info_aes_gcm_128 {
                    info: info(libc::TLS_CIPHER_AES_GCM_128),
                    key: key.try_into().ok()?,
                    iv,
                    salt,
                    rec_seq,
                }),
                _ => CryptoInfo::AesGcm256(libc::tls12_crypto_info_aes_gcm_256 {
                    info: info(libc::TLS_CIPHER_AES_GCM_256),
                    key: key.try_into().ok()?,
                    iv,
                    salt,
                    rec_seq,
                }),
            })
        };
        match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            | ConnectionTrafficSecrets::Aes256Gcm { key, iv } => gcm(key.as_ref(), iv.as_ref()),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Some(
                CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                    info: info(libc::TLS_CIPHER_CHACHA20_POLY1305),
                    iv: iv.as_ref().try_into().ok()?,
                    key: key.as_ref().try_into().ok()?,
                    salt: [0; 0],
                    rec_seq,
                }),
            ),
            _ => None,
        }
    }

    pub fn cipher(&self) -> u16 {
        match self {
            CryptoInfo::AesGcm128(i) => i.info.cipher_type,
            CryptoInfo::AesGcm256(i) => i.info.cipher_type,
            CryptoInfo::Chacha20Poly1305(i) => i.info.cipher_type,
        }
    }

    fn apply(&self, fd: i32, direction: libc::c_int) -> io::Result<()> {
        let (ptr, len): (*const libc::c_void, usize) = match self {
            CryptoInfo::AesGcm128(i) => (std::ptr::from_ref(i).cast(), std::mem::size_of_val(i)),
            CryptoInfo::AesGcm256(i) => (std::ptr::from_ref(i).cast(), std::mem::size_of_val(i)),
            CryptoInfo::Chacha20Poly1305(i) => {
                (std::ptr::from_ref(i).cast(), std::mem::size_of_val(i))
            }
        };
        // SAFETY: `fd` is an open socket for the whole call, and `ptr`/`len` describe one of the kernel's
        // `tls12_crypto_info_*` structs (libc's `#[repr(C)]` definitions of them), borrowed from `self`.
        let rc =
            unsafe { libc::setsockopt(fd, libc::SOL_TLS, direction, ptr, len as libc::socklen_t) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl std::fmt::Debug for CryptoInfo {
    // Without the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CryptoInfo(cipher {})", self.cipher())
    }
}

enum Boundary {
    /// Reading a record's header; `have` bytes of it so far.
    Header {
        header: [u8; HEADER_LEN],
        have: usize,
    },
    /// Inside a record's payload; `left` bytes of it still to come.
    Payload { left: usize },
    /// Bytes pass through unbounded: kTLS is not in play, or the peer sent something that is not a TLS
    /// record (rustls then reports the error).
    Passthrough,
}

const AT_BOUNDARY: Boundary = Boundary::Header {
    header: [0; HEADER_LEN],
    have: 0,
};

/// Where the TLS records of a byte stream end, as its bytes go by: the state machine under
/// [`RecordBoundary`], without I/O (the TLS fuzz target drives it too).
pub struct Boundaries {
    state: Boundary,
    corked: bool,
}

impl Boundaries {
    /// `bounded`: whether reads keep to record boundaries (only worth it when kTLS may follow).
    pub fn new(bounded: bool) -> Self {
        Boundaries {
            state: if bounded {
                AT_BOUNDARY
            } else {
                Boundary::Passthrough
            },
            corked: false,
        }
    }

    /// How many bytes the next read may take: `None` for any number, `Some(0)` when corked at a
    /// boundary (the stream ends there).
    pub fn allowance(&self) -> Option<usize> {
        match &self.state {
            Boundary::Passthrough => None,
            Boundary::Header { have: 0, .. } if self.corked => Some(0),
            Boundary::Header { have, .. } => Some(HEADER_LEN - have),
            Boundary::Payload { left } => Some(*left),
        }
    }

    /// Takes note of bytes read (at most [`Boundaries::allowance`] of them).
    pub fn consumed(&mut self, bytes: &[u8]) {
        let next = match &mut self.state {
            Boundary::Passthrough => return,
            Boundary::Header { header, have } => {
                let take = bytes.len().min(HEADER_LEN - *have);
                header[*have..*have + take].copy_from_slice(&bytes[..take]);
                *have += take;
                if *have < HEADER_LEN {
                    return;
                }
                let content_type = header[0];
                let len = u16::from_be_bytes([header[3], header[4]]) as usize;
                if !(20..=24).contains(&content_type) || len > MAX_RECORD_LEN {
                    Boundary::Passthrough
                } else if len == 0 {
                    AT_BOUNDARY
                } else {
                    Boundary::Payload { left: len }
                }
            }
            Boundary::Payload { left } => {
                *left -= bytes.len().min(*left);
                if *left > 0 {
                    return;
                }
                AT_BOUNDARY
            }
        };
        self.state = next;
    }

    pub fn cork(&mut self) {
        self.corked = true;
    }

    /// Reads pass through unbounded from now on (the connection stays on rustls).
    pub fn unbound(&mut self) {
        // Mid-record is fine: the rest of the record is read like anything else.
        self.state = Boundary::Passthrough;
        self.corked = false;
    }
}

/// The socket under rustls while kernel TLS may be taken up: no read crosses the end of a TLS record,
/// and once corked, a read at a record boundary returns end-of-stream instead of reading on. So when
/// the handshake completes, every byte read from the socket has been handed to rustls in whole
/// records, and after the cork rustls has processed all of them.
pub struct RecordBoundary<IO> {
    io: IO,
    boundaries: Boundaries,
}

impl<IO> RecordBoundary<IO> {
    pub fn new(io: IO, bounded: bool) -> Self {
        RecordBoundary {
            io,
            boundaries: Boundaries::new(bounded),
        }
    }

    pub fn cork(&mut self) {
        self.boundaries.cork();
    }

    pub fn unbound(&mut self) {
        self.boundaries.unbound();
    }

    pub fn into_inner(self) -> IO {
        self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for RecordBoundary<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(limit) = this.boundaries.allowance() else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        if limit == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit.min(buf.remaining())));
        match Pin::new(&mut this.io).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let read = limited.filled().len();
        this.boundaries
            .consumed(&buf.initialize_unfilled_to(read)[..read]);
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for RecordBoundary<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A connection whose TLS the kernel now does.
pub struct Offloaded {
    pub tcp: TcpStream,
    /// Plaintext rustls had decrypted before the hand-over: read before the socket.
    pub pending: Vec<u8>,
    /// The client's certificate, for its principal.
    pub peer_certificate: Option<CertificateDer<'static>>,
    /// The records the kernel may still send under these keys.
    pub budget: RecordBudget,
}

/// An upper bound on the records the kernel has sent under one key, against a limit well inside
/// AES-GCM's (2^24.5 records; RFC 8446 section 5.5). Charged per system call, partial ones included:
/// each write the kernel sees may close a record, and a record holds at most 16 KiB; `sendfile` hands
/// it pages, so a file range is counted a record per page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordBudget {
    used: u64,
}

impl RecordBudget {
    /// 2^23 records: a third of AES-GCM's limit, and days of a busy consumer's fetches.
    pub const LIMIT: u64 = 1 << 23;
    const RECORD: u64 = 16 * 1024;
    const PAGE: u64 = 4096;

    /// `len` bytes taken by one `write`.
    pub fn charge_write(&mut self, len: usize) {
        self.used = self.used.saturating_add(2 + len as u64 / Self::RECORD);
    }

    /// `len` bytes of a file taken by one `sendfile`.
    pub fn charge_file(&mut self, len: u64) {
        self.used = self.used.saturating_add(2 + len / Self::PAGE);
    }

    pub fn spent(&self) -> bool {
        self.used >= Self::LIMIT
    }
}

/// The kernel's TLS version number for a rustls protocol version.
fn kernel_version(version: rustls::ProtocolVersion) -> Option<u16> {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => Some(libc::TLS_1_3_VERSION),
        rustls::ProtocolVersion::TLSv1_2 => Some(libc::TLS_1_2_VERSION),
        _ => None,
    }
}

/// Moves a completed handshake's session into the kernel. `Ok(Err(stream))` gives the stream back,
/// unbounded, when the kernel cannot take its cipher (it stays on rustls); `Err` when the hand-over
/// failed after the keys left rustls (the connection cannot go on).
pub async fn offload(
    mut tls: TlsStream<RecordBoundary<TcpStream>>,
    support: &Support,
) -> io::Result<Result<Offloaded, TlsStream<RecordBoundary<TcpStream>>>> {
    let (_, conn) = tls.get_ref();
    let kernel = conn
        .negotiated_cipher_suite()
        .zip(conn.protocol_version().and_then(kernel_version));
    let cipher = kernel.and_then(|(suite, version)| {
        let cipher = match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
                libc::TLS_CIPHER_AES_GCM_128
            }
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
                libc::TLS_CIPHER_AES_GCM_256
            }
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
                libc::TLS_CIPHER_CHACHA20_POLY1305
            }
            _ => return None,
        };
        support.accepts(version, cipher).then_some(version)
    });
    let Some(version) = cipher else {
        tls.get_mut().0.unbound();
        return Ok(Err(tls));
    };

    // Session tickets and anything else rustls still has to send go out under its keys first.
    tls.flush().await?;
    // Let rustls finish any record it has begun and hand over what it decrypted: the corked socket
    // ends the stream at the next record boundary.
    tls.get_mut().0.cork();
    let mut pending = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            // rustls reports a stream that ends without close_notify so; here it is the cork.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    let (io, conn) = tls.into_inner();
    if conn.wants_write() {
        return Err(io::Error::other(
            "rustls has records to send after the handshake; cannot hand the session to the kernel",
        ));
    }
    let peer_certificate = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|c| c.clone().into_owned());
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| io::Error::other(format!("extracting the TLS session keys: {e}")))?;
    let tcp = io.into_inner();
    let tx = CryptoInfo::from_secrets(version, secrets.tx.0, &secrets.tx.1);
    let rx = CryptoInfo::from_secrets(version, secrets.rx.0, &secrets.rx.1);
    let (Some(tx), Some(rx)) = (tx, rx) else {
        return Err(io::Error::other(
            "rustls gave TLS session keys of an unexpected shape",
        ));
    };
    let fd = tcp.as_raw_fd();
    set_ulp(fd)?;
    tx.apply(fd, libc::TLS_TX)?;
    rx.apply(fd, libc::TLS_RX)?;
    Ok(Ok(Offloaded {
        tcp,
        pending,
        peer_certificate,
        budget: RecordBudget::default(),
    }))
}

/// Reads from a kTLS socket. A record that is not application data fails the read with `EIO` (see the
/// module comment): the stream ends there.
pub fn poll_read(
    tcp: &mut TcpStream,
    pending: &mut Vec<u8>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    if !pending.is_empty() {
        let n = pending.len().min(buf.remaining());
        buf.put_slice(&pending[..n]);
        pending.drain(..n);
        return Poll::Ready(Ok(()));
    }
    match Pin::new(tcp).poll_read(cx, buf) {
        Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
            tracing::debug!(
                "a TLS record other than application data (an alert or a key update); closing"
            );
            Poll::Ready(Ok(()))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        r.extend_from_slice(payload);
        r
    }

    /// Reads with a large buffer; each read returns what one `poll_read` gave.
    async fn reads(stream: &mut RecordBoundary<&[u8]>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = stream.read(&mut buf).await.expect("in-memory read");
            if n == 0 {
                return out;
            }
            out.push(buf[..n].to_vec());
        }
    }

    #[tokio::test]
    async fn no_read_crosses_a_record_and_a_cork_stops_at_the_next_boundary() {
        let mut wire = record(22, &[1; 300]);
        wire.extend(record(23, &[2; 40_000 % MAX_RECORD_LEN]));
        wire.extend(record(23, &[3; 10]));
        let mut stream = RecordBoundary::new(&wire[..], true);
        let mut buf = vec![0u8; 64 * 1024];
        // Header, then payload, never beyond.
        let n = stream.read(&mut buf).await.unwrap();
        assert_eq!(n, HEADER_LEN);
        let n = stream.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &[1; 300][..]);
        // Corked mid-record: the record is finished, then the stream ends with the third one unread.
        let n = stream.read(&mut buf[..100]).await.unwrap();
        assert_eq!(n, HEADER_LEN.min(100));
        stream.cork();
        let rest: Vec<u8> = reads(&mut stream).await.concat();
        assert_eq!(rest.len(), 40_000 % MAX_RECORD_LEN);
        assert_eq!(stream.io, &record(23, &[3; 10])[..]);
    }

    #[tokio::test]
    async fn what_is_not_a_tls_record_passes_through() {
        // Plaintext Kafka to a TLS port: rustls must see the bytes to refuse them.
        let wire = b"\x00\x00\x00\x20\x00\x12\x00\x03hello there, a kafka request".to_vec();
        let mut stream = RecordBoundary::new(&wire[..], true);
        let got = reads(&mut stream).await.concat();
        assert_eq!(got, wire);
        // An oversized record length is no record either.
        let mut huge = vec![23, 3, 3, 0xff, 0xff];
        huge.extend_from_slice(&[0; 100]);
        let mut stream = RecordBoundary::new(&huge[..], true);
        assert_eq!(reads(&mut stream).await.concat(), huge);
    }

    #[tokio::test]
    async fn unbounded_reads_take_everything() {
        let mut wire = record(23, &[7; 100]);
        wire.extend(record(23, &[8; 100]));
        let mut stream = RecordBoundary::new(&wire[..], false);
        let mut buf = vec![0u8; 64 * 1024];
        assert_eq!(stream.read(&mut buf).await.unwrap(), wire.len());
    }

    #[test]
    fn rustls_keys_become_the_kernels_layout() {
        use rustls::crypto::cipher::{AeadKey, Iv};
        let iv: [u8; 12] = std::array::from_fn(|i| i as u8);
        let key128 = AeadKey::from([9u8; 32]);
        // AeadKey always holds 32 bytes; a 16-byte key is its prefix.
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: key128,
            iv: Iv::new(iv),
        };
        let Some(CryptoInfo::AesGcm256(info)) =
            CryptoInfo::from_secrets(libc::TLS_1_3_VERSION, 0x0102, &secrets)
        else {
            panic!("AES-256-GCM keys give the kernel's AES-256-GCM info");
        };
        assert_eq!(info.salt, [0, 1, 2, 3]);
        assert_eq!(info.iv, [4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(info.key, [9; 32]);
        assert_eq!(info.rec_seq, [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(info.info.version, libc::TLS_1_3_VERSION);

        // TLS 1.2 GCM: the kernel counts up from iv + seq, past every nonce rustls used (iv XOR 0..seq).
        let tls12 = ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([9u8; 32]),
            iv: Iv::new(iv),
        };
        let Some(CryptoInfo::AesGcm256(info)) =
            CryptoInfo::from_secrets(libc::TLS_1_2_VERSION, 3, &tls12)
        else {
            panic!("TLS 1.2 AES-256-GCM keys give the kernel's AES-256-GCM info");
        };
        assert_eq!(info.salt, [0, 1, 2, 3]);
        let start = u64::from_be_bytes(info.iv);
        let rustls_iv = u64::from_be_bytes([4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(start, rustls_iv + 3);
        for j in 0..3u64 {
            for k in 0..1000u64 {
                assert_ne!(rustls_iv ^ j, start.wrapping_add(k), "a nonce used twice");
            }
        }

        let chacha = ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: AeadKey::from([5u8; 32]),
            iv: Iv::new(iv),
        };
        let Some(CryptoInfo::Chacha20Poly1305(info)) =
            CryptoInfo::from_secrets(libc::TLS_1_2_VERSION, 7, &chacha)
        else {
            panic!("ChaCha20-Poly1305 keys give the kernel's ChaCha20 info");
        };
        assert_eq!(info.iv, iv, "ChaCha20 takes the whole nonce, no salt");
        assert_eq!(info.rec_seq, 7u64.to_be_bytes());
    }

    #[test]
    fn the_record_budget_runs_out_before_aes_gcms_limit() {
        let mut budget = RecordBudget::default();
        // A consumer's long polls: a header, an empty-ish file range and a trailer per response.
        let mut responses = 0u64;
        while !budget.spent() {
            budget.charge_write(60);
            budget.charge_file(100);
            budget.charge_write(10);
            responses += 1;
        }
        // Every write closes at least one record, so a real count is at most this.
        assert!(
            responses * 3 < (1u64 << 24),
            "spent after {responses} responses"
        );
        assert!(
            responses > 1_000_000,
            "spent too early: {responses} responses"
        );
        // Large file ranges are counted per page: 1 GiB is 262,146 records at most here.
        let mut big = RecordBudget::default();
        big.charge_file(1 << 30);
        assert_eq!(big.used, 2 + (1 << 30) / 4096);
        assert!(!big.spent());
    }

    #[test]
    fn the_probe_answers_on_any_kernel() {
        // On a kernel without CONFIG_TLS the probe says why; with it, AES-GCM is there.
        let support = support();
        match &support.unavailable {
            Some(reason) => assert!(!support.any() && !reason.is_empty()),
            None => assert!(support.accepts(libc::TLS_1_3_VERSION, libc::TLS_CIPHER_AES_GCM_128)),
        }
    }
}
