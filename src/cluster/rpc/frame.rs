//! The controller listener's framing: one request or reply per frame.
//!
//! ```text
//!  0        4                12     13
//!  +--------+----------------+------+---------------------------+
//!  | length | request id     | kind | body (serde_json)         |
//!  | u32 BE | u64 BE         | u8   | length - 9 bytes          |
//!  +--------+----------------+------+---------------------------+
//! ```
//!
//! `length` counts everything after itself (id, kind and body), so it is at least 9 and at
//! most [`MAX_FRAME_LEN`]. A reply carries its request's id, so a client that timed out and
//! reconnected can never take a stale reply for a new one.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame (after the length field) either side accepts: 64 MiB. A metadata
/// checkpoint, the biggest thing sent, is far smaller; a larger length means garbage.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// The bytes after the length field that every frame has: the request id and the kind.
const FRAME_HEADER_LEN: usize = 8 + 1;

/// What a frame's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A [`super::RaftRequest`], from a voter to another.
    RaftRequest = 1,
    /// A [`super::RaftResponse`].
    RaftResponse = 2,
    /// An [`super::AppRequest`], from a broker to the controller.
    AppRequest = 3,
    /// An [`super::AppResponse`].
    AppResponse = 4,
    /// The request was understood but could not be served (a stopped or failed Raft): the body
    /// is the reason, a JSON string.
    ErrorReply = 5,
}

impl FrameKind {
    /// The kind a byte on the wire names, if any.
    pub fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::RaftRequest),
            2 => Some(FrameKind::RaftResponse),
            3 => Some(FrameKind::AppRequest),
            4 => Some(FrameKind::AppResponse),
            5 => Some(FrameKind::ErrorReply),
            _ => None,
        }
    }
}

/// Why a frame could not be read, written or understood. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The socket failed or closed in the middle of a frame.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The length field is over [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes is over the {MAX_FRAME_LEN}-byte limit")]
    TooLarge {
        /// The length it claimed (or the encoded length, when sending).
        len: usize,
    },
    /// The length field is too short to hold the request id and kind.
    #[error("frame of {len} bytes is shorter than its {FRAME_HEADER_LEN}-byte header")]
    TooShort {
        /// The length it claimed.
        len: usize,
    },
    /// The kind byte names no [`FrameKind`].
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A kind that this side does not accept here (a reply sent to a server, say).
    #[error("unexpected frame kind {kind:?}")]
    UnexpectedKind {
        /// What came.
        kind: FrameKind,
    },
    /// A reply for another request than the one in flight.
    #[error("reply to request {got} while waiting for {expected}")]
    WrongRequestId {
        /// The id in flight.
        expected: u64,
        /// The id the reply carried.
        got: u64,
    },
    /// The body is not the JSON of what its kind says.
    #[error("undecodable body: {0}")]
    Body(#[from] serde_json::Error),
    /// A well-formed reply that answers another question (a vote answer to AppendEntries).
    #[error("a {got} answer to a {expected} request")]
    WrongAnswer {
        /// The request that was sent.
        expected: &'static str,
        /// The answer that came.
        got: &'static str,
    },
}

/// One request or reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Chosen by the client, echoed by the server.
    pub request_id: u64,
    /// What the body is.
    pub kind: FrameKind,
    /// serde_json bytes.
    pub body: Vec<u8>,
}

