//! Tests that change the sandbox's HAProxy config: read it, write it and reload, swap the plain
//! frontend, drop the admin socket, wait for a health-checked challenge server to go DOWN.
//!
//! The harness's own reloads run the reload script with `--uncounted`, so they add no line to the
//! reload marker: `Sandbox::reload_count` keeps counting only hapcert's reloads. Do not edit the config
//! while hapcert runs: its reload could pick up a half-written file.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Sandbox;
use super::haproxy::{Haproxy, Ports, master_cli};
use super::haproxy_cfg::{CHALLENGE_BACKEND, defaults_section, global_section, http_frontend_of};
use super::http::try_http_get;
use super::process::{poll_until, run_with_timeout};
use super::tools::tools;

/// The reload script gives up after 10 s per step; this only guards against a hung shell.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The first health check runs as the new worker starts (measured: DOWN within milliseconds of the
/// reload, not after `inter`); 5 s leaves room for a loaded machine.
const DOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Sandbox {
    /// The ports HAProxy's config uses, for the frontend functions of haproxy_cfg.rs.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// HAProxy's config file as it is now.
    pub fn haproxy_cfg_text(&self) -> String {
        let path = self.haproxy_cfg();
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Writes HAProxy's config file and reloads (uncounted, see the module docs). Panics with HAProxy's
    /// diagnostics (`haproxy -c`) and the end of its log if the reload fails; the old worker then keeps
    /// serving the old config.
    pub fn set_haproxy_cfg(&self, text: &str) {
        let path = self.haproxy_cfg();
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.reload_haproxy();
    }

    /// Reloads HAProxy through the reload script without counting it in the reload marker, and returns
    /// once a new worker runs. Panics as [`Sandbox::set_haproxy_cfg`] does.
    pub fn reload_haproxy(&self) {
        let run = self.harness_runs.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = self.dir().join("logs").join(format!("harness-reload-{run:03}"));
        uncounted_reload(&self.haproxy, &self.haproxy_cfg(), &stem, "");
    }

    /// The exact text of the plain-HTTP frontend and the challenge backend as the config file has them
    /// now, for `cfg.replace(&sb.http_frontend(), &frontend_redirect_shadowing(&sb.ports()))`.
    pub fn http_frontend(&self) -> String {
        let cfg = self.haproxy_cfg_text();
        match http_frontend_of(&cfg) {
            Some(section) => section.to_owned(),
            None => panic!("no `frontend plain` section in HAProxy's config:\n{cfg}"),
        }
    }

    /// Replaces the plain frontend and challenge backend with `section` (e.g. one of haproxy_cfg.rs's
    /// frontend functions) and reloads.
    pub fn set_http_frontend(&self, section: &str) {
        let cfg = self.haproxy_cfg_text();
        let Some(old) = http_frontend_of(&cfg) else {
            panic!("no `frontend plain` section in HAProxy's config:\n{cfg}");
        };
        self.set_haproxy_cfg(&cfg.replacen(old, section, 1));
    }

    /// Writes `option idle-close-on-response` into (or out of) the defaults section and reloads; does
    /// nothing if the config already is that way. The sandbox starts with it on.
    pub fn set_idle_close_on_response(&self, on: bool) {
        let cfg = self.haproxy_cfg_text();
        let (from, to) = (defaults_section(!on), defaults_section(on));
        if cfg.contains(&to) {
            return;
        }
        assert!(
            cfg.contains(&from),
            "the defaults section is not the harness's own, so the option cannot be switched:\n{cfg}"
        );
        self.set_haproxy_cfg(&cfg.replacen(&from, &to, 1));
    }

    /// Rewrites the global section without the admin stats socket and reloads: HAProxy then has no
    /// runtime API socket, only the master socket (whose `@1 <command>` still reaches the worker).
    pub fn remove_admin_socket(&self) {
        let admin = self.haproxy_admin_sock();
        let cfg = self.haproxy_cfg_text();
        let (from, to) = (global_section(Some(&admin)), global_section(None));
        assert!(
            cfg.contains(&from),
            "the global section is not the harness's own, so the admin socket cannot be removed:\n{cfg}"
        );
        self.set_haproxy_cfg(&cfg.replacen(&from, &to, 1));
        // HAProxy does not unlink a UNIX socket it stops listening on (checked on 2.6.12): the file stays
        // and refuses connections. A host configured without the socket has no file, so remove it.
        match fs::remove_file(&admin) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove stale {}: {e}", admin.display()),
        }
    }

    /// Waits (5 s at most) until HAProxy's current worker reports the challenge server DOWN, then checks
    /// that the challenge path gets HAProxy's own 503. For use after
    /// `set_http_frontend(&frontend_health_checked(&sb.ports()))` while nothing listens on the side port.
    /// Asks through the master socket, so it also works after [`Sandbox::remove_admin_socket`].
    pub fn wait_challenge_backend_down(&self) {
        let sock = self.haproxy_master_sock();
        let backend = CHALLENGE_BACKEND.trim_start_matches("backend ");
        let command = format!("@1 show servers state {backend}");
        let mut last = String::new();
        // The master socket refuses connections for ~0.1 s after a reload; polling covers that too.
        let down = poll_until(DOWN_TIMEOUT, || {
            last = master_cli(&sock, &command).unwrap_or_else(|e| format!("({e})"));
            challenge_server_op_state(&last, backend) == Some(SRV_ST_STOPPED)
        });
        if !down {
            self.haproxy.fail(format_args!(
                "challenge server not DOWN after {DOWN_TIMEOUT:?}; last `{command}`:\n{last}"
            ));
        }
        let url = format!(
            "http://127.0.0.1:{}/.well-known/acme-challenge/down-check",
            self.http_port()
        );
        match try_http_get(&url) {
            Ok(response) if response.status == 503 => {}
            other => self.haproxy.fail(format_args!(
                "challenge server is DOWN but GET {url} did not get a 503: {other:?}"
            )),
        }
    }
}

