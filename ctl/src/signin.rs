//! The human part of signing in: the browser callback on 127.0.0.1, reading a pasted URL,
//! the device-code spinner. Every exchange with the auth server is the daemon's.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The ports the auth server accepts in the redirect URI, in the official client's order.
pub const CALLBACK_PORTS: [u16; 2] = [1455, 1457];
/// How long a browser sign-in may take.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The longest request head or pasted line read.
const MAX_LINE: usize = 16 * 1024;

/// Binds the callback listener: the given port, else 1455, else 1457.
pub fn bind_callback(port: Option<u16>) -> Result<TcpListener, String> {
    let ports = port.map_or(CALLBACK_PORTS.to_vec(), |p| vec![p]);
    for p in &ports {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", *p)) {
            return Ok(listener);
        }
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    Err(format!(
        "cannot listen for the sign-in callback on 127.0.0.1 port {} (another login running?); \
         use `codexctl login --paste` or `codexctl login --device` instead",
        list.join(" or ")
    ))
}

/// What arrived at `/auth/callback`.
#[derive(Debug)]
pub enum Callback {
    /// The authorization code (one use, short-lived, still never printed).
    Code(codex_proxy_proto::Sensitive),
    Denied(String),
}

/// Waits for the browser to arrive at `/auth/callback` with our `state`; other requests are
/// answered 404 and the wait goes on. Returns the stream to answer once the daemon is done.
pub fn wait_for_callback(
    listener: &TcpListener,
    expected_state: &str,
) -> Result<(Callback, TcpStream), String> {
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("callback listener: {e}"))?;
    loop {
        if Instant::now() > deadline {
            return Err("the sign-in was not completed within 15 minutes; start again".into());
        }
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(format!("callback listener: {e}")),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(target) = request_target(&mut stream) else {
            continue;
        };
        let Some(query) = target.strip_prefix("/auth/callback") else {
            respond(
                &mut stream,
                404,
                "Not found",
                "This is codexctl's sign-in callback.",
            );
            continue;
        };
        let params: Vec<(String, String)> = query
            .strip_prefix('?')
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((decode(k), decode(v)))
            })
            .collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(error) = get("error") {
            let reason = match get("error_description") {
                Some(d) if d.contains("missing_codex_entitlement") => {
                    "Codex is not enabled for this workspace".to_owned()
                }
                Some(d) => format!("{error}: {d}"),
                None => error,
            };
            return Ok((Callback::Denied(reason), stream));
        }
        match (get("code"), get("state")) {
            (Some(code), Some(state)) if state.split('.').next() == Some(expected_state) => {
                return Ok((
                    Callback::Code(codex_proxy_proto::Sensitive::new(code)),
                    stream,
                ));
            }
            _ => respond(
                &mut stream,
                400,
                "Bad request",
                "This callback does not belong to the sign-in codexctl is waiting for.",
            ),
        }
    }
}

/// The request target of an HTTP request line (`GET /path?q HTTP/1.1`).
fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut reader = std::io::BufReader::new(stream.take(MAX_LINE as u64));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET").then(|| target.to_owned())
}

/// Percent-decoding of a query component (`+` is a space); a bad escape stays as it is.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers the browser with a small page.
pub fn respond(stream: &mut TcpStream, status: u16, title: &str, message: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
         <h1>{title}</h1><p>{message}</p></body></html>"
    );
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// Opens `url` in the default browser when there is a display; `false` when it could not.
pub fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        "xdg-open"
    } else {
        return false;
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Reads one line from stdin (the pasted redirect URL), bounded.
pub fn read_pasted_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the pasted URL: {e}"))?;
    let line = line.trim().to_owned();
    if line.is_empty() {
        return Err("nothing was pasted; run `codexctl login --paste` again".into());
    }
    Ok(line)
}

/// A spinner on stderr while waiting (only on a terminal); stops when dropped.
#[derive(Debug)]
pub struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    pub fn start(message: &str, enabled: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let stop = stop.clone();
            let message = message.to_owned();
            std::thread::spawn(move || {
                let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    eprint!("\r{} {message}", frames[i % frames.len()]);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                eprint!("\r\x1b[2K");
            })
        });
        Self { stop, thread }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_decode() {
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%e2%9c%93"), "✓");
    }
}
