//! gRPC wire helpers: length-prefixed messages (gRPC over HTTP/2: 1 byte compressed flag, 4 bytes
//! big-endian length, then the message) and status code names.

use bytes::{BufMut, Bytes, BytesMut};

/// One length-prefixed, uncompressed gRPC message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// `count` messages of `size` bytes each, concatenated (a streaming body).
pub fn frames(count: usize, size: usize) -> Bytes {
    let mut out = BytesMut::new();
    for i in 0..count {
        out.put_slice(&frame(&vec![b'a' + (i % 26) as u8; size]));
    }
    out.freeze()
}

/// The canonical name of a gRPC status code, as the RPC semantic conventions record it.
pub fn code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}
