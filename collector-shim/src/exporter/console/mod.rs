//! Console exporter: readable trace trees on stdout (what `make demo` shows).
//!
//! Each batch is grouped by trace id and printed as one tree per trace; see [`tree`].
pub mod config;
pub mod tree;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use crate::exporter::{ExportError, Exporter};
use crate::model::SpanRecord;

/// Prints batches as trace trees to stdout (or any writer, for tests).
pub struct ConsoleExporter {
    /// Exporter name for logs and metric labels.
    name: String,
    /// Where the trees go; shared with the blocking writer task (a slow terminal or a full pipe
    /// must not stall an async worker).
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    /// ANSI colors: only when writing to a terminal.
    style: tree::Style,
}

impl ConsoleExporter {
    /// Writes to stdout, colored when stdout is a terminal.
    pub fn stdout(name: &str) -> Self {
        let color = std::io::stdout().is_terminal();
        ConsoleExporter {
            name: name.to_string(),
            out: Arc::new(Mutex::new(Box::new(std::io::stdout()))),
            style: tree::Style { color },
        }
    }

    /// Writes plain text to `out` (tests, or a log file).
    pub fn with_writer(name: &str, out: Box<dyn Write + Send>) -> Self {
        ConsoleExporter {
            name: name.to_string(),
            out: Arc::new(Mutex::new(out)),
            style: tree::Style { color: false },
        }
    }
}

#[async_trait::async_trait]
impl Exporter for ConsoleExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let text = tree::render(batch, self.style);
        let out = self.out.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock only means an earlier write panicked; the writer is still usable.
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        })
        .await
        .map_err(|e| ExportError::NonRetryable(format!("console writer task failed: {e}")))?
        .map_err(|e| ExportError::NonRetryable(format!("writing to console: {e}")))
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.flush()
            .map_err(|e| ExportError::NonRetryable(format!("flushing console: {e}")))
    }
}
