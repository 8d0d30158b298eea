//! Child processes that live as long as a sandbox, with their output in a log file, plus the few
//! POSIX bits (signals, /proc) that std does not offer.

use std::fmt::Display;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(25);

/// A long-running child whose stdout and stderr go to `<logs>/<name>.log`. Killed and reaped on drop.
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    pub fn spawn(name: &'static str, mut cmd: Command, logs: &Path) -> Daemon {
        let log = logs.join(format!("{name}.log"));
        let file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let file2 = file.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        Daemon {
            name,
            child,
            log,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `<logs>/<name>.log`: everything the process printed, on stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Panics with `what` and the end of this process's log.
    pub fn fail(&self, what: impl Display) -> ! {
        panic!(
            "{}: {what}\n--- last lines of {} (HAPCERT_KEEP_SANDBOX=1 keeps it) ---\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, 40)
        );
    }

    /// Polls `ready` until it returns true; panics if the process exits first or `timeout` passes.
    pub fn wait_ready(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                self.fail(format_args!("exited with {status} while waiting for {what}"));
            }
            if ready() {
                return;
            }
            if Instant::now() > deadline {
                self.fail(format_args!("{what} not ready after {timeout:?}"));
            }
            sleep(POLL);
        }
    }

    /// Sends SIGTERM and waits up to `grace` (zero: skip straight to SIGKILL), then SIGKILLs and reaps.
    /// Idempotent, and never panics (it runs in Drop, possibly while a test is unwinding).
    pub fn stop(&mut self, grace: Duration) {
        if self.exited.is_some() {
            return;
        }
        if !grace.is_zero() && signal(self.pid(), libc::SIGTERM) {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.exited = Some(status);
                    return;
                }
                sleep(POLL);
            }
        }
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// [`run_with_timeout`], then echoes `$ <program> <args>` and the output on stderr, which the test runner captures and
/// shows only when the test fails.
pub fn run_echoed(program: &str, args: &[&str], cmd: Command, stem: &Path, timeout: Duration) -> Output {
    let output = run_with_timeout(cmd, stem, timeout);
    eprintln!(
        "$ {program} {}\n{}\n--- stdout ---\n{}--- stderr ---\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `cmd` to completion with stdout/stderr captured through files `<stem>.stdout`/`<stem>.stderr`
/// (files rather than pipes: a grandchild that keeps a pipe open cannot hang us). On timeout the child
/// is killed and we panic with what it printed so far.
pub fn run_with_timeout(mut cmd: Command, stem: &Path, timeout: Duration) -> Output {
    let out_path = stem.with_extension("stdout");
    let err_path = stem.with_extension("stderr");
    let create = |p: &Path| File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    cmd.stdout(create(&out_path)).stderr(create(&err_path));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let Some(status) = wait_with_timeout(&mut child, timeout) else {
        panic!(
            "{cmd:?} did not finish within {timeout:?}; it was killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            log_tail(&out_path, 60),
            log_tail(&err_path, 60)
        );
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    }
}

/// Waits for `child` to exit; past `timeout` it is killed and reaped, and the answer is `None`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        sleep(POLL);
    }
}

/// Polls `probe` until it returns true or `timeout` passes; returns whether it succeeded.
pub fn poll_until(timeout: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(POLL);
    }
}

/// The last `lines` lines of a log file (lossy UTF-8), or a note that it could not be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Sends `sig` to `pid`; false if the process does not exist (or cannot be signalled).
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Sets the open-file limit (soft and hard) of the process `cmd` starts.
pub fn limit_open_files(cmd: &mut std::process::Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: between fork and exec the closure only calls setrlimit(2), which is async-signal-safe, on a value it owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Raises this process's soft open-file limit to at least `wanted`; panics, saying how to fix it, when the hard limit
/// is lower.
pub fn raise_own_open_files(wanted: u64) {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) and setrlimit(2) read and write only the struct passed, which lives on this stack.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit),
            0,
            "getrlimit: {}",
            std::io::Error::last_os_error()
        );
        if rlimit.rlim_cur >= wanted {
            return;
        }
        assert!(
            rlimit.rlim_max >= wanted,
            "this test needs {wanted} open files, and the hard limit is {}: raise it (ulimit -Hn {wanted} as root, or \
             LimitNOFILE= for a CI runner's service)",
            rlimit.rlim_max
        );
        rlimit.rlim_cur = wanted;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit),
            0,
            "setrlimit: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Whether `pid` is a live process (exists in /proc and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The state letter of /proc/<pid>/stat (`R`, `S`, `T` when stopped by a signal, `Z`...); None if there is no such
/// process.
pub fn state(pid: u32) -> Option<char> {
    proc_stat(pid).map(|(state, _)| state)
}

/// PIDs whose parent is `parent`, from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// (state, ppid) from /proc/<pid>/stat. The command name is in parentheses and may contain spaces,
/// so parse from the last ')'.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}
