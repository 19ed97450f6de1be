//! Outbound proxies end to end: the real daemon reaches the fake through an HTTP `CONNECT`
//! proxy (HTTPS, HTTP/2 inside the tunnel, the backend's WebSocket too) and through SOCKS5 proxies, with credentials taken
//! from the proxy URL. The proxies here are small test servers that check the credentials,
//! record what they were asked for and splice the bytes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use codex_proxy_tests::fake::{FakeUpstream, MODELS_PATH, Options, RESPONSES_PATH};
use codex_proxy_tests::harness::{Daemon, DaemonBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "proxy-user";
const PASSWORD: &str = "pa:ss@word";

fn user(text: &str) -> Value {
    json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": text}]})
}

/// The proxy URL's userinfo, percent-encoded as a URL needs it.
fn credentials() -> String {
    format!(
        "{USER}:{}",
        PASSWORD.replace(':', "%3A").replace('@', "%40")
    )
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn splice(mut client: TcpStream, target: &str) {
    if let Ok(mut upstream) = TcpStream::connect(target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// An HTTP proxy that only tunnels (`CONNECT`), and only with the right credentials.
async fn connect_proxy() -> (u16, Seen) {
    connect_proxy_to(None).await
}

/// [`connect_proxy`], its tunnels going to `redirect` (`127.0.0.1:PORT`) whatever they ask for:
/// the only way there when the daemon is told a dead address.
async fn connect_proxy_to(redirect: Option<String>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let record = seen.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (record, expected) = (record.clone(), expected.clone());
            let redirect = redirect.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                // Byte by byte, so that nothing after the head (the TLS hello) is swallowed.
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if socket.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut lines = head.lines();
                let request = lines.next().unwrap_or_default().to_owned();
                let authorized = lines.any(|line| {
                    line.split_once(':').is_some_and(|(name, value)| {
                        name.eq_ignore_ascii_case("proxy-authorization") && value.trim() == expected
                    })
                });
                record.push(format!(
                    "{request} {}",
                    if authorized { "authorized" } else { "refused" }
                ));
                let target = match request.split(' ').collect::<Vec<_>>()[..] {
                    ["CONNECT", target, "HTTP/1.1"] if authorized => {
                        redirect.unwrap_or_else(|| target.to_owned())
                    }
                    _ => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                };
                if socket
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    splice(socket, &target).await;
                }
            });
        }
    });
    (port, seen)
}

/// A SOCKS5 proxy that requires username/password authentication; records the address type
/// and address of each `CONNECT`.
async fn socks5_proxy() -> (u16, Seen) {
    socks5_proxy_to(None).await
}

/// [`socks5_proxy`], its connections going to `redirect` whatever they ask for.
async fn socks5_proxy_to(redirect: Option<String>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (record, redirect) = (record.clone(), redirect.clone());
            tokio::spawn(async move {
                if let Some((socket, target)) = socks5_handshake(socket, &record).await {
                    splice(socket, &redirect.unwrap_or(target)).await;
                }
            });
        }
    });
    (port, seen)
}

