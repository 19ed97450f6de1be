//! Incremental SSE decoding: bytes in as the network delivers them, complete `data:` payloads
//! out. Works on bytes, so a UTF-8 character or an event split across reads is reassembled.
//!
//! The hot path copies nothing: an event that arrived whole in one read is handed on as a slice
//! of that read's buffer; only a partial event waits in the decoder's own buffer.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Largest single event accepted; a bigger one is a protocol error, not a reason to buffer on.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The start of an event whose end has not arrived yet.
    buf: BytesMut,
    /// Where the search for the next boundary in `buf` resumes (bytes before it hold none).
    scanned: usize,
    /// The read whose events are being handed out, from `at`. While it holds bytes, `buf` is
    /// empty.
    current: Bytes,
    at: usize,
    /// The first boundary in `current`, when [`Self::feed`] already found it.
    first: Option<Boundary>,
    /// Where the event [`Self::advance`] found last has its data.
    event: Option<Data>,
    /// The data of an event of several `data:` lines, joined.
    joined: Vec<u8>,
}

/// Where an event's data is.
#[derive(Debug, Clone)]
enum Data {
    /// A slice of the current read (one `data:` line, the usual case).
    Read(Range<usize>),
    /// Its lines joined in the decoder's `joined`.
    Joined,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an upstream SSE event exceeded {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseDecoder {
    /// Takes one read; its complete events then come out of [`Self::next_event`], one at a
    /// time, so no queue holds them. Events a previous read still held are kept.
    pub fn feed(&mut self, chunk: Bytes) -> Result<(), EventTooLarge> {
        if self.at < self.current.len() {
            // Not drained: keep the rest, to be searched again from its start.
            self.buf.extend_from_slice(&self.current[self.at..]);
            self.scanned = 0;
        }
        self.current = Bytes::new();
        self.at = 0;
        self.first = None;
        if self.buf.is_empty() {
            self.current = chunk;
            return Ok(());
        }
        self.buf.extend_from_slice(&chunk);
        // A boundary may straddle the previous read: look back over its last bytes.
        let from = self.scanned.saturating_sub(3);
        match find_boundary(&self.buf, from) {
            Some(first) => {
                self.first = Some(first);
                self.current = self.buf.split().freeze();
                Ok(())
            }
            None => {
                self.scanned = self.buf.len();
                self.bounded()
            }
        }
    }

    /// Finds the next complete event fed so far, for [`Self::event`]; `false` until another
    /// read is fed.
    pub fn advance(&mut self) -> bool {
        loop {
            let boundary = match self.first.take() {
                Some(first) => first,
                None => match find_boundary(&self.current, self.at) {
                    Some(boundary) => boundary,
                    None => {
                        // The rest was all searched; it waits for the rest of its event.
                        self.buf.extend_from_slice(&self.current[self.at..]);
                        self.scanned = self.buf.len();
                        self.current = Bytes::new();
                        self.at = 0;
                        self.event = None;
                        return false;
                    }
                },
            };
            let start = self.at;
            self.at = boundary.at + boundary.len;
            self.event = payload(&self.current, start, &boundary, &mut self.joined);
            if self.event.is_some() {
                return true;
            }
        }
    }

    /// The `data` of the event [`Self::advance`] found: a slice of the read it came in, unless
    /// it had several `data:` lines (empty before the first event).
    pub fn event(&self) -> &[u8] {
        match &self.event {
            Some(Data::Read(range)) => &self.current[range.clone()],
            Some(Data::Joined) => &self.joined,
            None => &[],
        }
    }

    /// [`Self::event`] as shared bytes, to keep past the next event: a slice of the read,
    /// copied only when the event had several `data:` lines.
    pub fn event_bytes(&self) -> Bytes {
        match &self.event {
            Some(Data::Read(range)) => self.current.slice(range.clone()),
            Some(Data::Joined) => Bytes::copy_from_slice(&self.joined),
            None => Bytes::new(),
        }
    }

    /// The `data` of the next complete event fed so far; `None` until another read is fed.
    pub fn next_event(&mut self) -> Option<&[u8]> {
        self.advance().then(|| self.event())
    }

    fn bounded(&self) -> Result<(), EventTooLarge> {
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(())
    }
}

/// Where the data of the event in `data[start..boundary.at]` is, if it has any.
fn payload(data: &[u8], start: usize, boundary: &Boundary, joined: &mut Vec<u8>) -> Option<Data> {
    match boundary.lines(start) {
        // The usual event, `event: …` and `data: …` (or one of them), read from the line breaks
        // the search for its end already found.
        Some((first, second)) => match (data_line(data, first), second) {
            (Some(value), None) => Some(Data::Read(value)),
            (None, Some(second)) => data_line(data, second).map(Data::Read),
            (None, None) => None,
            (Some(value), Some(second)) if data_line(data, second.clone()).is_none() => {
                Some(Data::Read(value))
            }
            (Some(_), Some(_)) => data_of(data, start, boundary.at, joined),
        },
        None => data_of(data, start, boundary.at, joined),
    }
}

/// A blank line, as [`find_boundary`] found it.
#[derive(Debug)]
struct Boundary {
    /// Where it starts (the end of the event's last line) and its length.
    at: usize,
    len: usize,
    /// Where the search began, how many line breaks it passed and the last of them.
    from: usize,
    breaks: usize,
    last_break: usize,
}

impl Boundary {
    /// The event's lines when it began where the search did and holds at most two `\n`-ended
    /// lines — almost every event — so they need not be searched for again.
    fn lines(&self, start: usize) -> Option<(Range<usize>, Option<Range<usize>>)> {
        match self.breaks {
            _ if self.from != start => None,
            0 => Some((start..self.at, None)),
            1 if self.last_break >= start => {
                Some((start..self.last_break, Some(self.last_break + 1..self.at)))
            }
            _ => None,
        }
    }
}

/// The next blank line at or after `from`: a line break (`\n`, `\r\n` or `\r`, as the SSE
/// specification allows, mixed or not) followed at once by another. A `\r` at the very end
/// may be the first half of `\r\n`: the search stops there until the next read tells.
fn find_boundary(buf: &[u8], from: usize) -> Option<Boundary> {
    let mut i = from;
    let mut breaks = 0;
    let mut last_break = 0;
    while let Some(offset) = buf
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'\n', b'\r', rest))
    {
        let at = i + offset;
        let first = match (buf[at], buf.get(at + 1)) {
            (b'\r', Some(b'\n')) => 2,
            (b'\r', None) => return None,
            _ => 1,
        };
        let next = at + first;
        let second = match (buf.get(next), buf.get(next + 1)) {
            (Some(b'\n'), _) => Some(1),
            (Some(b'\r'), Some(b'\n')) => Some(2),
            // A `\r` ends the blank line whether or not a `\n` follows (one that comes in the
            // next read is an empty line of the next event, which carries no data).
            (Some(b'\r'), _) => Some(1),
            _ => None,
        };
        if let Some(second) = second {
            return Some(Boundary {
                at,
                len: first + second,
                from,
                breaks,
                last_break,
            });
        }
        // A `\r` counts twice, so an event with one never takes the two-line path.
        breaks += if buf[at] == b'\n' { 1 } else { 2 };
        last_break = at;
        i = next;
    }
    None
}

