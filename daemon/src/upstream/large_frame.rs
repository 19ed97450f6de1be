//! A large text frame written straight to its socket. tungstenite copies every frame it sends
//! into its write buffer (masking it there) and keeps that buffer's capacity for the socket's
//! life: a conversation whose first turn sent a 1 MB history held a megabyte in its idle
//! socket for up to ten minutes (sixteen such sockets per account), and every such turn paid
//! the copy and the buffer's fresh pages. A frame this daemon wrote into a kept buffer is
//! masked where it is and written from there, after whatever tungstenite still had to send.
//! The header is tungstenite's own; the masking is held to tungstenite's frame, byte for byte,
//! by the tests.

use std::sync::Arc;

use bytes::Buf;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::buffers::LargeBuffers;

/// A whole text frame's JSON, in a buffer of `home`'s (given back once the frame is sent, or
/// dropped unsent).
pub struct LargeFrame {
    text: Vec<u8>,
    home: Arc<LargeBuffers>,
}

impl LargeFrame {
    pub fn new(text: String, home: &Arc<LargeBuffers>) -> Self {
        Self {
            text: text.into_bytes(),
            home: Arc::clone(home),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.text.len()
    }

    /// Writes the frame to `io` as a client's masked text frame (RFC 6455 §5.2, §5.3), with a
    /// new random key. `io` must have nothing of another frame pending. If this future is
    /// dropped half-way, the socket is left mid-frame: it must not be used again.
    pub async fn write_to(mut self, io: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        let key = mask_key()?;
        let header = header(self.text.len(), key);
        mask(&mut self.text, key);
        let mut frame = header.as_slice().chain(self.text.as_slice());
        io.write_all_buf(&mut frame).await?;
        io.flush().await
    }
}

impl Drop for LargeFrame {
    fn drop(&mut self) {
        LargeBuffers::give_back(&self.home, std::mem::take(&mut self.text));
    }
}

impl std::fmt::Debug for LargeFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LargeFrame({} bytes)", self.text.len())
    }
}

/// A masking key from the system's random source (§10.3: unpredictable to the network).
fn mask_key() -> std::io::Result<[u8; 4]> {
    let mut key = [0u8; 4];
    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
    Ok(key)
}

/// The header of a final, masked text frame of `len` bytes, as tungstenite writes it.
fn header(len: usize, key: [u8; 4]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        opcode: OpCode::Data(Data::Text),
        mask: Some(key),
        ..FrameHeader::default()
    };
    let mut out = Vec::with_capacity(14);
    // Writing into a vector cannot fail.
    let _ = header.format(len as u64, &mut out);
    out
}

/// XORs `payload` with `key`, repeated (§5.3), eight bytes at a time.
fn mask(payload: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    let word = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = payload.chunks_exact_mut(8);
    for chunk in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) else {
            continue;
        };
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The rest begins at a multiple of eight: the key's first byte again.
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    use super::*;

    /// tungstenite's own frame for the same text and key.
    fn tungstenites(text: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut frame = Frame::message(text.to_vec(), OpCode::Data(Data::Text), true);
        frame.header_mut().mask = Some(key);
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    fn ours(text: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut out = header(text.len(), key);
        let mut masked = text.to_vec();
        mask(&mut masked, key);
        out.extend_from_slice(&masked);
        out
    }

    #[test]
    fn every_length_form_is_tungstenites() {
        // 7-bit lengths, 16-bit from 126, 64-bit from 65 536; and the masking's remainder at
        // every offset.
        for len in (0..40).chain([125, 126, 127, 65_535, 65_536, 65_541, 300_001]) {
            let text: Vec<u8> = (0..len).map(|i| b"{\"a\":\"xyz\"}"[i % 11]).collect();
            let key = [0x37, 0xfa, 0x21, 0x3d];
            assert_eq!(ours(&text, key), tungstenites(&text, key), "length {len}");
        }
    }

    #[tokio::test]
    async fn a_written_frame_is_the_frame_and_its_buffer_goes_home() {
        let home = Arc::new(LargeBuffers::default());
        let text = "{\"type\":\"response.create\"}".repeat(20_000);
        let frame = LargeFrame::new(
            {
                let mut buffer = String::from_utf8(home.take(text.len())).unwrap();
                buffer.push_str(&text);
                buffer
            },
            &home,
        );
        assert_eq!(frame.len(), text.len());
        let mut wire = Vec::new();
        frame.write_to(&mut wire).await.unwrap();
        // Unmasked with the key the header carries, it is the text.
        let (header, payload) = wire.split_at(wire.len() - text.len());
        assert_eq!(header[..2], [0x81, 0xff]);
        let key: [u8; 4] = header[10..14].try_into().unwrap();
        assert_eq!(wire, tungstenites(text.as_bytes(), key));
        let mut unmasked = payload.to_vec();
        mask(&mut unmasked, key);
        assert_eq!(unmasked, text.as_bytes());
        // The buffer is kept for the next large frame.
        assert_eq!(home.kept().len(), 1);
    }

    proptest! {
        #[test]
        fn any_text_and_key_frame_as_tungstenite_frames_them(
            text in proptest::collection::vec(any::<u8>(), 0..600),
            key in any::<[u8; 4]>(),
        ) {
            prop_assert_eq!(ours(&text, key), tungstenites(&text, key));
        }
    }
}