async fn socks5_handshake(mut s: TcpStream, record: &Seen) -> Option<(TcpStream, String)> {
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.ok()?;
    let mut methods = vec![0u8; usize::from(two[1])];
    s.read_exact(&mut methods).await.ok()?;
    if two[0] != 5 || !methods.contains(&2) {
        record.push("no username/password method offered".into());
        s.write_all(&[5, 0xff]).await.ok()?;
        return None;
    }
    s.write_all(&[5, 2]).await.ok()?;
    let field = async |s: &mut TcpStream| -> Option<String> {
        let mut len = [0u8; 1];
        s.read_exact(&mut len).await.ok()?;
        let mut text = vec![0u8; usize::from(len[0])];
        s.read_exact(&mut text).await.ok()?;
        String::from_utf8(text).ok()
    };
    let mut version = [0u8; 1];
    s.read_exact(&mut version).await.ok()?;
    let (name, password) = (field(&mut s).await?, field(&mut s).await?);
    if name != USER || password != PASSWORD {
        record.push("bad credentials".into());
        s.write_all(&[1, 1]).await.ok()?;
        return None;
    }
    s.write_all(&[1, 0]).await.ok()?;
    let mut request = [0u8; 4];
    s.read_exact(&mut request).await.ok()?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            s.read_exact(&mut ip).await.ok()?;
            format!("ipv4 {}", std::net::Ipv4Addr::from(ip))
        }
        3 => format!("domain {}", field(&mut s).await?),
        4 => {
            let mut ip = [0u8; 16];
            s.read_exact(&mut ip).await.ok()?;
            format!("ipv6 [{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => return None,
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await.ok()?;
    let port = u16::from_be_bytes(port);
    record.push(format!("CONNECT {host}:{port}"));
    s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok()?;
    let target = format!("{}:{port}", host.split_once(' ')?.1);
    Some((s, target))
}

/// The fake over HTTPS, and the port it listens on.
struct TlsFake {
    fake: FakeUpstream,
    port: u16,
}

impl TlsFake {
    async fn start() -> Self {
        let fake = FakeUpstream::start_with(Options {
            tls: true,
            ..Options::default()
        })
        .await
        .unwrap();
        let port = fake
            .base_url()
            .trim_start_matches("https://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Self { fake, port }
    }

    /// A daemon on the fake that trusts its CA.
    fn daemon(&self) -> DaemonBuilder {
        Daemon::builder().fake(&self.fake, &[0]).trusting_test_ca()
    }

    /// One chat through a daemon whose environment names `proxy`: its status and body.
    async fn chat_via(&self, daemon: DaemonBuilder, proxy: &str, text: &str) -> (u16, String) {
        let daemon = daemon.env("ALL_PROXY", proxy).start();
        let (status, _, body) = daemon.chat(&user(text)).await;
        (status, body)
    }
}

/// HTTPS through an HTTP proxy: a `CONNECT` tunnel with the URL's credentials, the backend's
/// certificate verified inside it, HTTP/2 spoken inside it; nothing reaches the backend any
/// other way. Wrong credentials fail the request with the proxy's answer named.
#[tokio::test]
async fn https_goes_through_an_http_connect_tunnel_with_credentials() {
    let tls = TlsFake::start().await;
    let (proxy, seen) = connect_proxy().await;
    // Over HTTP, to see HTTP/2 inside the tunnel (sockets through proxies: below).
    let daemon = tls
        .daemon()
        .set("upstream", "transport = \"http\"")
        .set(
            "upstream",
            &format!("proxy = \"http://{}@127.0.0.1:{proxy}\"", credentials()),
        )
        .start();
    let (status, _, body) = daemon.chat(&user("through the tunnel")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("through the tunnel"), "{body}");
    let calls = tls.fake.requests_to(RESPONSES_PATH);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].version, "HTTP/2.0");
    let models = tls
        .fake
        .wait_for_requests(MODELS_PATH, 1, Duration::from_secs(5))
        .await;
    assert_eq!(models[0].version, "HTTP/2.0");
    let seen = seen.all();
    assert!(!seen.is_empty());
    for line in &seen {
        assert_eq!(
            line,
            &format!("CONNECT 127.0.0.1:{} HTTP/1.1 authorized", tls.port)
        );
    }

    // From the environment, with wrong credentials.
    let (proxy, seen) = connect_proxy().await;
    let url = format!("http://{USER}:wrong@127.0.0.1:{proxy}");
    let (status, body) = tls.chat_via(tls.daemon(), &url, "x").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("proxy authorization required"), "{body}");
    assert!(!seen.all().is_empty());
    assert!(seen.all().iter().all(|l| l.ends_with("refused")));
    assert_eq!(tls.fake.requests_to(RESPONSES_PATH).len(), 1);
}

/// SOCKS5 from the environment: `socks5h://` hands the proxy the host name, `socks5://` the
/// address resolved by the daemon; both authenticate with the URL's credentials. HTTPS through
/// SOCKS still verifies the backend's certificate for its name.
#[tokio::test]
async fn socks5_proxies_from_the_environment_resolve_where_their_scheme_says() {
    let tls = TlsFake::start().await;
    let port = tls.port;
    let by_name = tls.fake.base_url().replace("127.0.0.1", "localhost");
    for (scheme, daemon, expected) in [
        (
            "socks5h",
            tls.daemon().base_url(&by_name),
            format!("CONNECT domain localhost:{port}"),
        ),
        (
            "socks5",
            tls.daemon(),
            format!("CONNECT ipv4 127.0.0.1:{port}"),
        ),
    ] {
        let (proxy, seen) = socks5_proxy().await;
        let url = format!("{scheme}://{}@127.0.0.1:{proxy}", credentials());
        let (status, body) = tls.chat_via(daemon, &url, scheme).await;
        assert_eq!(status, 200, "{scheme}: {body}");
        assert!(seen.all().contains(&expected), "{:?}", seen.all());
    }
    assert_eq!(tls.fake.requests_to(RESPONSES_PATH).len(), 2);

    // Wrong credentials: refused at the proxy, said so.
    let (proxy, seen) = socks5_proxy().await;
    let url = format!("socks5://{USER}:wrong@127.0.0.1:{proxy}");
    let (status, body) = tls.chat_via(tls.daemon(), &url, "x").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("SOCKS"), "{body}");
    assert!(seen.all().contains(&"bad credentials".to_owned()));
    assert_eq!(tls.fake.requests_to(RESPONSES_PATH).len(), 2);
}

