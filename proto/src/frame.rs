//! Framing: a 4-byte big-endian length, then that many bytes of JSON. The length is checked
//! against [`MAX_FRAME`] before a byte of the body is read, so a peer cannot make the other side
//! allocate more than that.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame either side sends or accepts (an imported `auth.json` is a few KiB).
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    Closed,
    /// A frame announced (or would need) more than [`MAX_FRAME`] bytes.
    TooLarge(usize),
    /// The frame is not the JSON message expected.
    Malformed(serde_json::Error),
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("the connection was closed"),
            Self::TooLarge(n) => {
                write!(f, "a frame of {n} bytes exceeds the {MAX_FRAME}-byte limit")
            }
            Self::Malformed(e) => write!(f, "malformed message: {e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(e)
        }
    }
}

/// The frame for `message`: length prefix and JSON.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut bytes = vec![0; 4];
    serde_json::to_writer(&mut bytes, message).map_err(FrameError::Malformed)?;
    let len = bytes.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    // Fits: MAX_FRAME < u32::MAX.
    bytes[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(bytes)
}

/// Checks a length prefix against the cap.
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        Err(FrameError::TooLarge(len))
    } else {
        Ok(len)
    }
}

pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Malformed)
}

pub fn write_frame<T: Serialize>(w: &mut impl Write, message: &T) -> Result<(), FrameError> {
    w.write_all(&encode(message)?)?;
    w.flush()?;
    Ok(())
}

pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut prefix = [0; 4];
    r.read_exact(&mut prefix)?;
    let mut body = vec![0; body_len(prefix)?];
    r.read_exact(&mut body)?;
    decode(&body)
}

/// The same over tokio streams (the daemon side).
#[cfg(feature = "tokio")]
pub mod nonblocking {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::{FrameError, body_len, decode, encode};

    pub async fn write_frame<T: Serialize>(
        w: &mut (impl AsyncWrite + Unpin),
        message: &T,
    ) -> Result<(), FrameError> {
        w.write_all(&encode(message)?).await?;
        w.flush().await?;
        Ok(())
    }

    pub async fn read_frame<T: DeserializeOwned>(
        r: &mut (impl AsyncRead + Unpin),
    ) -> Result<T, FrameError> {
        let mut prefix = [0; 4];
        r.read_exact(&mut prefix).await?;
        let mut body = vec![0; body_len(prefix)?];
        r.read_exact(&mut body).await?;
        decode(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &serde_json::json!({"request": "status"})).unwrap();
        assert_eq!(&wire[..4], &[0, 0, 0, 20]);
        let back: serde_json::Value = read_frame(&mut wire.as_slice()).unwrap();
        assert_eq!(back["request"], "status");
    }

    #[test]
    fn oversize_is_refused_before_reading_the_body() {
        // Announces 16 MiB but sends nothing more: refused from the prefix alone.
        let wire = (16u32 << 20).to_be_bytes();
        let err = read_frame::<serde_json::Value>(&mut wire.as_slice()).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge(n) if n == 16 << 20),
            "{err}"
        );
        let big = "x".repeat(MAX_FRAME);
        assert!(matches!(encode(&big), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        assert!(matches!(
            read_frame::<serde_json::Value>(&mut [0u8, 0].as_slice()),
            Err(FrameError::Closed)
        ));
        let mut wire = 3u32.to_be_bytes().to_vec();
        wire.extend_from_slice(b"{{{");
        assert!(matches!(
            read_frame::<serde_json::Value>(&mut wire.as_slice()),
            Err(FrameError::Malformed(_))
        ));
    }
}
