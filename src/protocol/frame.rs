//! Response frames as lists of chunks, so record bytes reach the socket without a copy.
//!
//! Most responses are one encoded buffer. A Fetch response also carries record batches: the
//! batch cache's `Bytes` and the `ReadResult` views of direct-I/O reads. The `kafka-protocol`
//! encoder would copy them into its output, so the fetch handler gives it a 16-byte placeholder
//! per partition instead ([`RecordsSplicer::placeholder`]), and [`RecordsSplicer::splice`] then
//! cuts the encoded frame at each placeholder and puts the real length prefix and the record
//! chunks in its place. Arrays in the Kafka protocol carry counts, not byte sizes, so only the
//! frame's size prefix changes.

use bytes::{BufMut, Bytes, BytesMut};
use glommio::io::ReadResult;

use crate::storage::reader::FileSlice;

/// One piece of a response frame.
pub enum Chunk {
    /// Encoded protocol bytes, or record batches from the batch cache.
    Bytes(Bytes),
    /// Record batches in a direct-I/O read buffer.
    Disk(ReadResult),
    /// Record batches left in their segment file, spliced to the socket by the kernel.
    File(FileSlice),
}

impl Chunk {
    /// Bytes in the chunk.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::Disk(r) => r.len(),
            Chunk::File(f) => f.len,
        }
    }

    /// Whether the chunk has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, for a chunk held in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Chunk::Bytes(b) => Some(b),
            Chunk::Disk(r) => Some(r),
            Chunk::File(_) => None,
        }
    }
}

/// A whole response frame (size prefix included), in order.
#[derive(Default)]
pub struct ResponseFrame {
    chunks: Vec<Chunk>,
    len: usize,
}

impl ResponseFrame {
    /// Bytes in the frame.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in the order they go on the wire.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    fn push(&mut self, chunk: Chunk) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
    }
}

impl From<BytesMut> for ResponseFrame {
    fn from(buf: BytesMut) -> Self {
        let mut frame = ResponseFrame::default();
        frame.push(Chunk::Bytes(buf.freeze()));
        frame
    }
}

const MARKER_LEN: usize = 16;
/// "RLZC": Ringlog zero-copy, between the nonce and the payload index.
const MARKER_TAG: u32 = 0x524c_5a43;

/// Record payloads that stand in for placeholders in an encoded Fetch response.
pub struct RecordsSplicer {
    /// Random per response, so a placeholder cannot be mistaken for other encoded bytes.
    nonce: [u8; 8],
    payloads: Vec<(Vec<Chunk>, usize)>,
}

impl Default for RecordsSplicer {
    fn default() -> Self {
        let id = uuid::Uuid::new_v4();
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&id.as_bytes()[..8]);
        RecordsSplicer { nonce, payloads: Vec::new() }
    }
}

impl RecordsSplicer {
    fn marker(&self, index: usize) -> [u8; MARKER_LEN] {
        let mut m = [0u8; MARKER_LEN];
        m[..8].copy_from_slice(&self.nonce);
        m[8..12].copy_from_slice(&MARKER_TAG.to_be_bytes());
        m[12..].copy_from_slice(&(index as u32).to_be_bytes());
        m
    }

    /// Registers `payload` (whole batches) and returns the placeholder to encode in its place.
    pub fn placeholder(&mut self, payload: Vec<Chunk>) -> Bytes {
        let len = payload.iter().map(|c| c.len()).sum();
        let marker = self.marker(self.payloads.len());
        self.payloads.push((payload, len));
        Bytes::copy_from_slice(&marker)
    }

