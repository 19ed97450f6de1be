//! The token estimate's speed (Messages' `message_start`, `count_tokens`, Ollama's and
//! Gemini's fallback usage): milliseconds per MB of text, on codex-bench [11]'s synthetic words
//! (its worst case: short runs of letters and punctuation) and on this crate's own source.
//!
//! ```text
//! cargo run --release -p codex-proxy --example estimate
//! ```

use std::time::Instant;

use codex_proxy::translate::messages::tokens;

/// [11]'s words: random runs of syllables and punctuation, 10 KB a message.
fn words(bytes: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sta", "ter", "von", "fn", "let", "self", "impl", "->", "{",
        "}", "ok",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut out = String::with_capacity(bytes + 8);
    while out.len() < bytes {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut n = seed;
        for _ in 0..(1 + n % 3) {
            out.push_str(SYLLABLES[(n % 16) as usize]);
            n /= 16;
        }
        out.push(' ');
    }
    out
}

/// This crate's source, concatenated to at least `bytes`.
fn source(bytes: usize) -> String {
    let mut out = String::new();
    let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.push_str(&text);
            }
        }
    }
    while out.len() < bytes && !out.is_empty() {
        out.push_str(&out.clone());
    }
    out.truncate(boundary(&out, bytes));
    out
}

/// The last character boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Best of `rounds` over 1 MB cut into `piece`-byte texts, in ms per MB.
fn measure(text: &str, piece: usize, rounds: usize) -> (f64, u64) {
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let end = boundary(text, at + piece);
        let end = if end <= at { text.len() } else { end };
        pieces.push(&text[at..end]);
        at = end;
    }
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        total = pieces
            .iter()
            .map(|p| tokens::text(std::hint::black_box(p)))
            .sum();
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    (best * (1 << 20) as f64 / text.len() as f64, total)
}

fn main() {
    const MB: usize = 1 << 20;
    for (name, text) in [("[11] words", words(MB)), ("Rust source", source(MB))] {
        for piece in [1 << 10, 10 << 10, MB] {
            let (ms, count) = measure(&text, piece, 200);
            println!(
                "{name:12} in {:>5} KB texts: {ms:.3} ms per MB ({count} tokens)",
                piece >> 10
            );
        }
    }
}
