//! The wire-format decoders and checkers written in Python (the project virtualenv of
//! `make tools`): a script run on bytes given on stdin, bounded in time, its output returned.
//! Independent decoders are the point: they read what our encoders wrote with other code.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::paths;

/// How long one decoder run may take before it is killed and reported.
pub const DECODER_TIMEOUT: Duration = Duration::from_secs(120);

/// A decoder script of the shim's tests, `collector-shim/tests/decoders/<name>`.
pub fn decoder(name: &str) -> PathBuf {
    paths::workspace_root()
        .join("collector-shim/tests/decoders")
        .join(name)
}

/// Runs the virtualenv's Python with `args` (a script and its arguments, or `-c` and code),
/// `input` on stdin; the whole output once it exits, an error when it cannot start or does not
/// exit within `timeout` (it is killed then).
pub fn run<I, S>(args: I, input: &[u8], timeout: Duration) -> Result<Output, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let python = paths::python();
    paths::require(&python, "make tools");
    let mut child = Command::new(&python)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e} (run `make tools`)", python.display()))?;
    // Stdin is written and the outputs are read on their own threads, so a script that writes
    // before it has read all its input cannot block us (or itself).
    let stdin = child.stdin.take().map(|mut pipe| {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);
    let status = crate::process::wait_for_exit(&mut child, timeout);
    let Some(status) = status else {
        crate::process::kill(&mut child);
        return Err(format!(
            "{} did not finish within {} s",
            python.display(),
            timeout.as_secs()
        ));
    };
    if let Some(t) = stdin {
        let _ = t.join();
    }
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Runs decoder script `name` (see [`decoder`]) on `input` with `args` and returns its stdout
/// parsed as JSON; the script's stderr is the error when it fails.
pub fn decode_json(name: &str, input: &[u8], args: &[&str]) -> Result<serde_json::Value, String> {
    let script = decoder(name);
    let mut argv: Vec<&OsStr> = vec![script.as_os_str()];
    argv.extend(args.iter().map(OsStr::new));
    let out = run(argv, input, DECODER_TIMEOUT)?;
    if !out.status.success() {
        return Err(format!(
            "{name} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{name} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