/// Where the value of `line` is when it is a `data:` line.
fn data_line(src: &[u8], line: Range<usize>) -> Option<Range<usize>> {
    let value = src[line.clone()].strip_prefix(b"data:")?;
    let skip = usize::from(value.first() == Some(&b' '));
    Some(line.start + 5 + skip..line.end)
}

/// Where the `data:` lines of the event in `src[start..end]` are: a single one in `src`, several
/// joined into `joined`; comments and other fields are skipped.
fn data_of(src: &[u8], start: usize, end: usize, joined: &mut Vec<u8>) -> Option<Data> {
    let block = &src[start..end];
    let mut single: Option<Range<usize>> = None;
    let mut several = false;
    let mut line_start = 0;
    loop {
        let line_end = memchr::memchr2(b'\n', b'\r', &block[line_start..])
            .map_or(block.len(), |offset| line_start + offset);
        if let Some(value) = data_line(block, line_start..line_end) {
            match &single {
                None => single = Some(value),
                Some(first) => {
                    if !several {
                        joined.clear();
                        joined.extend_from_slice(&block[first.clone()]);
                        several = true;
                    }
                    joined.push(b'\n');
                    joined.extend_from_slice(&block[value]);
                }
            }
        }
        if line_end >= block.len() {
            break;
        }
        line_start = line_end + 1;
    }
    match (several, single) {
        (true, _) => Some(Data::Joined),
        (false, Some(value)) => Some(Data::Read(start + value.start..start + value.end)),
        (false, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One read, and the events it completes.
    fn feed(decoder: &mut SseDecoder, bytes: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        decoder.feed(Bytes::copy_from_slice(bytes))?;
        let mut out = Vec::new();
        while let Some(event) = decoder.next_event() {
            out.push(String::from_utf8(event.to_vec()).unwrap());
        }
        decoder.bounded()?;
        Ok(out)
    }

    /// The stream fed in two reads, split at every byte, gives `expected` each time.
    fn at_every_cut(stream: &str, expected: &[&str]) {
        let bytes = stream.as_bytes();
        for cut in 0..bytes.len() {
            let mut decoder = SseDecoder::default();
            let mut out = feed(&mut decoder, &bytes[..cut]).unwrap();
            out.extend(feed(&mut decoder, &bytes[cut..]).unwrap());
            assert_eq!(out, expected, "cut at {cut}");
        }
    }

    #[test]
    fn decodes_events_split_anywhere() {
        // Every split point, including inside the multi-byte characters.
        at_every_cut(
            "event: response.created\ndata: {\"a\":1}\n\n: comment\n\nevent: x\ndata: {\"t\":\"h\u{e9}\u{1f600}\"}\n\n",
            &["{\"a\":1}", "{\"t\":\"h\u{e9}\u{1f600}\"}"],
        );
    }

    #[test]
    fn every_pair_of_cuts() {
        let stream =
            "data: one\r\n\r\nevent: e\r\ndata: two\r\n\r\ndata:three\r\rdata: a\ndata: b\r\n\n";
        let bytes = stream.as_bytes();
        for a in 0..bytes.len() {
            for b in a..bytes.len() {
                let mut decoder = SseDecoder::default();
                let mut out = feed(&mut decoder, &bytes[..a]).unwrap();
                out.extend(feed(&mut decoder, &bytes[a..b]).unwrap());
                out.extend(feed(&mut decoder, &bytes[b..]).unwrap());
                assert_eq!(out, ["one", "two", "three", "a\nb"], "cuts at {a}, {b}");
            }
        }
    }

    #[test]
    fn two_line_events_in_every_order() {
        at_every_cut(
            "data: a\n: after\n\n: before\ndata: b\n\nevent: e\nid: 1\n\ndata: c\ndata: d\n\nid: 2\n\ndata:e\n\n",
            &["a", "b", "c\nd", "e"],
        );
    }

    #[test]
    fn byte_by_byte_and_crlf() {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for b in "data: one\r\n\r\ndata: two\ndata: lines\n\ndata: x\ndata: y\ndata: z\n\n".bytes()
        {
            out.extend(feed(&mut decoder, &[b]).unwrap());
        }
        assert_eq!(out, ["one", "two\nlines", "x\ny\nz"]);
    }

    #[test]
    fn a_whole_event_is_not_copied() {
        let chunk = Bytes::from_static(b"event: e\ndata: {\"a\":1}\n\ndata: partial");
        let mut decoder = SseDecoder::default();
        decoder.feed(chunk.clone()).unwrap();
        // The payload points into the read's own buffer.
        assert_eq!(
            decoder.next_event().map(<[u8]>::as_ptr),
            Some(chunk[15..].as_ptr())
        );
        assert_eq!(decoder.next_event(), None);
        decoder.feed(Bytes::from_static(b"\n\n")).unwrap();
        assert_eq!(decoder.next_event(), Some(&b"partial"[..]));
        // Several data lines are joined (in the decoder's own buffer).
        decoder
            .feed(Bytes::from_static(b"data: a\ndata: b\n\ndata: c\n\n"))
            .unwrap();
        assert_eq!(decoder.next_event(), Some(&b"a\nb"[..]));
        assert_eq!(decoder.next_event(), Some(&b"c"[..]));
    }

    #[test]
    fn reads_fed_before_their_events_were_taken_lose_nothing() {
        let mut decoder = SseDecoder::default();
        decoder
            .feed(Bytes::from_static(b"data: 1\n\ndata: 2\n\ndata: 3"))
            .unwrap();
        assert_eq!(decoder.next_event(), Some(&b"1"[..]));
        // Event 2 was not taken before the next read.
        decoder
            .feed(Bytes::from_static(b"\n\ndata: 4\n\n"))
            .unwrap();
        let mut rest = Vec::new();
        while let Some(event) = decoder.next_event() {
            rest.push(event.to_vec());
        }
        assert_eq!(rest, [&b"2"[..], b"3", b"4"]);
    }

    #[test]
    fn refuses_unbounded_events() {
        let mut decoder = SseDecoder::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(feed(&mut decoder, &big), Err(EventTooLarge));
        let mut decoder = SseDecoder::default();
        let half = vec![b'x'; MAX_EVENT_BYTES / 2 + 1];
        assert!(feed(&mut decoder, &half).is_ok());
        assert_eq!(feed(&mut decoder, &half), Err(EventTooLarge));
    }

    /// The SSE specification's reading of a whole stream, line by line (the fields this
    /// decoder serves: `data`, with comments and other fields skipped).
    fn reference(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        let mut data: Option<Vec<u8>> = None;
        let mut i = 0;
        while i < stream.len() {
            let Some(end) = stream[i..]
                .iter()
                .position(|b| *b == b'\n' || *b == b'\r')
                .map(|p| i + p)
            else {
                break; // an unterminated last line is not a line yet
            };
            let line = &stream[i..end];
            i = end
                + if stream[end..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
            if line.is_empty() {
                if let Some(mut d) = data.take() {
                    d.pop(); // the last line's `\n`
                    events.push(d);
                }
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let (field, value) = match line.iter().position(|b| *b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            if field == b"data" {
                let d = data.get_or_insert_with(Vec::new);
                d.extend_from_slice(value);
                d.push(b'\n');
            }
        }
        events
    }

    fn line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let text = prop::collection::vec(
            prop::sample::select(vec!["a", "{\"k\":1}", ":", " ", "é", "😀", "data", "x y"]),
            0..4,
        )
        .prop_map(|parts| parts.concat());
        prop_oneof![
            4 => text.clone().prop_map(|t| format!("data: {t}")),
            2 => text.clone().prop_map(|t| format!("data:{t}")),
            1 => text.clone().prop_map(|t| format!("data:  {t}")),
            1 => text.clone().prop_map(|t| format!("event: {t}")),
            1 => text.clone().prop_map(|t| format!("id:{t}")),
            1 => text.prop_map(|t| format!(":{t}")),
            1 => Just(String::new()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 2048,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any stream — line breaks of every kind, mixed — fed in reads cut anywhere gives the
        /// events the specification reads from it whole.
        #[test]
        fn decodes_as_the_specification_reads(
            lines in proptest::collection::vec(
                (line(), proptest::sample::select(vec!["\n", "\r\n", "\r"])),
                0..24,
            ),
            cuts in proptest::collection::vec(
                proptest::prelude::any::<proptest::sample::Index>(),
                0..6,
            ),
        ) {
            let stream: Vec<u8> = lines
                .iter()
                .flat_map(|(line, end)| [line.as_bytes(), end.as_bytes()].concat())
                .collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.push(0);
            at.push(stream.len());
            at.sort_unstable();
            let mut decoder = SseDecoder::default();
            let mut out = Vec::new();
            for pair in at.windows(2) {
                decoder.feed(Bytes::copy_from_slice(&stream[pair[0]..pair[1]])).unwrap();
                while let Some(event) = decoder.next_event() {
                    out.push(event.to_vec());
                }
            }
            proptest::prop_assert_eq!(
                out,
                reference(&stream),
                "stream {:?} cut at {:?}",
                String::from_utf8_lossy(&stream),
                at
            );
        }
    }
}
