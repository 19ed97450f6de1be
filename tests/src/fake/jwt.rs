//! HS256 JWTs with the claims the real auth server puts in its tokens.
//!
//! The real tokens are RS256; clients never verify signatures (they only read claims), so HS256
//! with a per-instance secret is enough for the fake to tell its own tokens from forgeries.

use serde_json::Value;

use super::util::{b64url, b64url_decode, ct_eq, hmac_sha256, now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    BadSignature,
    Expired,
}

pub fn sign(secret: &[u8], claims: &Value) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"fake-upstream"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = b64url(&hmac_sha256(secret, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// Verifies signature and `exp`; returns the claims.
pub fn verify(secret: &[u8], token: &str) -> Result<Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let expected = hmac_sha256(secret, format!("{header}.{payload}").as_bytes());
    let given = b64url_decode(signature).ok_or(JwtError::Malformed)?;
    if !ct_eq(&expected, &given) {
        return Err(JwtError::BadSignature);
    }
    let claims = decode_claims(token).ok_or(JwtError::Malformed)?;
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now() => Ok(claims),
        Some(_) => Err(JwtError::Expired),
        None => Err(JwtError::Malformed),
    }
}

/// Reads the claims without verifying anything (what clients do).
pub fn decode_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&b64url_decode(payload)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let secret = b"k";
        let token = sign(secret, &serde_json::json!({"exp": now() + 60, "a": 1}));
        assert_eq!(verify(secret, &token).unwrap()["a"], 1);
        assert_eq!(verify(b"other", &token), Err(JwtError::BadSignature));
        let expired = sign(secret, &serde_json::json!({"exp": now() - 1}));
        assert_eq!(verify(secret, &expired), Err(JwtError::Expired));
        assert_eq!(verify(secret, "a.b"), Err(JwtError::Malformed));
    }
}