/// `srv_op_state` of a stopped server (HAProxy's SRV_ST_STOPPED); 2 is running.
const SRV_ST_STOPPED: u8 = 0;

/// `srv_op_state` of server `hapcert` in `backend` from `show servers state` (format 1):
/// ```text
/// 1
/// # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
/// 3 hapcert_challenge 1 hapcert 127.0.0.1 0 0 1 1 0 8 2 0 6 0 0 0 - 18081 - 0 0 - - 0
/// ```
fn challenge_server_op_state(state: &str, backend: &str) -> Option<u8> {
    state.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, be, _, "hapcert", _, op_state, ..] if *be == backend => op_state.parse().ok(),
            _ => None,
        }
    })
}

/// Runs `haproxy`'s reload script without counting it; on failure, fails with the script's output and `haproxy -c`'s
/// diagnostics of `cfg` (the script only says that it failed). `who` starts the message ("node 2: ", or nothing).
pub(super) fn uncounted_reload(haproxy: &Haproxy, cfg: &Path, stem: &Path, who: &str) {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(haproxy.layout.reload_script()).arg("--uncounted");
    let reload = run_with_timeout(cmd, stem, RELOAD_TIMEOUT);
    if reload.status.success() {
        return;
    }
    let check = Command::new(&tools().haproxy)
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .output()
        .map_or_else(
            |e| format!("(could not run haproxy -c: {e})"),
            |out| {
                format!(
                    "{}\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            },
        );
    haproxy.fail(format_args!(
        "{who}harness reload failed ({})\n--- reload script ---\n{}{}\n--- haproxy -c ---\n{check}",
        reload.status,
        String::from_utf8_lossy(&reload.stdout),
        String::from_utf8_lossy(&reload.stderr),
    ))
}
