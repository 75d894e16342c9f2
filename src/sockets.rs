//! Socket reads shared by the listener's connections (`net`) and the cluster's broker client:
//! a whole frame received into uninitialised memory.

use std::io;
use std::os::fd::RawFd;

use bytes::BytesMut;
use futures::AsyncReadExt;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameReadError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the socket in the middle of the frame.
    #[error("truncated frame: {got} of {size} bytes before end of stream")]
    Truncated {
        /// Declared size.
        size: usize,
        /// Bytes received.
        got: usize,
    },
}

/// Reads a frame of `size` bytes from the socket `fd`; `reader` reads the same socket through
/// glommio, for the waits. What the socket holds is received straight into the frame's unfilled
/// capacity: zero-filling a frame first, to read it through an initialised slice, was 5% of the
/// broker's samples at the acks=1 max rate (session 11) and 7.8% of a replicating broker's
/// (session 16, zeroing 1 MB requests and 3 MB fetch answers). When the socket runs dry, glommio
/// waits for more and reads at most [`WAIT_PIECE`] bytes, the only ones zeroed.
pub async fn recv_frame<R: futures::AsyncRead + Unpin>(fd: RawFd, reader: &mut R, size: usize) -> Result<BytesMut, FrameReadError> {
    let mut frame = BytesMut::with_capacity(size);
    while frame.len() < size {
        let want = size - frame.len();
        let spare = frame.spare_capacity_mut();
        // SAFETY: the kernel writes at most `want` bytes into `spare`, which has room for them;
        // MSG_DONTWAIT keeps the executor thread from blocking.
        let got = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
        if got > 0 {
            // SAFETY: the kernel initialised the first `got` bytes of the spare capacity.
            unsafe { frame.set_len(frame.len() + got as usize) };
            continue;
        }
        if got == 0 {
            return Err(FrameReadError::Truncated { size, got: frame.len() });
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                let at = frame.len();
                frame.resize(at + want.min(WAIT_PIECE), 0);
                let n = reader.read(&mut frame[at..]).await.map_err(FrameReadError::Io)?;
                if n == 0 {
                    return Err(FrameReadError::Truncated { size, got: at });
                }
                frame.truncate(at + n);
            }
            _ => return Err(FrameReadError::Io(error)),
        }
    }
    Ok(frame)
}

/// The most [`recv_frame`] reads through glommio after a wait; what follows is received raw.
const WAIT_PIECE: usize = 4096;
