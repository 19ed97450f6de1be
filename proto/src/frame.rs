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

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Closed | Self::TooLarge(_) => None,
        }
    }
}

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

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::{Request, Sensitive};

        fn text() -> impl Strategy<Value = String> {
            prop::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect())
        }

        fn request() -> impl Strategy<Value = Request> {
            prop_oneof![
                Just(Request::Status),
                any::<u64>().prop_map(|interval_ms| Request::WatchStatus { interval_ms }),
                (text(), prop::option::of(text()))
                    .prop_map(|(account, label)| Request::AccountLabel { account, label }),
                text().prop_map(|url| Request::LoginPaste {
                    url: Sensitive::new(url)
                }),
                text().prop_map(|account| Request::RotatePin { account }),
            ]
        }

        /// A reader that counts what was taken from it.
        struct Counting<'a> {
            bytes: &'a [u8],
            taken: usize,
        }

        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.bytes.read(buf)?;
                self.taken += n;
                Ok(n)
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 1024,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Messages written one after another are read back, the same and in order.
            #[test]
            fn frames_round_trip_in_order(requests in prop::collection::vec(request(), 1..6)) {
                let mut wire = Vec::new();
                for r in &requests {
                    write_frame(&mut wire, r).unwrap();
                }
                let mut reader = wire.as_slice();
                for r in &requests {
                    prop_assert_eq!(&read_frame::<Request>(&mut reader).unwrap(), r);
                }
                prop_assert!(matches!(read_frame::<Request>(&mut reader), Err(FrameError::Closed)));
            }

            /// A frame cut anywhere is `Closed`, never a message or a panic.
            #[test]
            fn a_cut_frame_is_closed(request in request(), cut in any::<prop::sample::Index>()) {
                let wire = encode(&request).unwrap();
                let cut = cut.index(wire.len());
                prop_assert!(matches!(
                    read_frame::<Request>(&mut &wire[..cut]),
                    Err(FrameError::Closed)
                ));
            }

            /// Any bytes at all: an error or a message, never a panic, and never more read (or
            /// allocated) than the prefix allows.
            #[test]
            fn any_bytes_are_read_within_the_cap(
                prefix in any::<u32>(),
                body in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut wire = prefix.to_be_bytes().to_vec();
                wire.extend_from_slice(&body);
                let mut reader = Counting { bytes: &wire, taken: 0 };
                let result = read_frame::<serde_json::Value>(&mut reader);
                if prefix as usize > MAX_FRAME {
                    prop_assert!(matches!(result, Err(FrameError::TooLarge(_))));
                    prop_assert_eq!(reader.taken, 4, "the body was read past an oversize prefix");
                } else {
                    prop_assert!(reader.taken <= 4 + prefix as usize);
                }
            }
        }
    }
}
