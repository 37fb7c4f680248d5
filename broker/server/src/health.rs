//! The readiness endpoint Kubernetes probes (`sluice.health.listener`; a Sluice extension, Kafka has
//! none). A TCP probe on the Kafka port says only that the process listens: a broker does that long
//! before the controller unfences it, and a pod Ready then gets clients from the bootstrap Service and
//! lets a rolling restart move on to the next pod too early. So `GET /ready` answers 200 only once the
//! node does its job (`Broker::is_ready`) and 503 before; `GET /live` answers 200 while the process
//! runs. The HTTP is the least a kubelet needs: one request per connection, then close.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

use crate::broker::Broker;

/// The most of a request head read; a probe's is a few dozen bytes.
const MAX_HEAD: usize = 2048;
/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers probes until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    debug!(error = %e, "health listener: accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &broker).await {
                debug!(error = %e, "health probe connection");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, broker: &Broker) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let reply = respond(&head, || broker.is_ready());
    stream.write_all(&reply).await?;
    stream.shutdown().await
}

/// The whole response to a request head; `ready` is asked only for `/ready`.
pub fn respond(head: &[u8], ready: impl FnOnce() -> bool) -> Vec<u8> {
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let probe = matches!(method, Some(b"GET" | b"HEAD"));
    let (status, body) = match path {
        Some(b"/ready") if probe && ready() => ("200 OK", "ready\n"),
        Some(b"/ready") if probe => ("503 Service Unavailable", "not ready\n"),
        Some(b"/live") if probe => ("200 OK", "live\n"),
        Some(_) if probe => ("404 Not Found", "not found\n"),
        _ => ("400 Bad Request", "bad request\n"),
    };
    let body = if method == Some(b"HEAD") { "" } else { body };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &str, ready: bool) -> String {
        let reply = String::from_utf8(respond(head.as_bytes(), || ready)).unwrap();
        reply.lines().next().unwrap().to_owned()
    }

    #[test]
    fn probes_are_answered_by_path_and_state() {
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status(&get("/ready"), true), "HTTP/1.1 200 OK");
        assert_eq!(
            status(&get("/ready"), false),
            "HTTP/1.1 503 Service Unavailable"
        );
        assert_eq!(status(&get("/live"), false), "HTTP/1.1 200 OK");
        assert_eq!(status(&get("/other"), true), "HTTP/1.1 404 Not Found");
    }

    #[test]
    fn garbage_gets_a_bad_request() {
        for head in [
            "",
            "\r\n\r\n",
            "POST /ready HTTP/1.1\r\n\r\n",
            "\u{0}\u{1}\u{2}",
        ] {
            assert_eq!(status(head, true), "HTTP/1.1 400 Bad Request", "{head:?}");
        }
    }

    #[test]
    fn head_requests_get_no_body() {
        let reply = String::from_utf8(respond(b"HEAD /ready HTTP/1.1\r\n\r\n", || true)).unwrap();
        assert!(
            reply.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"),
            "{reply}"
        );
    }
}
