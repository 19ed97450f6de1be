//! Incremental SSE decoding: bytes in as the network delivers them, complete `data:` payloads
//! out. Works on bytes, so a UTF-8 character or an event split across reads is reassembled.

/// Largest single event accepted; a bigger one is a protocol error, not a reason to buffer on.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Where the search for the next boundary resumes (bytes before it hold no boundary).
    scanned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an upstream SSE event exceeded {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseDecoder {
    /// Feeds bytes; returns the `data` of every event completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = self.scanned.saturating_sub(3).max(start);
        while let Some((end, sep)) = find_boundary(&self.buf, i) {
            if let Some(data) = data_of(&self.buf[start..end]) {
                events.push(data);
            }
            start = end + sep;
            i = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }
}

/// The next blank line at or after `from`: `\n\n`, `\r\n\r\n` or `\r\r`.
fn find_boundary(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some((i, 2)),
            (b'\r', b'\n') if buf.get(i + 2..i + 4) == Some(b"\r\n") => return Some((i, 4)),
            _ => i += 1,
        }
    }
    None
}

/// Joins the `data:` lines of one event; comments and other fields are skipped. Works on
/// bytes (lines split at `\n`/`\r`, both ASCII), so only the data itself is converted to text.
fn data_of(block: &[u8]) -> Option<String> {
    let mut data: Option<Vec<u8>> = None;
    for line in block.split(|b| *b == b'\n' || *b == b'\r') {
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
    }
    data.map(|d| {
        String::from_utf8(d).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_split_anywhere() {
        let stream = "event: response.created\ndata: {\"a\":1}\n\n: comment\n\nevent: x\ndata: {\"t\":\"h\u{e9}\u{1f600}\"}\n\n";
        let bytes = stream.as_bytes();
        // Every split point, including inside the multi-byte characters.
        for cut in 0..bytes.len() {
            let mut decoder = SseDecoder::default();
            let mut out = decoder.push(&bytes[..cut]).unwrap();
            out.extend(decoder.push(&bytes[cut..]).unwrap());
            assert_eq!(
                out,
                ["{\"a\":1}", "{\"t\":\"h\u{e9}\u{1f600}\"}"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn byte_by_byte_and_crlf() {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for b in "data: one\r\n\r\ndata: two\ndata: lines\n\n".bytes() {
            out.extend(decoder.push(&[b]).unwrap());
        }
        assert_eq!(out, ["one", "two\nlines"]);
    }

    #[test]
    fn refuses_unbounded_events() {
        let mut decoder = SseDecoder::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(decoder.push(&big), Err(EventTooLarge));
    }
}