/// `NO_PROXY` exempts hosts from the environment's proxy.
#[tokio::test]
async fn no_proxy_exempts_the_backend() {
    let fake = FakeUpstream::start().await.unwrap();
    let (proxy, seen) = socks5_proxy().await;
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .env("ALL_PROXY", &format!("socks5://127.0.0.1:{proxy}"))
        .env("NO_PROXY", "127.0.0.1")
        .start();
    let (status, _, body) = daemon.chat(&user("direct")).await;
    assert_eq!(status, 200, "{body}");
    assert!(seen.all().is_empty(), "{:?}", seen.all());
}

/// A conversation: its earlier turns answered as the fake answers ("You said: …").
fn conversation(turns: &[&str]) -> Value {
    let mut messages = Vec::new();
    for (i, text) in turns.iter().enumerate() {
        if i > 0 {
            messages.push(
                json!({"role": "assistant", "content": format!("You said: {}", turns[i - 1])}),
            );
        }
        messages.push(json!({"role": "user", "content": text}));
    }
    json!({"model": "gpt-5.5", "messages": messages})
}

/// The backend's WebSocket goes through the proxy as its HTTP requests do — inside a `CONNECT`
/// tunnel with the URL's credentials, or through SOCKS5 with the host name — the backend's
/// certificate verified inside; a conversation keeps its socket, and its second turn goes
/// incrementally. A proxy that refuses the tunnel leaves `auto` on HTTP, which says why.
#[tokio::test]
async fn the_backends_socket_goes_through_the_proxy_too() {
    let tls = TlsFake::start().await;
    // The daemon is told a port nothing listens on; the proxies take it to the fake's.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = format!("127.0.0.1:{}", tls.port);
    let told = tls
        .fake
        .base_url()
        .replace(&format!(":{}", tls.port), &format!(":{dead}"));
    let (connect, connect_seen) = connect_proxy_to(Some(fake.clone())).await;
    let (socks, socks_seen) = socks5_proxy_to(Some(fake)).await;
    let cases = [
        (
            format!("http://{}@127.0.0.1:{connect}", credentials()),
            tls.daemon().base_url(&told),
            connect_seen,
            format!("CONNECT 127.0.0.1:{dead} HTTP/1.1 authorized"),
        ),
        (
            format!("socks5h://{}@127.0.0.1:{socks}", credentials()),
            tls.daemon()
                .base_url(&told.replace("127.0.0.1", "localhost")),
            socks_seen,
            format!("CONNECT domain localhost:{dead}"),
        ),
    ];
    for (url, daemon, seen, expected) in cases {
        let daemon = daemon
            .set("upstream", "transport = \"websocket\"")
            .set("upstream", &format!("proxy = \"{url}\""))
            .start();
        let before = tls.fake.requests_to(RESPONSES_PATH).len();
        for turns in [&["first"][..], &["first", "second"]] {
            let (status, _, body) = daemon.chat(&conversation(turns)).await;
            assert_eq!(status, 200, "{url}: {body}");
            let last = turns.last().unwrap();
            assert!(body.contains(&format!("You said: {last}")), "{body}");
        }
        let turns = tls.fake.requests_to(RESPONSES_PATH);
        let turns = &turns[before..];
        assert_eq!(turns.len(), 2, "{url}");
        assert!(turns.iter().all(|t| t.method == "WS"), "{url}");
        let second = turns[1].body.as_ref().unwrap();
        assert!(second["previous_response_id"].is_string(), "{second}");
        assert_eq!(second["input"].as_array().unwrap().len(), 1, "{second}");
        assert!(seen.all().contains(&expected), "{:?}", seen.all());
    }

    // Wrong credentials: the socket is refused at the proxy, `auto` goes over HTTP, and the
    // proxy's refusal is what the client is told.
    let (proxy, seen) = connect_proxy().await;
    let url = format!("http://{USER}:wrong@127.0.0.1:{proxy}");
    let before = tls.fake.requests_to(RESPONSES_PATH).len();
    let (status, body) = tls
        .chat_via(
            tls.daemon().set("upstream", "transport = \"auto\""),
            &url,
            "x",
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("proxy authorization required"), "{body}");
    assert!(seen.all().iter().all(|l| l.ends_with("refused")));
    assert_eq!(tls.fake.requests_to(RESPONSES_PATH).len(), before);
}
