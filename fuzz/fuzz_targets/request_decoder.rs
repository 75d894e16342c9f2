//! Fuzzes the request decoder: any bytes as a request frame (after the size prefix) must give
//! a decoded request or a `ProtocolError`, never a panic. Produce record batches are split and
//! CRC-checked too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ringlog::protocol::decode_request(bytes::Bytes::copy_from_slice(data));
});
