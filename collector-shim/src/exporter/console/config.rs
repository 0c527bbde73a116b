//! The `type: console` entry.
use serde::Deserialize;

/// Console exporter: no settings besides an optional name.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Name in logs and metric labels; default `console`.
    #[serde(default)]
    pub name: Option<String>,
}
