//! The floor: the least any HTTP hop adds on this machine. A pass-through HTTP/1.1 proxy with
//! nothing to do — one upstream connection per client connection, `TCP_NODELAY` on both, the
//! mock's Chat Completions answer forwarded byte for byte — run as its own process on the
//! daemon's core. What it adds over the direct leg is the cost of the extra hop itself (two
//! more sockets' syscalls, loopback TCP, wake-ups); what the daemon adds over *it* is the
//! daemon's own work (translation, accounts, the Responses stream).

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Serves on `port` until killed, forwarding to `upstream`. Runs in the re-executed bench
/// process (`--floor-proxy-for`), on a runtime shaped like the daemon's.
pub fn run(upstream: SocketAddr, port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (client, _) = listener.accept().await?;
            client.set_nodelay(true)?;
            tokio::spawn(async move {
                let _ = forward(client, upstream).await;
            });
        }
    })
}

async fn forward(client: TcpStream, upstream: SocketAddr) -> anyhow::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(server)).await?;
    tokio::spawn(connection);
    // HTTP/1.1 serves one request at a time per connection, so the lock is never contended.
    let sender = std::sync::Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let mut sender = sender.lock().await;
            let answer = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(e) => Err(e),
            };
            Ok::<_, Infallible>(answer.map_or_else(
                |_| {
                    let mut failed =
                        Response::new(http_body_util::Either::Right(http_body_util::Empty::new()));
                    *failed.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                    failed
                },
                |response| response.map(http_body_util::Either::Left),
            ))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}
