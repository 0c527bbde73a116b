//! Stopping child processes: a signal by a safe system call (no `unsafe`, no `kill` command), a
//! bounded wait, then SIGKILL. Every launcher of this crate stops its process through here.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;

/// How often a stopping process is polled for its exit.
const POLL: Duration = Duration::from_millis(20);

/// Sends `signal` to process `pid`. Errors (the process is gone, the pid is not ours) are
/// returned as text.
pub fn signal_pid(pid: u32, signal: Signal) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let pid = rustix::process::Pid::from_raw(raw)
        .ok_or_else(|| format!("pid {pid} is not a process id"))?;
    rustix::process::kill_process(pid, signal).map_err(|e| format!("signal to {raw}: {e}"))
}

/// Sends `signal` to `child` unless it has already been reaped.
pub fn signal(child: &mut Child, signal: Signal) -> Result<(), String> {
    if let Ok(Some(_)) = child.try_wait() {
        return Err("the process has exited".into());
    }
    signal_pid(child.id(), signal)
}

/// Waits up to `timeout` for `child` to exit; `None` when it is still running.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => return None,
        }
    }
}

/// [`wait_for_exit`] without blocking the async runtime's thread.
pub async fn wait_for_exit_async(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            _ => return None,
        }
    }
}

/// SIGKILL and reap (no-op for a process already reaped).
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGTERM (what an orchestrator sends), a wait of at most `grace`, then SIGKILL. Returns the
/// exit status when the process exited on its own within `grace`, `None` when it was killed.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = signal_pid(child.id(), Signal::TERM);
    let status = wait_for_exit(child, grace);
    if status.is_none() {
        kill(child);
    }
    status
}

/// [`terminate`] without blocking the async runtime's thread.
pub async fn terminate_async(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = signal_pid(child.id(), Signal::TERM);
    let status = wait_for_exit_async(child, grace).await;
    if status.is_none() {
        kill(child);
    }
    status
}

/// Whether process `pid` is running (exists and is not a zombie), read from `/proc/<pid>/stat`.
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep(1) runs")
    }

    #[test]
    fn sigterm_stops_a_process_that_honours_it() {
        let mut child = sleeper();
        assert!(is_running(child.id()));
        let status = terminate(&mut child, Duration::from_secs(10)).expect("exits on SIGTERM");
        // sleep(1) dies of the signal: no exit code.
        assert_eq!(status.code(), None);
        assert!(!is_running(child.id()));
    }

    #[test]
    fn a_process_ignoring_sigterm_is_killed_after_the_grace() {
        // The shell ignores TERM (its short sleeps end on their own): only SIGKILL ends it.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.1; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh runs");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(terminate(&mut child, Duration::from_millis(300)), None);
        assert!(child.try_wait().expect("reaped").is_some());
    }

    #[test]
    fn signalling_an_exited_process_is_an_error_not_a_panic() {
        let mut child = Command::new("true").spawn().expect("true runs");
        let _ = child.wait();
        assert!(signal(&mut child, Signal::TERM).is_err());
    }
}
