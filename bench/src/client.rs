//! The load side: one HTTP/1.1 keep-alive connection per slot (TCP_NODELAY), requests timed
//! with `Instant`, streamed deltas timed as they arrive.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    key: &'static str,
    path: &'static str,
}

/// What one streamed request saw.
#[derive(Debug, Default)]
pub struct Streamed {
    /// From sending to the first content delta.
    pub first_delta: Duration,
    /// Between consecutive deltas.
    pub gaps: Vec<Duration>,
    /// Deltas seen, in arrival order (their index).
    pub order: Vec<usize>,
    /// Reads that carried more than one delta.
    pub batched: usize,
    /// Seen the end (`[DONE]`, the last event or line of the other surfaces).
    pub complete: bool,
}

impl Conn {
    pub async fn open(addr: SocketAddr, key: &'static str) -> anyhow::Result<Self> {
        Self::open_at(addr, key, "/v1/chat/completions").await
    }

    /// A connection whose requests go to `path` (`/v1/responses` for the Responses leg).
    pub async fn open_at(
        addr: SocketAddr,
        key: &'static str,
        path: &'static str,
    ) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            addr,
            key,
            path,
        })
    }

    async fn send(
        &mut self,
        body: &Bytes,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        self.sender.ready().await?;
        let request = hyper::Request::post(self.path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        Ok(self.sender.send_request(request).await?)
    }

    /// A whole non-streamed request; the time until its body is read.
    pub async fn complete(&mut self, body: &Bytes, expect: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response = self.send(body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        anyhow::ensure!(
            status == 200 && memchr(&bytes, expect.as_bytes()),
            "bad answer {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        Ok(elapsed)
    }

    /// A streamed request, timing every delta (`d0000|…` markers) as it arrives.
    pub async fn stream(&mut self, body: &Bytes) -> anyhow::Result<Streamed> {
        self.stream_then(body, || {}).await
    }

    /// As [`stream`](Self::stream), calling `opened` once the response has begun.
    pub async fn stream_then(
        &mut self,
        body: &Bytes,
        opened: impl FnOnce(),
    ) -> anyhow::Result<Streamed> {
        let started = Instant::now();
        let response = self.send(body).await?;
        anyhow::ensure!(response.status() == 200, "status {}", response.status());
        opened();
        let mut body = response.into_body();
        let mut seen = Streamed::default();
        let mut last: Option<Instant> = None;
        // A delta marker may straddle two reads: keep the tail of the previous one.
        let mut carry: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let now = Instant::now();
            let mut buf = std::mem::take(&mut carry);
            buf.extend_from_slice(data);
            let mut found = 0;
            let mut i = 0;
            while let Some((pos, len)) = delta_marker(&buf[i..]) {
                let at = i + pos + len;
                if at + 5 > buf.len() {
                    break;
                }
                let index = std::str::from_utf8(&buf[at..at + 4])
                    .ok()
                    .and_then(|s| s.parse().ok());
                if let Some(index) = index {
                    seen.order.push(index);
                    found += 1;
                    match last {
                        None => seen.first_delta = now - started,
                        Some(prev) => seen.gaps.push(now - prev),
                    }
                    last = Some(now);
                }
                i = at + 5;
            }
            if found > 1 {
                seen.batched += 1;
            }
            if memchr(&buf, b"[DONE]")
                || memchr(&buf, b"event: message_stop")
                || memchr(&buf, b"event: response.completed")
                || memchr(&buf, b"\"done\":true")
                || memchr(&buf, b"\"finishReason\"")
            {
                seen.complete = true;
            }
            let keep = buf.len().saturating_sub(32).max(i);
            carry = buf[keep..].to_vec();
        }
        Ok(seen)
    }
}

/// Where the next delta's marker (`d0000|…`) is, and the length of what leads it: a chat
/// chunk's `"content":"`, a Messages text delta's `"text":"`, a Responses delta's `"delta":"`.
fn delta_marker(buf: &[u8]) -> Option<(usize, usize)> {
    const LEADS: [&[u8]; 3] = [b"\"content\":\"d", b"\"text\":\"d", b"\"delta\":\"d"];
    LEADS
        .iter()
        .filter_map(|lead| Some((find(buf, lead)?, lead.len())))
        .min_by_key(|(at, _)| *at)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn memchr(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}
