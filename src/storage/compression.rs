//! Record batch compression codecs (Kafka's `compression.type`): the records section of a v2
//! batch, compressed with gzip, snappy (xerial framing), lz4 (frame format) or zstd.
//!
//! The codecs are kafka-protocol's (its `compression` features: flate2, snap, lz4, zstd); the
//! compressors with a level call the same crates directly. This module is the one place the broker calls them, so the cleaner (which reads keys
//! inside compressed batches and writes them back with the same codec) and the produce path
//! (recompression for a topic's `compression.type`) share one implementation.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

/// A batch's compression codec: attribute bits 0..2 of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Records stored as they are.
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy with xerial framing (id 2), as the Java client writes it.
    Snappy,
    /// lz4 frame format (id 3).
    Lz4,
    /// zstd (id 4).
    Zstd,
}

/// Errors of the codecs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The attributes name a codec id Kafka does not define.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(i16),
    /// The codec failed to compress or decompress (corrupt input).
    #[error("{codec:?} failed: {reason}")]
    Codec {
        /// Which codec.
        codec: Codec,
        /// What it said.
        reason: String,
    },
}

impl Codec {
    /// The codec of a batch with these attributes.
    pub fn from_attributes(attributes: i16) -> Result<Codec, CompressionError> {
        Codec::from_id(attributes & 0x07)
    }

    /// The codec with Kafka's id `id` (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn from_id(id: i16) -> Result<Codec, CompressionError> {
        Ok(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => return Err(CompressionError::UnknownCodec(other)),
        })
    }

    /// Kafka's id of the codec.
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// The codec named by a `compression.type` value (`producer` and `uncompressed` give `None`
    /// here: the caller decides what `producer` means).
    pub fn from_name(name: &str) -> Option<Codec> {
        Some(match name {
            "uncompressed" | "none" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            _ => return None,
        })
    }

    fn failed(self, e: anyhow::Error) -> CompressionError {
        CompressionError::Codec { codec: self, reason: format!("{e:#}") }
    }
}

/// Decompresses a batch's records section.
pub fn decompress(codec: Codec, data: &[u8]) -> Result<Bytes, CompressionError> {
    let mut input = Bytes::copy_from_slice(data);
    let copy = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(std::mem::take(b)) };
    match codec {
        Codec::None => Ok(input),
        Codec::Gzip => <Gzip as Decompressor<Bytes>>::decompress(&mut input, copy),
        Codec::Snappy => <Snappy as Decompressor<Bytes>>::decompress(&mut input, copy),
        Codec::Lz4 => <Lz4 as Decompressor<Bytes>>::decompress(&mut input, copy),
        Codec::Zstd => <Zstd as Decompressor<Bytes>>::decompress(&mut input, copy),
    }
    .map_err(|e| codec.failed(e))
}

/// Compresses a records section with `codec` at Kafka's default level for it.
pub fn compress(codec: Codec, data: &[u8]) -> Result<Bytes, CompressionError> {
    compress_at(codec, data, None)
}

/// Compresses a records section with `codec` at `level` (a topic's `compression.<codec>.level`,
/// validated against Kafka's ranges), or Kafka's default level for the codec: gzip -1 (zlib's
/// 6), lz4 9, zstd 3. Snappy has no level.
pub fn compress_at(codec: Codec, data: &[u8], level: Option<i32>) -> Result<Bytes, CompressionError> {
    use std::io::Write;
    let mut out = BytesMut::with_capacity(data.len() / 2 + 64);
    let written: anyhow::Result<()> = (|| {
        match codec {
            Codec::None => out.extend_from_slice(data),
            Codec::Gzip => {
                let level = match level.unwrap_or(-1) {
                    l @ 0..=9 => flate2::Compression::new(l as u32),
                    _ => flate2::Compression::default(),
                };
                let mut e = flate2::write::GzEncoder::new(bytes::BufMut::writer(&mut out), level);
                e.write_all(data)?;
                e.finish()?;
            }
            Codec::Snappy => {
                let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
                    b.extend_from_slice(data);
                    Ok(())
                };
                <Snappy as Compressor<BytesMut>>::compress(&mut out, fill)?;
            }
            Codec::Lz4 => {
                // Kafka's lz4 frames: independent blocks (as kafka-protocol writes them).
                let mut e = lz4::EncoderBuilder::new()
                    .level(level.unwrap_or(LZ4_DEFAULT_LEVEL).clamp(1, 17) as u32)
                    .block_mode(lz4::BlockMode::Independent)
                    .build(bytes::BufMut::writer(&mut out))?;
                e.write_all(data)?;
                e.finish().1?;
            }
            Codec::Zstd => zstd::stream::copy_encode(data, bytes::BufMut::writer(&mut out), level.unwrap_or(ZSTD_DEFAULT_LEVEL))?,
        }
        Ok(())
    })();
    written.map_err(|e| codec.failed(e))?;
    Ok(out.freeze())
}

/// Kafka's default `compression.lz4.level`.
const LZ4_DEFAULT_LEVEL: i32 = 9;
/// Kafka's default `compression.zstd.level`.
const ZSTD_DEFAULT_LEVEL: i32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = compress(codec, &data).unwrap();
            if codec != Codec::None {
                assert!(packed.len() < data.len() / 2, "{codec:?} compressed {} to {}", data.len(), packed.len());
            }
            assert_eq!(decompress(codec, &packed).unwrap().as_ref(), data.as_slice(), "{codec:?}");
            assert_eq!(Codec::from_id(codec.id()).unwrap(), codec);
        }
        assert!(matches!(Codec::from_id(5), Err(CompressionError::UnknownCodec(5))));
        assert!(decompress(Codec::Zstd, b"not zstd").is_err());
    }

    #[test]
    fn levels_change_the_output_and_every_level_reads_back() {
        // Text-like data: higher levels find more.
        let data: Vec<u8> = (0..40_000u32).flat_map(|i| format!("record-{} value-{} ", i % 997, (i * 7919) % 1013).into_bytes()).collect();
        for (codec, low, high) in [(Codec::Gzip, 1, 9), (Codec::Lz4, 1, 17), (Codec::Zstd, 1, 19)] {
            let fast = compress_at(codec, &data, Some(low)).unwrap();
            let small = compress_at(codec, &data, Some(high)).unwrap();
            assert!(small.len() < fast.len(), "{codec:?}: level {high} gave {} bytes, level {low} {}", small.len(), fast.len());
            for packed in [fast, small, compress_at(codec, &data, None).unwrap()] {
                assert_eq!(decompress(codec, &packed).unwrap().as_ref(), data.as_slice(), "{codec:?}");
            }
        }
        assert_eq!(compress_at(Codec::Zstd, &data, None).unwrap(), compress_at(Codec::Zstd, &data, Some(3)).unwrap(), "Kafka's default zstd level");
    }
}
