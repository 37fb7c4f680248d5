//! The transport between controller processes: one TCP (or, for an SSL controller listener, TLS) connection
//! per openraft client, Kafka-framed (`rpc`), reconnected after any failure. The receiving side is the controller listener's ordinary frame
//! loop, which hands quorum frames to `QuorumNode::answer_frame`; `serve` is that loop alone, for a process
//! (or a test) with nothing else on the listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::Member;
use bytes::{Bytes, BytesMut};
use sluice_kafka_client::{Security, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::network::{PeerConnection, PeerTransport};
use crate::rpc::{self, PeerMessage, PeerReply};
use crate::{NodeId, QuorumNode};

/// The largest reply a peer may send: snapshot chunks and append batches stay far below it (openraft sends
/// snapshots in 3 MiB chunks), and a peer claiming more is not believed.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct TcpTransport {
    correlation: AtomicI32,
    /// How every peer is dialed: the controller listener's security, which brokers' listeners that
    /// learners follow at must share.
    security: Security,
}

impl TcpTransport {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_security(security: Security) -> Self {
        TcpTransport {
            correlation: AtomicI32::default(),
            security,
        }
    }
}

pub struct TcpConnection {
    address: String,
    stream: Option<Stream>,
    transport: Arc<TcpTransport>,
}

impl PeerTransport for TcpTransport {
    type Connection = TcpConnection;

    fn connect(self: &Arc<Self>, _target: NodeId, node: &Member) -> TcpConnection {
        TcpConnection {
            address: node.addr.clone(),
            stream: None,
            transport: self.clone(),
        }
    }
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Reads one size-prefixed frame of at most `MAX_FRAME` bytes; `None` at a clean end of stream.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > MAX_FRAME {
        return Err(io_error(format!("frame of {size} bytes")));
    }
    let mut frame = BytesMut::zeroed(size as usize);
    stream.read_exact(&mut frame).await?;
    Ok(Some(frame.freeze()))
}

impl TcpConnection {
    async fn exchange(&mut self, message: &PeerMessage) -> std::io::Result<PeerReply> {
        let correlation_id = self.transport.correlation.fetch_add(1, Ordering::Relaxed);
        let request = rpc::encode_request(correlation_id, message).map_err(io_error)?;
        if self.stream.is_none() {
            let stream = sluice_kafka_client::dial(&self.address, &self.transport.security).await?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(io_error("not connected"));
        };
        stream.write_all(&request).await?;
        stream.flush().await?;
        let frame = read_frame(stream)
            .await?
            .ok_or_else(|| io_error("the peer closed the connection"))?;
        let (answered, reply) = rpc::decode_reply(frame).map_err(io_error)?;
        if answered != correlation_id {
            return Err(io_error(format!(
                "reply to request {answered}, expected {correlation_id}"
            )));
        }
        Ok(reply)
    }
}

impl PeerConnection for TcpConnection {
    async fn call(
        &mut self,
        message: PeerMessage,
        timeout: Duration,
    ) -> std::io::Result<PeerReply> {
        let result = match tokio::time::timeout(timeout, self.exchange(&message)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply from {} within {timeout:?}", self.address),
            )),
        };
        if result.is_err() {
            // A half-written request or an unread reply would desynchronise the stream: start over.
            self.stream = None;
        }
        result
    }
}

/// Serves quorum frames on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, node: Arc<QuorumNode>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = read_frame(&mut stream).await {
                let Ok(reply) = node.answer_frame(frame).await else {
                    return;
                };
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}
