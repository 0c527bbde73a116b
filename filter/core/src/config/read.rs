//! Typed reads of JSON values for configuration keys, each failing with the key named.

use super::ConfigError;
use crate::json::Json;

pub(super) fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// RFC 7230 token characters, lowercase only (Envoy lowercases header names).
pub(super) fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| !c.is_ascii_uppercase() && crate::propagation::baggage::is_tchar(c))
}

pub(super) fn invalid_type(key: &str, v: &Json, expected: &str) -> ConfigError {
    err(
        key,
        format!("invalid type: {}, expected {expected}", v.kind()),
    )
}

pub(super) fn unknown_variant(key: &str, got: &str, expected: &str) -> ConfigError {
    err(
        key,
        format!("unknown variant {got:?}, expected one of {expected}"),
    )
}

pub(super) fn string(key: &str, v: &Json) -> Result<String, ConfigError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        _ => Err(invalid_type(key, v, "a string")),
    }
}

pub(super) fn boolean(key: &str, v: &Json) -> Result<bool, ConfigError> {
    match v {
        Json::Bool(b) => Ok(*b),
        _ => Err(invalid_type(key, v, "a boolean")),
    }
}

pub(super) fn uint(key: &str, v: &Json) -> Result<u64, ConfigError> {
    match v {
        Json::Number(_) => v
            .as_u64()
            .ok_or_else(|| err(key, "invalid value: expected a non-negative integer")),
        _ => Err(invalid_type(key, v, "a non-negative integer")),
    }
}

pub(super) fn size(key: &str, v: &Json) -> Result<usize, ConfigError> {
    usize::try_from(uint(key, v)?).map_err(|_| err(key, "invalid value: too large"))
}

pub(super) fn strings(key: &str, v: &Json) -> Result<Vec<String>, ConfigError> {
    let Json::Array(items) = v else {
        return Err(invalid_type(key, v, "an array of strings"));
    };
    items
        .iter()
        .map(|i| match i {
            Json::String(s) => Ok(s.clone()),
            _ => Err(invalid_type(key, i, "an array of strings")),
        })
        .collect()
}
