//! The floors: the least an HTTP hop adds on this machine, run as their own process on the
//! daemon's core.
//!
//! - The **pass-through** floor forwards the client's request and the mock's Chat Completions
//!   answer byte for byte (one upstream connection per client connection, `TCP_NODELAY` on
//!   both). What it adds over the direct leg is the cost of the extra hop itself (two more
//!   sockets' syscalls, loopback TCP, wake-ups); what the daemon adds over *it* is the daemon's
//!   own work.
//! - The **fetching** floor (`--floor-fetches-responses`) does the daemon's I/O and none of its
//!   work: it sends the client's body to the mock's Responses endpoint, reads the whole SSE
//!   answer (18.8 KB for the default shape, against the 1.5 KB completion) without looking at
//!   it, and answers with the completion the mock would have sent directly, fetched once at
//!   start. What it adds is the least any gateway adds that must read the Responses stream to
//!   answer a Chat Completions request here, on hyper and tokio as the daemon is.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Sender = hyper::client::conn::http1::SendRequest<Incoming>;

/// Serves on `port` until killed, forwarding to `upstream` (fetching the Responses stream
/// instead when `fetch`). Runs in the re-executed bench process (`--floor-proxy-for`), on a
/// runtime shaped like the daemon's.
pub fn run(upstream: SocketAddr, port: u16, fetch: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let completion = if fetch {
            Some(direct_completion(upstream).await?)
        } else {
            None
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (client, _) = listener.accept().await?;
            client.set_nodelay(true)?;
            let completion = completion.clone();
            tokio::spawn(async move {
                let _ = forward(client, upstream, completion).await;
            });
        }
    })
}

async fn connect(upstream: SocketAddr) -> anyhow::Result<Sender> {
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(server)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The non-streamed completion the mock serves the direct leg.
async fn direct_completion(upstream: SocketAddr) -> anyhow::Result<Bytes> {
    let server = TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(server)).await?;
    tokio::spawn(connection);
    let request = Request::post("/v1/chat/completions")
        .header("host", upstream.to_string())
        .body(Full::new(Bytes::from_static(b"{}")))?;
    let answer = sender.send_request(request).await?;
    anyhow::ensure!(
        answer.status().is_success(),
        "the mock answered {}",
        answer.status()
    );
    Ok(answer.into_body().collect().await?.to_bytes())
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    completion: Option<Bytes>,
) -> anyhow::Result<()> {
    let sender = connect(upstream).await?;
    // HTTP/1.1 serves one request at a time per connection, so the lock is never contended.
    let sender = std::sync::Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let sender = sender.clone();
        let completion = completion.clone();
        async move {
            if completion.is_some() {
                *request.uri_mut() = hyper::Uri::from_static("/backend-api/codex/responses");
            }
            let mut sender = sender.lock().await;
            let answer = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(e) => Err(e),
            };
            let answer = match (answer, completion) {
                (Ok(answer), None) => Ok(answer.map(Either::Left)),
                (Ok(answer), Some(completion)) => match answer.into_body().collect().await {
                    Ok(_) => {
                        let mut answer =
                            Response::new(Either::Right(Either::Left(Full::new(completion))));
                        answer.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok(answer)
                    }
                    Err(e) => Err(e),
                },
                (Err(e), _) => Err(e),
            };
            Ok::<_, Infallible>(answer.unwrap_or_else(|_| {
                let mut failed = Response::new(Either::Right(Either::Right(Empty::new())));
                *failed.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                failed
            }))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}
