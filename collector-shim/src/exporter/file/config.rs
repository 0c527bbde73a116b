//! The `type: file` entry.
use std::path::PathBuf;

use serde::Deserialize;

/// Default size at which the file exporter rotates (64 MiB).
pub const DEFAULT_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// File exporter: JSON lines with size-based rotation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Name in logs and metric labels; default `file`.
    #[serde(default)]
    pub name: Option<String>,
    /// File to append to (created if missing). Required.
    pub path: PathBuf,
    /// Size in bytes at which the file is rotated; default 64 MiB (67108864).
    #[serde(default = "default_file_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` .. `path.N`, oldest removed); default 1.
    /// With 0 the file is a hard cap: once full, further spans are dropped and counted.
    #[serde(default = "default_max_files")]
    pub max_files: u32,
}

impl FileConfig {
    /// An entry with default rotation.
    pub fn with_path(path: impl Into<PathBuf>) -> Self {
        FileConfig {
            name: None,
            path: path.into(),
            max_bytes: DEFAULT_FILE_MAX_BYTES,
            max_files: default_max_files(),
        }
    }

    /// Checks serde cannot make; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("path: must not be empty".into());
        }
        if self.max_bytes < 1024 {
            return Err(format!(
                "max_bytes: {} is too small (at least 1024 bytes)",
                self.max_bytes
            ));
        }
        if self.max_files > 100 {
            return Err(format!("max_files: {} is more than 100", self.max_files));
        }
        Ok(())
    }
}

fn default_file_max_bytes() -> u64 {
    DEFAULT_FILE_MAX_BYTES
}

fn default_max_files() -> u32 {
    1
}
