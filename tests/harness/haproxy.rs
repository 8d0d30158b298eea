//! HAProxy (2.6 by default, 3.x with `scripts/test --all-haproxy`) in master-worker mode, in the foreground as our child, with its config (text in
//! haproxy_cfg.rs), default certificate and the default reload script.

use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::certs::default_cert_pem;
use super::haproxy_cfg::config;
use super::process::{Daemon, children_of, is_alive, poll_until, signal};
use super::tls;
use super::tools::tools;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where HAProxy's files live inside the sandbox: everything under `<dir>/haproxy/`.
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn cfg(&self) -> PathBuf {
        self.root.join("haproxy.cfg")
    }
    pub fn cert_dir(&self) -> PathBuf {
        self.root.join("certs")
    }
    pub fn master_sock(&self) -> PathBuf {
        self.root.join("master.sock")
    }
    pub fn admin_sock(&self) -> PathBuf {
        self.root.join("admin.sock")
    }
    pub fn reload_script(&self) -> PathBuf {
        self.root.join("reload.sh")
    }
    /// The certificate for clients without (or with an unknown) SNI, loaded before the cert dir.
    pub fn default_pem(&self) -> PathBuf {
        self.root.join("default.pem")
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub side: u16,
}

pub struct Haproxy {
    pub layout: Layout,
    master: Daemon,
}

impl Haproxy {
    /// Writes the config, default certificate, empty cert dir and reload script, then starts HAProxy.
    /// Call [`Haproxy::wait_ready`] before use.
    /// `bin` is the HAProxy to run.
    pub fn spawn(layout: Layout, ports: &Ports, reload_marker: &Path, logs: &Path, bin: &Path) -> Haproxy {
        write_files(&layout, reload_marker);
        let config = config(&layout, ports, &layout.default_pem());
        Haproxy::spawn_binary(layout, &config, logs, "haproxy", bin)
    }

    /// Writes `config` to `layout.cfg()` and starts HAProxy on it; its output goes to `<logs>/<name>.log`.
    /// Everything else the config refers to must exist already. Call [`Haproxy::wait_ready`] before use.
    pub fn spawn_with_config(layout: Layout, config: &str, logs: &Path, name: &'static str) -> Haproxy {
        Haproxy::spawn_binary(layout, config, logs, name, &tools().haproxy)
    }

    fn spawn_binary(layout: Layout, config: &str, logs: &Path, name: &'static str, bin: &Path) -> Haproxy {
        fs::write(layout.cfg(), config).expect("write haproxy.cfg");
        // -W without -D: the master stays in the foreground as our child, so we can always stop it.
        let mut cmd = Command::new(bin);
        cmd.arg("-W")
            .arg("-S")
            .arg(layout.master_sock())
            .arg("-f")
            .arg(layout.cfg())
            .arg("-p")
            .arg(layout.root.join("haproxy.pid"))
            .current_dir(&layout.root);
        let master = Daemon::spawn(name, cmd, logs);
        Haproxy { layout, master }
    }

    /// Waits until the master reports a worker and the TLS frontend completes a handshake.
    pub fn wait_ready(&mut self, https_port: u16) {
        self.wait_ready_at(tls::LOOPBACK, https_port);
    }

    /// [`Haproxy::wait_ready`] for a TLS frontend bound to `addr`.
    pub fn wait_ready_at(&mut self, addr: IpAddr, https_port: u16) {
        let sock = self.layout.master_sock();
        self.master
            .wait_ready("a worker on the master socket", READY_TIMEOUT, || {
                master_cli(&sock, "show proc").is_ok_and(|out| !parse_workers(&out).is_empty())
            });
        let config = tls::unverified_config();
        self.master
            .wait_ready("a TLS handshake on the https frontend", READY_TIMEOUT, || {
                tls::handshake_at(addr, https_port, tls::server_name("ready.invalid"), config.clone()).is_ok()
            });
    }

    /// Panics with `what` and the end of HAProxy's log.
    pub fn fail(&self, what: impl std::fmt::Display) -> ! {
        self.master.fail(what)
    }

    pub fn master_pid(&self) -> u32 {
        self.master.pid()
    }

