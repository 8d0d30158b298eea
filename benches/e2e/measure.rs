//! Running one command and reading what it cost: wall time, user+sys CPU and peak RSS, from `wait4`'s rusage of that
//! very child (not RUSAGE_CHILDREN, which would mix in every earlier child of the bench).

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one timed piece of work cost. Several commands (a peer run once per certificate) add up: times are summed,
/// the peak RSS is the largest of them.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Cost {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_kib: u64,
}

impl Cost {
    pub fn add(&mut self, other: Cost) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.max_rss_kib = self.max_rss_kib.max(other.max_rss_kib);
    }
}

/// Runs `cmd` to its end, its output going to `<stem>.stdout` and `<stem>.stderr`, and returns its cost. A command that
/// fails or outlives `timeout` (it is then killed) panics with the tail of its output: a benchmark of a broken run
/// measures nothing.
pub fn run(mut cmd: Command, stem: &Path, timeout: Duration) -> Cost {
    let out = |ext: &str| {
        let path = stem.with_extension(ext);
        File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
    };
    cmd.stdout(out("stdout")).stderr(out("stderr"));
    let started = Instant::now();
    // Reaped by wait4 below, which std's `wait` cannot replace: it gives no rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;

    // A watchdog, because wait4 itself has no timeout.
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(timeout).is_err() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; std's `Child` is never waited on, so the pid cannot have been reused.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let _ = done.send(());
    let killed = watchdog.join().expect("watchdog thread");
    assert_eq!(reaped, pid, "wait4 on {cmd:?}: {}", std::io::Error::last_os_error());

    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if killed || !exited_ok {
        let tail = |ext: &str| {
            let text = fs::read_to_string(stem.with_extension(ext)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        panic!(
            "{cmd:?} {} (wait status {status:#x})\n--- stdout\n{}\n--- stderr\n{}",
            if killed {
                format!("was killed after {timeout:?}")
            } else {
                "failed".to_owned()
            },
            tail("stdout"),
            tail("stderr")
        );
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cost {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
    }
}