    /// Replaces every placeholder in `encoded` (a size-prefixed frame) with its payload.
    /// `compact` is true for flexible versions, whose byte fields carry a varint length + 1;
    /// older versions carry an int32 length.
    pub fn splice(self, mut encoded: BytesMut, compact: bool) -> Result<ResponseFrame, String> {
        if self.payloads.is_empty() {
            return Ok(encoded.into());
        }
        let old_prefix = length_prefix(MARKER_LEN, compact);
        // (start of the old length prefix, end of the placeholder) for each payload, in order.
        let mut cuts = Vec::with_capacity(self.payloads.len());
        let mut from = 4;
        for i in 0..self.payloads.len() {
            let marker = self.marker(i);
            let at = encoded[from..]
                .windows(MARKER_LEN)
                .position(|w| w == marker)
                .map(|p| p + from)
                .ok_or_else(|| format!("records placeholder {i} not found in the encoded response"))?;
            let start = at.checked_sub(old_prefix.len()).filter(|s| encoded[*s..at] == old_prefix[..]);
            let start = start.ok_or_else(|| format!("records placeholder {i} has an unexpected length prefix"))?;
            cuts.push((start, at + MARKER_LEN));
            from = at + MARKER_LEN;
        }
        let prefixes: Vec<Bytes> = self.payloads.iter().map(|(_, len)| length_prefix(*len, compact)).collect();
        let added: usize = self.payloads.iter().zip(&prefixes).map(|((_, len), p)| len + p.len()).sum();
        let removed = cuts.len() * (old_prefix.len() + MARKER_LEN);
        let size = encoded.len() - 4 + added - removed;
        let size = i32::try_from(size).map_err(|_| format!("fetch response of {size} bytes is too large"))?;
        encoded[..4].copy_from_slice(&size.to_be_bytes());
        let encoded = encoded.freeze();
        let mut frame = ResponseFrame::default();
        let mut prev = 0;
        for (((start, end), (payload, _)), prefix) in cuts.into_iter().zip(self.payloads).zip(prefixes) {
            frame.push(Chunk::Bytes(encoded.slice(prev..start)));
            frame.push(Chunk::Bytes(prefix));
            payload.into_iter().for_each(|c| frame.push(c));
            prev = end;
        }
        frame.push(Chunk::Bytes(encoded.slice(prev..)));
        Ok(frame)
    }
}

/// The length prefix of a non-null `bytes`/`records` field.
fn length_prefix(len: usize, compact: bool) -> Bytes {
    let mut buf = BytesMut::with_capacity(5);
    if compact {
        let mut v = len as u64 + 1;
        while v >= 0x80 {
            buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        buf.put_u8(v as u8);
    } else {
        buf.put_i32(len as i32);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::Decodable;

    fn flatten(frame: &ResponseFrame) -> Vec<u8> {
        frame.chunks().iter().flat_map(|c| c.in_memory().map(<[u8]>::to_vec).unwrap_or_default()).collect()
    }

    /// A spliced frame decodes to exactly what the codec would have encoded with the records
    /// inline, for an old (int32 lengths) and a flexible (varint lengths) version.
    #[test]
    fn spliced_frame_matches_the_inline_encoding() {
        let payloads: Vec<Vec<u8>> = vec![vec![7u8; 300], vec![], vec![9u8; 70_000]];
        for version in [4i16, 11, 12, 16] {
            let response = |records: Vec<Bytes>| {
                let parts = records
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| PartitionData::default().with_partition_index(i as i32).with_records(Some(r)))
                    .collect();
                let topic = FetchableTopicResponse::default().with_partitions(parts);
                FetchResponse::default().with_responses(vec![topic])
            };
            let inline = response(payloads.iter().map(|p| Bytes::copy_from_slice(p)).collect());
            let expected = crate::protocol::frame_response(7, 0, &inline, version).unwrap();

            let mut splicer = RecordsSplicer::default();
            let placeholders = payloads
                .iter()
                .map(|p| {
                    let chunks = p.chunks(1000).map(|c| Chunk::Bytes(Bytes::copy_from_slice(c))).collect();
                    splicer.placeholder(chunks)
                })
                .collect();
            let encoded = crate::protocol::frame_response(7, 0, &response(placeholders), version).unwrap();
            let frame = splicer.splice(encoded, version >= 12).unwrap();
            let bytes = flatten(&frame);
            assert_eq!(bytes, expected.to_vec(), "v{version}");
            assert_eq!(frame.len(), bytes.len());
            let mut body = Bytes::from(bytes).slice(8..);
            let decoded = FetchResponse::decode(&mut body, version).unwrap();
            assert_eq!(decoded.responses[0].partitions[2].records.as_ref().unwrap().len(), 70_000);
        }
    }
}
