//! Integration-test harness for hapcert: each test gets a [`Sandbox`] with its own temp dir, ports,
//! Pebble (ACME test CA) with its DNS helper, and HAProxy 2.6 in master-worker mode, all torn down on drop.
//!
//! Tools come from $HAPCERT_PEBBLE, $HAPCERT_CHALLTESTSRV and $HAPCERT_HAPROXY (set by scripts/test), else
//! PATH; a missing tool fails the test (see tools.rs). Set HAPCERT_KEEP_SANDBOX=1 to keep the sandbox
//! directories (logs in `<dir>/logs/`) after the tests.
#![allow(dead_code)] // each test module uses a different part of the harness

mod certbot;
mod certs;
mod hapcert;
mod haproxy;
mod haproxy_cfg;
mod haproxy_edit;
mod http;
mod keepalive_http;
mod load;
mod output;
mod pebble;
mod ports;
mod process;
mod second;
mod tls;
mod tools;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use tempfile::TempDir;

// Re-exported for the test modules; not every one uses every helper.
#[allow(unused_imports)]
pub use certbot::CertbotKey;
#[allow(unused_imports)]
pub use certs::{leaf_der_from_pem_file, san_dns_names, serial_hex, validity};
#[allow(unused_imports)]
pub use haproxy::Ports;
#[allow(unused_imports)]
pub use haproxy_cfg::{
    defaults_section, frontend_health_checked, frontend_redirect_shadowing, global_section, http_frontend_section,
    https_frontend_section,
};
#[allow(unused_imports)]
pub use http::{HttpResponse, http_get, https_get, try_http_get};
#[allow(unused_imports)]
pub use load::{Load, LoadOptions, LoadReport};
#[allow(unused_imports)]
pub use output::{assert_exit, show, stderr, stdout};
#[allow(unused_imports)]
pub use second::SecondHaproxy;

use haproxy::{Haproxy, Layout};
use pebble::Pebble;

/// Defaults: no nonce rejection, Pebble's default validity.
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// Percentage of good nonces Pebble rejects as badNonce (PEBBLE_WFE_NONCEREJECT).
    pub nonce_reject: u8,
    /// Pebble's certificateValidityPeriod in seconds; None keeps Pebble's default (5 years).
    pub cert_validity_secs: Option<u64>,
}

pub struct Sandbox {
    // Field order matters for drop: processes first (explicitly, in Drop), the directory last.
    haproxy: Haproxy,
    pebble: Pebble,
    ports: Ports,
    /// hapcert runs, numbering their logs.
    runs: AtomicUsize,
    /// The harness's own reloads, numbering their logs.
    harness_runs: AtomicUsize,
    /// Second HAProxies started, naming their directories.
    second_haproxies: AtomicUsize,
    dir: TempDir,
}

impl Sandbox {
    pub fn start() -> Sandbox {
        Sandbox::start_with(SandboxOptions::default())
    }

    pub fn start_with(opts: SandboxOptions) -> Sandbox {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("hapcert-it-")
            .tempdir()
            .expect("create temp dir");
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).expect("create logs dir");
        let ports = Ports {
            http: ports::free_port(),
            https: ports::free_port(),
            side: ports::free_port(),
        };

        // Spawn everything, then wait: Pebble generates its keys while HAProxy starts.
        let mut pebble = Pebble::spawn(dir.path(), &logs, ports.http, &opts);
        let layout = Layout {
            root: dir.path().join("haproxy"),
        };
        let marker = dir.path().join("reload-marker");
        let mut haproxy = Haproxy::spawn(layout, &ports, &marker, &logs);
        pebble.wait_ready();
        haproxy.wait_ready(ports.https);

