//! gRPC over HTTP/2 by hand (no protoc on these machines): the `demo.v1.Greeter` messages as
//! prost derives, the 5-byte length-prefixed message framing, status codes and `grpc-message`
//! percent-encoding, as the gRPC over HTTP/2 protocol document defines them.
//!
//! The same definitions serve the demo service and the clients in the runner and the tests;
//! `demo/proto/greeter.proto` is the equivalent `.proto` for grpcurl and other tools.

use bytes::{BufMut, Bytes, BytesMut};

/// Fully-qualified service name (`package.Service`).
pub const SERVICE: &str = "demo.v1.Greeter";
/// Unary: one `HelloRequest` -> one `HelloReply`.
pub const SAY_HELLO: &str = "SayHello";
/// Server streaming: one `StreamRequest` -> `count` `HelloReply` messages.
pub const STREAM_GREETINGS: &str = "StreamGreetings";
/// Unary that always fails with `INTERNAL` and a message (a trailers-only response).
pub const FAIL: &str = "Fail";

/// Request of `SayHello` and `Fail`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// Response message of `SayHello` and `StreamGreetings`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Request of `StreamGreetings`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
    /// How many replies to stream (0 means 3; capped at 20).
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// gRPC status codes (the subset the demo uses, plus the ones errors map to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    Ok = 0,
    InvalidArgument = 3,
    NotFound = 5,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// The canonical upper-case name of a status code (`rpc.response.status_code` uses it); the
/// filter's table, so the demo services and the proxy name codes identically.
pub fn code_name(code: u32) -> &'static str {
    aetherflow_core::grpc::status_name(code)
}

/// Whether a status code makes a SERVER span an error (OpenTelemetry RPC conventions).
pub fn is_server_error(code: u32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// One length-prefixed message: compressed flag 0, 4-byte big-endian length, the bytes.
pub fn frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = message.encode(&mut out);
    out.freeze()
}

/// Splits a complete body into its messages. `Err` names what is malformed (a truncated
/// frame, or a compressed one: the demo negotiates no compression).
pub fn deframe(mut body: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return Err(format!("truncated frame prefix ({} bytes)", body.len()));
        }
        if body[0] != 0 {
            return Err("compressed message without negotiated grpc-encoding".to_owned());
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let rest = &body[5..];
        if rest.len() < len {
            return Err(format!(
                "frame announces {len} bytes, {} present",
                rest.len()
            ));
        }
        messages.push(Bytes::copy_from_slice(&rest[..len]));
        body = &rest[len..];
    }
    Ok(messages)
}

/// Percent-encodes a `grpc-message` value (everything outside printable ASCII, and `%`).
pub fn encode_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded `grpc-message`; malformed escapes are kept as they are.
pub fn decode_message(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn frames_round_trip() {
        let a = frame(&HelloReply {
            message: "hi".into(),
        });
        let b = frame(&HelloReply {
            message: String::new(),
        });
        let body = [a.as_ref(), b.as_ref()].concat();
        let messages = deframe(&body).expect("well-formed");
        assert_eq!(messages.len(), 2);
        assert_eq!(
            HelloReply::decode(messages[0].clone()).unwrap().message,
            "hi"
        );
        assert_eq!(messages[1].len(), 0);
    }

    #[test]
    fn malformed_frames_are_named() {
        assert!(deframe(&[0, 0, 0]).unwrap_err().contains("truncated"));
        assert!(deframe(&[0, 0, 0, 0, 9, 1])
            .unwrap_err()
            .contains("announces 9"));
        assert!(deframe(&[1, 0, 0, 0, 0])
            .unwrap_err()
            .contains("compressed"));
    }

    #[test]
    fn grpc_message_percent_encoding() {
        let text = "100% down: café";
        let encoded = encode_message(text);
        assert_eq!(encoded, "100%25 down: caf%C3%A9");
        assert_eq!(decode_message(&encoded), text);
        assert_eq!(decode_message("bad %zz end %"), "bad %zz end %");
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(Code::Internal as u32), "INTERNAL");
        assert_eq!(code_name(99), "UNKNOWN");
        assert!(is_server_error(13) && !is_server_error(5));
    }
}
