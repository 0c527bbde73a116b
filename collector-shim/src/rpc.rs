//! The `google.rpc` messages OTLP uses, written from their `.proto` definitions: `Status` (the
//! body of OTLP/HTTP error answers, and the `grpc-status-details-bin` trailer of gRPC ones)
//! and `RetryInfo` (the delay a server asks a client to wait before retrying), carried in
//! `Status.details` as `google.protobuf.Any`.
use std::time::Duration;

use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The reason, for people.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details (`RetryInfo`, ...).
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    /// `type.googleapis.com/<full message name>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The message, encoded.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    /// How long to wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds beyond them (0..1e9).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The type URL of `RetryInfo` inside an `Any`.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The delay of the first `RetryInfo` in an encoded `google.rpc.Status`, if any; a negative,
/// malformed or absent one is `None`.
pub fn retry_delay(status_details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(status_details).ok()?;
    let info = status
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE)?;
    let d = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_delay(seconds: i64, nanos: i32) -> Vec<u8> {
        RpcStatus {
            code: 14,
            message: "busy".into(),
            details: vec![Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration { seconds, nanos }),
                }
                .encode_to_vec(),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn retry_info_delays_are_read_and_bad_ones_ignored() {
        assert_eq!(
            retry_delay(&status_with_delay(2, 500_000_000)),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(retry_delay(&status_with_delay(-1, 0)), None);
        assert_eq!(retry_delay(&status_with_delay(1, -3)), None);
        assert_eq!(retry_delay(&status_with_delay(1, 1_000_000_000)), None);
        assert_eq!(
            retry_delay(&status_with_delay(i64::MAX, 999_999_999)),
            Some(Duration::new(i64::MAX as u64, 999_999_999))
        );
        assert_eq!(retry_delay(b"\xff\xff garbage"), None);
        assert_eq!(retry_delay(&[]), None);
    }
}
