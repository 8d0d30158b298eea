//! `hapcert daemon` inside a sandbox: started in the background with its output in `<dir>/logs/daemon-<n>.log`,
//! signalled, waited for, and killed on drop if a test left it running.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::Sandbox;
use super::process::{self, log_tail};

const POLL: Duration = Duration::from_millis(25);

pub struct HapcertDaemon {
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Sandbox {
    /// Starts `hapcert --config <config_path> [args...] daemon` (the args go before `daemon`: global options).
    pub fn start_daemon(&self, global_args: &[&str]) -> HapcertDaemon {
        self.spawn_daemon(global_args, None)
    }

    /// [`Sandbox::start_daemon`] with its open-file limit, soft and hard, set to `limit` (systemd's soft default is
    /// 1,024).
    pub fn start_daemon_with_fd_limit(&self, global_args: &[&str], limit: u64) -> HapcertDaemon {
        self.spawn_daemon(global_args, Some(limit))
    }

    fn spawn_daemon(&self, global_args: &[&str], fd_limit: Option<u64>) -> HapcertDaemon {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.dir().join("logs").join(format!("daemon-{run:03}.log"));
        let mut args: Vec<&str> = global_args.to_vec();
        args.push("daemon");
        let mut cmd = self.hapcert_cmd(&args);
        if let Some(limit) = fd_limit {
            process::limit_open_files(&mut cmd, limit);
        }
        HapcertDaemon::start(cmd, log)
    }
}

impl HapcertDaemon {
    /// Starts `cmd` (a hapcert command line ending in `daemon`) with stdout and stderr into a new file `log`.
    pub fn start(mut cmd: Command, log: PathBuf) -> HapcertDaemon {
        let file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        cmd.stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .stdin(Stdio::null())
            .env_remove("NOTIFY_SOCKET");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn hapcert daemon: {e}"));
        HapcertDaemon {
            child,
            log,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far, stdout and stderr together.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Panics with `what` and the end of the daemon's log.
    pub fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "hapcert daemon: {what}\n--- last lines of {} ---\n{}",
            self.log.display(),
            log_tail(&self.log, 80)
        );
    }

    /// Polls `ready` until it holds; panics, showing the log, if the daemon exits first or `timeout` passes.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(&self.log()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                self.fail(format_args!("exited with {status} while waiting for {what}"));
            }
            if Instant::now() > deadline {
                self.fail(format_args!("{what}: not within {timeout:?}"));
            }
            sleep(POLL);
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_for(&format!("log line {needle:?}"), timeout, |log| log.contains(needle));
    }

    pub fn signal(&self, signal: libc::c_int) {
        assert!(process::signal(self.pid(), signal), "the daemon is gone");
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the daemon to exit; panics, showing the log, if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return status;
            }
            if Instant::now() > deadline {
                self.fail(format_args!("still running {timeout:?} after it was told to stop"));
            }
            sleep(POLL);
        }
    }
}

impl Drop for HapcertDaemon {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
