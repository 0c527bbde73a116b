//! File exporter: JSON lines (one span per line, see [`model`]) appended to a file whose size is
//! bounded. Past `max_bytes` the file is rotated (`path` -> `path.1` -> ... -> `path.N`, the
//! oldest removed); with `max_files: 0` nothing rotates and spans that no longer fit are dropped
//! and counted in `dropped_spans`. A line is never split across files.
pub mod config;
pub mod model;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::event::FaultEvent;
use crate::exporter::config::FileConfig;
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::model::SpanRecord;

/// Appends spans to a size-bounded file.
pub struct FileExporter {
    /// Name for logs and metric labels.
    name: String,
    /// File state, shared with the blocking writer task.
    inner: Arc<Mutex<Writer>>,
    /// Spans dropped at the size cap, counted in `dropped_spans`.
    at_cap: FaultEvent,
}

/// The open file and its rotation policy (all blocking I/O happens here).
struct Writer {
    /// The file written to.
    path: PathBuf,
    /// Rotation threshold in bytes.
    max_bytes: u64,
    /// Rotated files kept; 0 = hard cap.
    max_files: u32,
    /// Open handle, opened lazily (and again after a rotation).
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
}

impl FileExporter {
    /// An exporter for `cfg` (validated). The file is opened at the first batch, so a bad path
    /// also surfaces here: the parent directory must exist.
    pub fn new(name: &str, cfg: &FileConfig, telemetry: ExporterTelemetry) -> Result<Self, String> {
        let parent = cfg
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(format!(
                "path: directory `{}` does not exist",
                parent.display()
            ));
        }
        Ok(FileExporter {
            name: name.to_string(),
            inner: Arc::new(Mutex::new(Writer {
                path: cfg.path.clone(),
                max_bytes: cfg.max_bytes,
                max_files: cfg.max_files,
                file: None,
                size: 0,
            })),
            at_cap: FaultEvent::new(
                "file is at its size cap (max_files: 0); spans dropped",
                name,
                telemetry.dropped_spans.clone(),
            ),
        })
    }
}

impl Writer {
    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        // Just set above when it was missing.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file not open"))
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let _ = std::fs::remove_file(self.rotated(self.max_files));
        for n in (1..self.max_files).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.size = 0;
        Ok(())
    }

    /// Writes the lines, rotating as needed; returns how many were dropped for lack of room.
    fn write_lines(&mut self, lines: &[Vec<u8>]) -> std::io::Result<u64> {
        let mut dropped = 0;
        let mut chunk: Vec<u8> = Vec::new();
        self.open()?;
        for line in lines {
            let len = line.len() as u64 + 1;
            if self.size + chunk.len() as u64 + len > self.max_bytes {
                // Flush what fits, then make room (or drop when no rotation is allowed).
                if !chunk.is_empty() {
                    self.open()?.write_all(&chunk)?;
                    self.size += chunk.len() as u64;
                    chunk.clear();
                }
                if self.max_files == 0 || len > self.max_bytes {
                    dropped += 1;
                    continue;
                }
                if self.size > 0 {
                    self.rotate()?;
                    self.open()?;
                }
            }
            chunk.extend_from_slice(line);
            chunk.push(b'\n');
        }
        if !chunk.is_empty() {
            self.open()?.write_all(&chunk)?;
            self.size += chunk.len() as u64;
        }
        Ok(dropped)
    }
}

#[async_trait::async_trait]
impl Exporter for FileExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let lines: Vec<Vec<u8>> = batch.iter().map(model::line).collect();
        let inner = self.inner.clone();
        // File I/O blocks: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            let mut w = inner.lock().unwrap_or_else(|p| p.into_inner());
            let r = w.write_lines(&lines);
            if r.is_err() {
                // Reopen next time (the file may have been removed or the disk freed).
                w.file = None;
            }
            r.map_err(|e| format!("writing {}: {e}", w.path.display()))
        })
        .await
        .map_err(|e| ExportError::NonRetryable(format!("file writer task failed: {e}")))?;
        let dropped = result.map_err(ExportError::NonRetryable)?;
        if dropped > 0 {
            self.at_cap.report(dropped);
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = inner.lock().unwrap_or_else(|p| p.into_inner());
            match w.file.take() {
                Some(f) => f
                    .sync_all()
                    .map_err(|e| format!("syncing {}: {e}", w.path.display())),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| ExportError::NonRetryable(format!("file writer task failed: {e}")))?
        .map_err(ExportError::NonRetryable)
    }
}