impl Frame {
    /// A frame whose body is `value` as JSON.
    pub fn encode<T: Serialize>(request_id: u64, kind: FrameKind, value: &T) -> Result<Frame, FrameError> {
        let body = serde_json::to_vec(value)?;
        let len = FRAME_HEADER_LEN + body.len();
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge { len });
        }
        Ok(Frame { request_id, kind, body })
    }

    /// The body as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The whole frame as it goes on the wire, length field included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = FRAME_HEADER_LEN + self.body.len();
        let mut bytes = Vec::with_capacity(4 + len);
        // `encode` and `read_frame` keep len under MAX_FRAME_LEN, which fits a u32.
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend_from_slice(&self.request_id.to_be_bytes());
        bytes.push(self.kind as u8);
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames; an end of stream inside
/// a frame is an error. The length is checked before the body is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut length = [0u8; 4];
    let mut filled = 0;
    while filled < length.len() {
        let n = reader.read(&mut length[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        filled += n;
    }
    let len = u32::from_be_bytes(length) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    if len < FRAME_HEADER_LEN {
        return Err(FrameError::TooShort { len });
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    reader.read_exact(&mut header).await?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[..8]);
    let request_id = u64::from_be_bytes(id);
    let kind = FrameKind::from_byte(header[8]).ok_or(FrameError::UnknownKind(header[8]))?;
    let mut body = vec![0u8; len - FRAME_HEADER_LEN];
    reader.read_exact(&mut body).await?;
    Ok(Some(Frame { request_id, kind, body }))
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &Frame) -> Result<(), FrameError> {
    writer.write_all(&frame.to_bytes()).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn read_all(bytes: Vec<u8>) -> Vec<Result<Option<Frame>, FrameError>> {
        let mut cursor = Cursor::new(bytes);
        let mut frames = Vec::new();
        loop {
            let next = block_on(read_frame(&mut cursor));
            let done = !matches!(next, Ok(Some(_)));
            frames.push(next);
            if done {
                return frames;
            }
        }
    }

    #[test]
    fn a_frame_round_trips_and_two_frames_read_back_in_order() {
        let first = Frame::encode(7, FrameKind::AppRequest, &vec!["a", "b"]).unwrap();
        let second = Frame::encode(u64::MAX, FrameKind::ErrorReply, &"raft stopped").unwrap();
        let mut bytes = first.to_bytes();
        bytes.extend(second.to_bytes());
        let frames = read_all(bytes);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].as_ref().unwrap().as_ref(), Some(&first));
        assert_eq!(frames[1].as_ref().unwrap().as_ref(), Some(&second));
        assert!(matches!(frames[2], Ok(None)), "a clean end between frames");
        let body: Vec<String> = first.decode().unwrap();
        assert_eq!(body, ["a", "b"]);
        let mut writer = Cursor::new(Vec::new());
        block_on(write_frame(&mut writer, &first)).unwrap();
        assert_eq!(writer.into_inner(), first.to_bytes());
    }

    #[test]
    fn garbage_is_an_error_never_a_panic_or_a_huge_allocation() {
        // A length over 64 MiB is refused before anything is allocated.
        let huge = read_all(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(matches!(huge[0], Err(FrameError::TooLarge { len }) if len == u32::MAX as usize));
        let just_over = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        assert!(matches!(read_all(just_over)[0], Err(FrameError::TooLarge { .. })));
        // A length that cannot hold the id and kind.
        assert!(matches!(read_all(vec![0, 0, 0, 3, 1, 2, 3])[0], Err(FrameError::TooShort { len: 3 })));
        // An unknown kind byte.
        let mut unknown = vec![0, 0, 0, 9];
        unknown.extend_from_slice(&[0; 8]);
        unknown.push(200);
        assert!(matches!(read_all(unknown)[0], Err(FrameError::UnknownKind(200))));
        // Cut off inside the length, the header and the body.
        for cut in [2, 7, 14] {
            let mut bytes = Frame::encode(1, FrameKind::RaftRequest, &"xyz").unwrap().to_bytes();
            bytes.truncate(cut);
            assert!(matches!(read_all(bytes)[0], Err(FrameError::Io(_))), "cut at {cut}");
        }
        // A well-framed body that is not JSON of the expected type.
        let frame = Frame { request_id: 1, kind: FrameKind::RaftRequest, body: b"\xff{not json".to_vec() };
        let read = read_all(frame.to_bytes()).remove(0).unwrap().unwrap();
        assert!(matches!(read.decode::<super::super::RaftRequest>(), Err(FrameError::Body(_))));
        // Random bytes: whatever comes out, it is an error or a frame, never a panic.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            for frame in read_all(bytes).into_iter().flatten().flatten() {
                assert!(frame.decode::<super::super::AppRequest>().is_err());
            }
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused_when_encoding() {
        let big = "a".repeat(MAX_FRAME_LEN);
        assert!(matches!(Frame::encode(1, FrameKind::RaftRequest, &big), Err(FrameError::TooLarge { .. })));
    }
}
