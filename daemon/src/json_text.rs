//! JSON strings at the speed of memory: finding where a string's plain bytes end (the quote,
//! the backslash, control characters) eight bytes at a time, and writing a string escaped
//! exactly as serde_json writes it. serde_json escapes a byte at a time (≈ 9 instructions per
//! byte of an answer, against ≈ 3 here); an answer is mostly plain runs, copied whole.

/// Bytes that end the plain run of a string: the quote, the backslash, control characters.
pub(crate) const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The length of the run of plain string bytes (not [`SPECIAL`]) at the start of `bytes`.
/// Eight bytes at a time: a delta is short, but the full text in a `done` event is the whole
/// answer, and a byte at a time was most of the event reader's cost.
#[inline(always)]
pub(crate) fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        // A byte's high bit is set where it is below 0x20, a quote or a backslash (the lowest
        // flagged byte is exact; borrows can only flag bytes above it).
        let flagged = (word.wrapping_sub(ONES * 0x20)
            | (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES)
            | (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES))
            & !word
            & HIGH;
        if flagged != 0 {
            return at + (flagged.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .position(|&b| SPECIAL[usize::from(b)])
        .unwrap_or(bytes.len() - at)
}

/// Appends `text` as a JSON string, quotes included, byte for byte as serde_json writes it:
/// `\"`, `\\`, `\b \f \n \r \t`, other control characters as `\u00XX` (lower-case hex);
/// everything else, DEL and non-ASCII included, as it is. Plain runs are copied whole.
pub fn quote_into(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut at = 0;
    loop {
        let run = plain_run(&bytes[at..]);
        out.extend_from_slice(&bytes[at..at + run]);
        at += run;
        let Some(&special) = bytes.get(at) else {
            break;
        };
        match special {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            control => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(control >> 4)],
                HEX[usize::from(control & 0xf)],
            ]),
        }
        at += 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs_end_at_the_first_special_byte() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| SPECIAL[usize::from(b)])
                .unwrap_or(bytes.len())
        };
        // Every special byte at every place of every length, among plain bytes of all kinds
        // (ASCII, UTF-8 continuation and lead bytes, the bytes just above the specials).
        for len in 0..40 {
            for filler in [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xc3, 0xff] {
                let mut bytes = vec![filler; len];
                assert_eq!(plain_run(&bytes), len);
                for at in 0..len {
                    for special in (0..0x20).chain([b'"', b'\\']) {
                        bytes[at] = special;
                        // A second special byte after the first must not hide it.
                        if at + 1 < len {
                            bytes[at + 1] = b'"';
                        }
                        assert_eq!(plain_run(&bytes), naive(&bytes), "{bytes:?}");
                        bytes[at] = filler;
                        if at + 1 < len {
                            bytes[at + 1] = filler;
                        }
                    }
                }
            }
        }
    }

    /// Every byte value and some non-ASCII text, alone, in runs and between plain bytes: the
    /// same bytes as serde_json's own escaping.
    #[test]
    fn quoting_is_serde_jsons_byte_for_byte() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "Grüße, 世界! 😀".into(),
            "say \"hi\"\\n\r\n\t\u{8}\u{c}\u{0}\u{1f}\u{7f}\u{80}".into(),
            "x".repeat(1000) + "\"" + &"y".repeat(7),
        ];
        for c in (0u8..0x80).map(char::from).chain(['é', '€', '\u{2028}']) {
            samples.push(c.to_string());
            samples.push(format!("abcdefg{c}hijklmnop{c}{c}"));
            samples.push(format!("{c}{}", "z".repeat(20)));
        }
        for text in &samples {
            let mut ours = b"prefix ".to_vec();
            quote_into(&mut ours, text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                format!("prefix {}", serde_json::to_string(text).unwrap()),
                "{text:?}"
            );
        }
    }
}