        eprintln!("sandbox {} ready in {:?}", dir.path().display(), started.elapsed());
        Sandbox {
            haproxy,
            pebble,
            ports,
            runs: AtomicUsize::new(0),
            harness_runs: AtomicUsize::new(0),
            second_haproxies: AtomicUsize::new(0),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/haproxy/certs`, created empty; HAProxy loads it with `crt <dir>`.
    pub fn cert_dir(&self) -> PathBuf {
        self.haproxy.layout.cert_dir()
    }

    /// `<dir>/state`, not created: hapcert creates it itself.
    pub fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("hapcert.toml")
    }

    pub fn haproxy_cfg(&self) -> PathBuf {
        self.haproxy.layout.cfg()
    }

    /// HAProxy's master CLI socket (`show proc`, `reload`, `@1 <cmd>`).
    pub fn haproxy_master_sock(&self) -> PathBuf {
        self.haproxy.layout.master_sock()
    }

    /// HAProxy's admin stats socket (runtime API: `set ssl cert` etc.). Gone after
    /// [`Sandbox::remove_admin_socket`].
    pub fn haproxy_admin_sock(&self) -> PathBuf {
        self.haproxy.layout.admin_sock()
    }

    pub fn acme_directory(&self) -> String {
        self.pebble.directory_url()
    }

    /// PEM of the CA that signed Pebble's HTTPS listener certificate (for `[acme] ca_bundle`).
    pub fn pebble_listener_ca(&self) -> PathBuf {
        self.pebble.listener_ca.clone()
    }

    /// Free port for hapcert's HTTP-01 responder; HAProxy forwards the challenge path there.
    pub fn side_port(&self) -> u16 {
        self.ports.side
    }

    pub fn https_port(&self) -> u16 {
        self.ports.https
    }

    /// HAProxy's plain frontend, which is also Pebble's httpPort.
    pub fn http_port(&self) -> u16 {
        self.ports.http
    }

    /// The default reload command appends one line here per reload. Absent until the first reload.
    /// The harness's own reloads (`set_haproxy_cfg`, `reload_haproxy`, ...) add no line.
    pub fn reload_marker(&self) -> PathBuf {
        self.dir().join("reload-marker")
    }

    /// Number of lines in the reload marker (0 if it does not exist yet).
    pub fn reload_count(&self) -> usize {
        fs::read_to_string(self.reload_marker()).map_or(0, |text| text.lines().count())
    }

    /// Reloads HAProxy through the master socket and returns once a new worker runs (≤ 10 s); exits
    /// non-zero if the reload failed. Works with or without a shell (no quoting needed).
    pub fn reload_command(&self) -> String {
        format!("/bin/sh {}", self.haproxy.layout.reload_script().display())
    }

    pub fn check_command(&self) -> String {
        format!(
            "{} -c -q -f {}",
            tools::tools().haproxy.display(),
            self.haproxy_cfg().display()
        )
    }

    /// Leaf certificate HAProxy serves for `sni`, after verifying the chain against Pebble's issuing root
    /// only (and the name against the certificate). Panics, describing what was served, if that fails.
    pub fn served_leaf(&self, sni: &str) -> Vec<u8> {
        let config = tls::verifying_config(&self.pebble.root_pem);
        match tls::handshake(self.https_port(), tls::server_name(sni), config) {
            Ok(chain) => chain.first().expect("server sent no certificate").to_vec(),
            Err(e) => {
                let served = tls::handshake(self.https_port(), tls::server_name(sni), tls::unverified_config())
                    .ok()
                    .and_then(|chain| chain.first().map(|leaf| certs::describe(leaf)))
                    .unwrap_or_else(|| "nothing (handshake failed without verification too)".to_owned());
                panic!(
                    "HAProxy's certificate for SNI {sni:?} does not verify against Pebble's root: {e}\nserved: {served}"
                )
            }
        }
    }

    /// Leaf certificate HAProxy serves for `sni`, without any verification.
    pub fn served_leaf_unverified(&self, sni: &str) -> Vec<u8> {
        tls::leaf_unverified(self.https_port(), sni)
    }

    /// Pebble's issuing root (`/roots/0`), fetched when the sandbox started.
    pub fn pebble_root_pem(&self) -> String {
        self.pebble.root_pem.clone()
    }

    /// pebble-challtestsrv's management API, e.g. `http://127.0.0.1:<port>` + `/set-servfail` (POST, JSON).
    pub fn challtestsrv_management(&self) -> String {
        format!("http://{}", self.pebble.dns_mgmt)
    }

    /// Kills Pebble (the DNS helper stays); the directory URL then refuses connections.
    pub fn stop_pebble(&mut self) {
        self.pebble.stop_pebble();
    }

    pub fn haproxy_worker_pids(&self) -> Vec<u32> {
        self.haproxy.worker_pids()
    }

    /// Every process the sandbox runs: Pebble, its DNS helper, HAProxy's master and its children.
    pub fn process_ids(&self) -> Vec<u32> {
        let master = self.haproxy.master_pid();
        let mut pids = self.pebble.pids();
        pids.push(master);
        pids.extend(process::children_of(master));
        pids
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.haproxy.stop();
        self.pebble.stop();
        // For debugging a failing test: keep the directory (configs, logs, certificates).
        if std::env::var_os("HAPCERT_KEEP_SANDBOX").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("HAPCERT_KEEP_SANDBOX: kept {}", self.dir.path().display());
        }
    }
}

/// `st_mode & 0o7777` of `path` (following symlinks).
pub fn file_mode(path: &Path) -> u32 {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    meta.permissions().mode() & 0o7777
}

/// Whether `pid` still runs (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    process::is_alive(pid)
}
