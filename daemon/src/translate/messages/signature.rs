//! A `thinking` block's `signature`: `cpx1.<account>.<encrypted reasoning>`, the account as
//! base64url of our account id. The encrypted reasoning only opens on the account that made
//! it, so the account travels with it: a later turn that sends the block back is routed there,
//! and the block becomes the reasoning item it came from. Signatures made by anyone else (real
//! Anthropic ones, another gateway's) are not ours to read and are left out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "cpx1.";

/// The longest account id a signature carries (ours are `acct_N`).
const MAX_ACCOUNT: usize = 256;

/// The signature for reasoning `encrypted` made on `account`.
pub fn encode(account: &str, encrypted: &str) -> String {
    format!("{PREFIX}{}.{encrypted}", URL_SAFE_NO_PAD.encode(account))
}

/// The account and encrypted reasoning of one of our signatures; `None` for anything else.
pub fn decode(signature: &str) -> Option<(String, &str)> {
    let rest = signature.strip_prefix(PREFIX)?;
    let (account, encrypted) = rest.split_once('.')?;
    if account.len() > MAX_ACCOUNT * 4 / 3 + 4 || encrypted.is_empty() {
        return None;
    }
    let account = String::from_utf8(URL_SAFE_NO_PAD.decode(account).ok()?).ok()?;
    (!account.is_empty()).then_some((account, encrypted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_foreign_ones_are_refused() {
        let sig = encode("acct_1", "gAAAAABn.x_y-z==");
        assert!(sig.starts_with("cpx1."));
        assert_eq!(
            decode(&sig),
            Some(("acct_1".to_owned(), "gAAAAABn.x_y-z=="))
        );
        for foreign in [
            "",
            "EqQBCkYIBxgCKkD0anthropic",
            "cpx1.",
            "cpx1.YWNjdF8x.",
            "cpx1.!!!.gAAA",
            "cpx1..gAAA",
        ] {
            assert_eq!(decode(foreign), None, "{foreign}");
        }
    }
}
