//! The daemon's per-event work for one non-streamed answer, isolated for profiling: SSE
//! decoding, event parsing and translation into an assembled completion, exactly as
//! `server::chat::complete` drives them, repeated over a recorded upstream stream.
//!
//! ```text
//! codex-bench --print-upstream-stream > /tmp/answer.sse
//! cargo build --profile profiling -p codex-proxy --example event_path
//! valgrind --tool=callgrind target/profiling/examples/event_path /tmp/answer.sse 1000
//! ```
//! `bench/callgrind.sh` does this and prints the instructions per answer.

use bytes::Bytes;
use codex_proxy::config::ReasoningOutput;
use codex_proxy::translate::held::Held;
use codex_proxy::translate::stream::{Assembler, StreamTranslator};
use codex_proxy::upstream::sse::SseDecoder;

/// One answer: the whole stream in one read, as the bench's mock sends a non-streamed answer.
#[inline(never)]
fn answer(stream: &Bytes) -> anyhow::Result<usize> {
    let mut decoder = SseDecoder::default();
    decoder.feed(stream.clone())?;
    let mut translator = StreamTranslator::new(ReasoningOutput::default(), &[]);
    let mut assembled = Assembler::default();
    let mut held = Held::default();
    while decoder.advance() {
        if held.takes(decoder.event()) {
            held.hold(decoder.event_bytes(), &mut translator, &mut assembled);
        } else {
            held.push(decoder.event(), &mut translator, &mut assembled);
        }
    }
    held.eof(&mut translator, &mut assembled);
    Ok(assembled.content.len())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(count)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: event_path STREAM_FILE REPEATS");
    };
    let stream = Bytes::from(std::fs::read(&path)?);
    let count: usize = count.parse()?;
    let mut text = 0;
    for _ in 0..count {
        text += answer(std::hint::black_box(&stream))?;
    }
    println!(
        "{count} answers of {} stream bytes, {text} text bytes in all",
        stream.len()
    );
    Ok(())
}