    /// Current workers (not old ones still finishing) from `show proc`, retrying for a moment because
    /// the master socket refuses connections for ~0.1 s after each reload.
    pub fn worker_pids(&self) -> Vec<u32> {
        let sock = self.layout.master_sock();
        let mut last = Err(io::Error::other("never tried"));
        poll_until(Duration::from_secs(3), || {
            last = master_cli(&sock, "show proc");
            last.is_ok()
        });
        match last {
            Ok(out) => parse_workers(&out),
            Err(e) => self.master.fail(format_args!("show proc on {}: {e}", sock.display())),
        }
    }

    /// SIGTERM to the master, which stops and reaps its workers; SIGKILL for whatever is left.
    /// (Orphaned workers would be reparented to a PID 1 that may never reap them.)
    pub fn stop(&mut self) {
        let workers = children_of(self.master.pid());
        self.master.stop(Duration::from_secs(5));
        for pid in workers {
            if is_alive(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything a config from haproxy_cfg.rs refers to besides the sockets: the default certificate, the empty cert dir
/// and the default reload script (which notes each reload in `reload_marker`).
pub fn write_files(layout: &Layout, reload_marker: &Path) {
    fs::create_dir_all(layout.cert_dir()).expect("create haproxy cert dir");
    fs::write(layout.default_pem(), default_cert_pem()).expect("write default.pem");
    let script = layout.reload_script();
    fs::write(&script, reload_script(&layout.master_sock(), reload_marker)).expect("write reload.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod reload.sh");
}

/// Sends one command to a HAProxy CLI socket and returns the whole reply. The master socket keeps the
/// connection open until we half-close, so shut down our side after the command.
pub fn master_cli(sock: &Path, command: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(sock)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// PIDs of the workers that serve now, from `show proc`. In 2.6 the reply looks like:
/// ```text
/// #<PID>          <type>          <reloads>       <uptime>        <version>
/// 6918            master          1 [failed: 0]   0d00h00m04s     2.6.12-1+deb12u4
/// # workers
/// 6974            worker          0               0d00h00m01s     2.6.12-1+deb12u4
/// # old workers
/// ...
/// ```
/// Those are the `# workers` section. After a failed reload, though, 3.2+ counts the reload against the worker that
/// goes on serving: it moves to `# old workers` (`<reloads>` 1) and `# workers` stays empty. So when that section is
/// empty, the serving workers are the old ones started the fewest reloads ago; any older ones are still finishing.
fn parse_workers(show_proc: &str) -> Vec<u32> {
    let current = workers_in(show_proc, "# workers");
    if !current.is_empty() {
        return current.into_iter().map(|(pid, _)| pid).collect();
    }
    let old = workers_in(show_proc, "# old workers");
    let newest = old.iter().map(|&(_, reloads)| reloads).min();
    old.into_iter()
        .filter(|&(_, reloads)| Some(reloads) == newest)
        .map(|(pid, _)| pid)
        .collect()
}

/// `(pid, reloads)` of each worker line in the `show proc` section headed `heading`.
fn workers_in(show_proc: &str, heading: &str) -> Vec<(u32, u32)> {
    show_proc
        .lines()
        .skip_while(|line| line.trim() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let pid = fields.next()?.parse().ok()?;
            (fields.next()? == "worker").then_some(())?;
            Some((pid, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// The default reload command: note the reload in the marker file, ask the master to reload, and
/// return only once the master counts one more reload and runs a worker that was not there before.
/// Fails if the master counts a failed reload or nothing happens within 10 s.
///
/// With the argument `--uncounted` it writes no marker line: the harness reloads that way after editing
/// the config, so `Sandbox::reload_count` keeps counting only the reloads of the code under test.
fn reload_script(master_sock: &Path, marker: &Path) -> String {
    let (sock, marker, socat) = (master_sock.display(), marker.display(), tools().socat.display());
    format!(
        r#"#!/bin/sh
# Written by the hapcert test harness. Reloads HAProxy through its master socket and waits for the new worker.
set -u
# --uncounted: a reload by the harness itself (after it edits the config), which tests must not count.
[ "${{1:-}}" = --uncounted ] || echo "reload $(date +%s.%N)" >> '{marker}'
cli() {{ echo "$1" | '{socat}' -t 5 - 'UNIX-CONNECT:{sock}' 2>/dev/null; }}
# "<reloads> <failed>" from the master line of show proc: "<pid> master <reloads> [failed: <n>] ...".
counts() {{ cli 'show proc' | awk '$2 == "master" {{ sub(/\]/, "", $5); print $3, $5 }}'; }}
# The serving workers: the workers section, or when it is empty (3.2+ after a failed reload, see parse_workers)
# the old workers started the fewest reloads ago.
workers() {{ cli 'show proc' | awk '
    /^# workers/ {{ s = "cur"; next }} /^# old workers/ {{ s = "old"; next }} /^#/ {{ s = ""; next }}
    $2 != "worker" {{ next }}
    s == "cur" {{ cur = cur " " $1 }}
    s == "old" && (min == "" || $3 + 0 < min) {{ min = $3 + 0; old = "" }}
    s == "old" && $3 + 0 == min {{ old = old " " $1 }}
    END {{ print (cur != "" ? cur : old) }}'; }}
# The socket refuses connections for ~0.1 s after a reload, so every step retries (100 x 0.1 s).
retry() {{ i=0; until "$@"; do i=$((i + 1)); [ $i -lt 100 ] || return 1; sleep 0.1; done; }}
got_counts() {{ c=$(counts); [ -n "$c" ]; }}
retry got_counts || {{ echo "reload: master socket {sock} does not answer" >&2; exit 1; }}
set -- $c; reloads=$1; failed=$2
old=" $(echo $(workers)) "
retry cli reload || {{ echo "reload: could not send reload" >&2; exit 1; }}
done_reloading() {{
    c=$(counts); [ -n "$c" ] || return 1
    set -- $c
    [ "$1" -gt "$reloads" ] || return 1
    if [ "$2" -gt "$failed" ]; then echo "reload: HAProxy reports a failed reload (see its log)" >&2; exit 1; fi
    for pid in $(workers); do
        case "$old" in *" $pid "*) ;; *) return 0 ;; esac
    done
    return 1
}}
retry done_reloading || {{ echo "reload: no new HAProxy worker after 10 s" >&2; exit 1; }}
"#
    )
}

#[cfg(test)]
mod tests {
    // Named by path rather than imported: benches/e2e builds this module too, where #[test] functions are dropped and
    // an import would be unused.
    const HEAD: &str = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n";

    #[test]
    fn the_workers_section_when_it_lists_any() {
        // 2.6 and 3.0 keep the serving worker there after a failed reload (3.0's reply, with its `# programs`).
        let reply = format!(
            "{HEAD}29728           master          1 [failed: 1]   0d00h00m03s     3.0.11-1+deb13u4\n\
             # workers\n\
             29734           worker          1               0d00h00m03s     3.0.11-1+deb13u4\n\
             # programs\n\n"
        );
        assert_eq!(super::parse_workers(&reply), [29734]);
        let reply = format!(
            "{HEAD}6918            master          1 [failed: 0]   0d00h00m04s     2.6.12-1+deb12u4\n\
             # workers\n\
             6974            worker          0               0d00h00m01s     2.6.12-1+deb12u4\n\
             # old workers\n\
             6930            worker          1               0d00h00m04s     2.6.12-1+deb12u4\n\
             # programs\n\n"
        );
        assert_eq!(super::parse_workers(&reply), [6974]);
    }

    #[test]
    fn after_a_failed_reload_on_3_2_the_newest_old_workers() {
        // 3.2.26's reply after one failed reload.
        let reply = format!(
            "{HEAD}29089           master          1 [failed: 1]   0d00h00m02s     3.2.26-1       \n\
             # workers\n\
             # old workers\n\
             29125           worker          1               0d00h00m02s     3.2.26-1       \n\n"
        );
        assert_eq!(super::parse_workers(&reply), [29125]);
        // With a worker of an earlier successful reload still finishing its connections.
        let reply = format!(
            "{HEAD}29089           master          3 [failed: 1]   0d00h00m09s     3.2.26-1       \n\
             # workers\n\
             # old workers\n\
             29400           worker          1               0d00h00m02s     3.2.26-1       \n\
             29125           worker          3               0d00h00m09s     3.2.26-1       \n\n"
        );
        assert_eq!(super::parse_workers(&reply), [29400]);
    }

    #[test]
    fn none_before_the_first_worker_is_up() {
        let reply =
            format!("{HEAD}29089           master          0 [failed: 0]   0d00h00m00s     3.2.26-1\n# workers\n\n");
        assert!(super::parse_workers(&reply).is_empty());
    }
}
