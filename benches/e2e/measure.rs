//! Running one command and reading what it cost: wall time and user+sys CPU from `wait4`'s rusage of that very child
//! (its descendants included), and peak RSS from GNU time, which runs the command as its own child. A child's
//! `ru_maxrss` starts from its parent's memory at fork or vfork, so `wait4` on a command started by the bench would
//! report at least the bench's own size; time is a small C program, and what it reports is its child's own.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// GNU time, from Debian's package `time` (scripts/bench installs it).
const GNU_TIME: &str = "/usr/bin/time";

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

/// Runs `cmd` to its end, in a process group of its own, its output going to `<stem>.stdout` and `<stem>.stderr`, and
/// returns its cost. A command that fails or outlives `timeout` (its whole group is then killed) panics with the tail
/// of its output: a benchmark of a broken run measures nothing.
pub fn run(cmd: Command, stem: &Path, timeout: Duration) -> Cost {
    let out = |ext: &str| {
        let path = stem.with_extension(ext);
        File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
    };
    let rss_file = stem.with_extension("maxrss");
    let mut timed = Command::new(GNU_TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    timed
        .stdin(Stdio::null())
        .stdout(out("stdout"))
        .stderr(out("stderr"))
        .process_group(0);

    let started = Instant::now();
    // Reaped by wait4 below, which std's `wait` cannot replace: it gives no rusage.
    #[allow(clippy::zombie_processes)]
    let child = timed.spawn().unwrap_or_else(|e| {
        panic!("cannot start {GNU_TIME} ({e}); scripts/bench installs it with apt-get install time")
    });
    let pid = child.id() as libc::pid_t;

    // A watchdog, because waiting has no timeout. It may only signal while the child is unreaped, so that the pid
    // cannot belong to another process yet: the exit is awaited without reaping (WNOWAIT), the watchdog stopped, and
    // only then is the child reaped.
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(timeout).is_err() {
            // SAFETY: kill(2) on the group of a child that is not reaped yet.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    // SAFETY: siginfo is plain data that waitid fills in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, leaving it a zombie.
    let waited = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
    let wall = started.elapsed();
    assert_eq!(waited, 0, "waitid on {cmd:?}: {}", std::io::Error::last_os_error());
    let _ = done.send(());
    let killed = watchdog.join().expect("watchdog thread");

    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child, which std's `Child` never waits on.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
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
    let max_rss_kib = fs::read_to_string(&rss_file)
        .ok()
        .and_then(|text| text.lines().last()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{GNU_TIME} left no peak RSS in {}", rss_file.display()));
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cost {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_kib,
    }
}
