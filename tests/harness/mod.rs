//! Integration-test harness for hapcert: each test gets a [`Sandbox`] with its own temp dir, ports,
//! Pebble (ACME test CA) with its DNS helper, and HAProxy 2.6 in master-worker mode, all torn down on drop. With
//! `SandboxOptions::dns`, a lab of BIND 9 servers (bind.rs) replaces the DNS helper, for DNS-01.
//!
//! Tools come from $HAPCERT_PEBBLE, $HAPCERT_CHALLTESTSRV and $HAPCERT_HAPROXY (set by scripts/test), else
//! PATH; Pebble 2.4 and the latest Pebble from $HAPCERT_PEBBLE_2_4 and $HAPCERT_PEBBLE_LATEST, else target/tools. A
//! missing tool fails the test that needs it (see tools.rs). Set HAPCERT_KEEP_SANDBOX=1 to keep the sandbox
//! directories (logs in `<dir>/logs/`) after the tests.
#![allow(dead_code)] // each test module uses a different part of the harness

mod bind;
mod certbot;
mod certs;
mod etcd;
mod flaky;
mod fleet;
mod hapcert;
mod hapcert_daemon;
mod haproxy;
mod haproxy_cfg;
mod haproxy_edit;
mod hostile_ca;
mod http;
mod keepalive_http;
mod load;
mod monitoring;
mod output;
mod pebble;
mod ports;
mod process;
mod second;
mod second_pebble;
mod smtp_sink;
mod starttls_sink;
mod tls;
mod tls_backend;
pub mod tools;
mod webhook_sink;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use tempfile::TempDir;

// Re-exported for the test modules; not every one uses every helper.
#[allow(unused_imports)]
pub use bind::{DnsLab, DnsLabOptions, Secondary};
#[allow(unused_imports)]
pub use certbot::CertbotKey;
#[allow(unused_imports)]
pub use certs::{leaf_der_from_pem_file, san_dns_names, serial_hex, validity};
#[allow(unused_imports)]
pub use etcd::{EtcdCluster, EtcdTlsMember};
#[allow(unused_imports)]
pub use flaky::FlakyRelay;
#[allow(unused_imports)]
pub use fleet::{FLEET_PREFIX, FleetChallenge, FleetOptions, FleetSandbox};
#[allow(unused_imports)]
pub use hapcert_daemon::HapcertDaemon;
#[allow(unused_imports)]
pub use haproxy::Ports;
#[allow(unused_imports)]
pub use haproxy_cfg::{
    defaults_section, frontend_health_checked, frontend_redirect_shadowing, global_section, http_frontend_section,
    https_frontend_section,
};
#[allow(unused_imports)]
pub use hostile_ca::{CaMode, HostileCa};
#[allow(unused_imports)]
pub use http::{HttpResponse, http_get, https_get, try_http_get};
#[allow(unused_imports)]
pub use load::{Load, LoadOptions, LoadReport};
#[allow(unused_imports)]
pub use monitoring::{MonitorCa, MonitorCert, closed_port, rfc3339};
#[allow(unused_imports)]
pub use output::{assert_exit, show, stderr, stdout};
#[allow(unused_imports)]
pub use ports::free_port;
#[allow(unused_imports)]
pub use process::{poll_until, raise_own_open_files, run_echoed};
#[allow(unused_imports)]
pub use second::SecondHaproxy;
#[allow(unused_imports)]
pub use second_pebble::SecondPebble;
#[allow(unused_imports)]
pub use smtp_sink::{Mail, SmtpSink};
#[allow(unused_imports)]
pub use starttls_sink::{StartTlsSink, Upgrade};
#[allow(unused_imports)]
pub use tls_backend::OpensslServer;
#[allow(unused_imports)]
pub use webhook_sink::{ReceivedRequest, WebhookSink};

use haproxy::{Haproxy, Layout};
use pebble::Pebble;
pub use pebble::PebbleVersion;

/// Defaults: Pebble 2.6, no nonce rejection, Pebble's default validity, no External Account Binding, no profiles.
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// Which Pebble runs; 2.4 and the latest must have been fetched (scripts/test does).
    pub pebble: PebbleVersion,
    /// Percentage of good nonces Pebble rejects as badNonce (PEBBLE_WFE_NONCEREJECT).
    pub nonce_reject: u8,
    /// Certificate lifetime in seconds; None keeps Pebble's default (5 years). For the latest Pebble it goes into the
    /// `default` profile, since that Pebble ignores `certificateValidityPeriod`.
    pub cert_validity_secs: Option<u64>,
    /// (key id, HMAC key as base64url without padding). Non-empty: Pebble requires External Account Binding for every
    /// new account and accepts these keys.
    pub eab_keys: Vec<(String, String)>,
    /// (profile name, validityPeriod in seconds), offered in `meta.profiles` next to a `default` profile (which a name
    /// `default` here replaces). Only for `PebbleVersion::Latest`; the sandbox panics otherwise. Beware: with more
    /// than one profile, Pebble 2.10 picks one at random for an order that names none.
    pub profiles: Vec<(String, u64)>,
    /// Some: a BIND 9 lab (primary taking TSIG-signed updates, resolver, maybe a secondary) runs in the sandbox, and
    /// Pebble asks the lab's resolver instead of pebble-challtestsrv, which is then not started. See [`Sandbox::dns`].
    pub dns: Option<DnsLabOptions>,
    /// Roots beyond the first (PEBBLE_ALTERNATE_ROOTS): each issued certificate is then also offered with a chain to
    /// each of them, as `Link: rel="alternate"` of its download. Their PEMs: [`Sandbox::pebble_management_text`] of
    /// `/roots/N`.
    pub alternate_roots: u8,
    /// Some: this HAProxy binary (a 3.x tree's wrapper, say) runs instead of the tools' one, for a test that needs one
    /// version whatever the run's HAPCERT_HAPROXY is.
    pub haproxy: Option<PathBuf>,
}

pub struct Sandbox {
    // Field order matters for drop: processes first (explicitly, in Drop), the directory last.
    haproxy: Haproxy,
    pebble: Pebble,
    dns: Option<DnsLab>,
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

        // Spawn everything, then wait: Pebble generates its keys while HAProxy and the DNS lab start. The lab's ports
        // are picked first, since Pebble is told its resolver's address at start.
        let lab_ports = opts.dns.as_ref().map(bind::LabPorts::pick);
        let mut pebble = match &lab_ports {
            Some(lab) => Pebble::spawn_asking(dir.path(), &logs, ports.http, &opts, &lab.resolver()),
            None => Pebble::spawn(dir.path(), &logs, ports.http, &opts),
        };
        let layout = Layout {
            root: dir.path().join("haproxy"),
        };
        let marker = dir.path().join("reload-marker");
        let (mut haproxy, dns) = std::thread::scope(|scope| {
            let lab = opts.dns.as_ref().zip(lab_ports).map(|(lab_opts, lab_ports)| {
                let (lab_dir, logs) = (dir.path().join("dns"), &logs);
                scope.spawn(move || DnsLab::start_on(&lab_dir, logs, lab_opts, lab_ports))
            });
            let bin = opts.haproxy.clone().unwrap_or_else(|| tools::tools().haproxy.clone());
            let haproxy = Haproxy::spawn(layout, &ports, &marker, &logs, &bin);
            // A panic in the lab's start (named failed, say) goes on in this thread, with its message.
            let dns = lab.map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            (haproxy, dns)
        });
        pebble.wait_ready();
        // hapcert's `[acme] trust_roots`: the root Pebble's certificates lead to, new at every Pebble start.
        let roots = dir.path().join("pebble-roots.pem");
        fs::write(&roots, &pebble.root_pem).unwrap_or_else(|e| panic!("write {}: {e}", roots.display()));
        haproxy.wait_ready(ports.https);

        eprintln!("sandbox {} ready in {:?}", dir.path().display(), started.elapsed());
        Sandbox {
            haproxy,
            pebble,
            dns,
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

    /// Pebble's ACME port, for relays in front of it.
    pub fn pebble_port(&self) -> u16 {
        self.pebble.port
    }

    /// The ACME directory Pebble serves, parsed. Its keys tell the versions apart: `renewalInfo` (ARI) from 2.6 on,
    /// `meta.profiles` (name → description) from 2.7 on, and `meta.externalAccountRequired` always.
    pub fn directory(&self) -> serde_json::Value {
        let url = self.acme_directory();
        let response = https_get(&url, &self.pebble_listener_ca());
        assert_eq!(response.status, 200, "GET {url}: {}", response.text());
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {}", response.text()))
    }

    /// What Pebble knows about the certificate with this serial, from the management port's
    /// `/cert-status-by-serial/<hex>`. `serial_hex` is as [`serial_hex`] gives it (whole bytes); any case and leading
    /// zeros are fine. It is sent in Go's big.Int form (lower case, no leading zeros), the form of the `Serial` field;
    /// Pebble 2.4, 2.6 and 2.10 all parse the other forms too, and their logs print whole bytes ("Issued certificate
    /// serial 0706..."). The JSON, the same in all three:
    ///
    /// ```text
    /// {"Status": "Valid", "Serial": "70688332366d028", "Certificate": "-----BEGIN CERTIFICATE-----\n..."}
    /// {"Status": "Revoked", "Serial": "...", "Certificate": "...", "Reason": 4,
    ///  "RevokedAt": "2026-11-23 12:25:28.681190267 +0000 UTC"}
    /// ```
    ///
    /// `Reason` is the RFC 5280 CRLReason code the revocation request gave (1 keyCompromise, 4 superseded, ...), and
    /// `RevokedAt` is Go's `time.Time` string, not RFC 3339. Panics if Pebble does not know the serial (it answers 404).
    pub fn cert_status(&self, serial_hex: &str) -> serde_json::Value {
        let serial = pebble_serial(serial_hex);
        let url = self.pebble.management_url(&format!("/cert-status-by-serial/{serial}"));
        let response = https_get(&url, &self.pebble_listener_ca());
        assert_eq!(
            response.status, 200,
            "GET {url}: Pebble knows no certificate with serial {serial} (from {serial_hex:?})"
        );
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {}", response.text()))
    }

    /// Everything Pebble printed so far (it logs each request and each issued serial).
    pub fn pebble_log(&self) -> String {
        self.pebble.log()
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

    /// The serial (as [`serial_hex`] gives it) of the leaf HAProxy serves for `sni`, if a handshake that verifies it
    /// against Pebble's issuing root completes; None otherwise. Never panics: for polling until a certificate is in.
    pub fn served_serial(&self, sni: &str) -> Option<String> {
        let config = tls::verifying_config(&self.pebble.root_pem);
        let chain = tls::handshake(self.https_port(), tls::server_name(sni), config).ok()?;
        chain.first().map(|leaf| certs::serial_hex(leaf))
    }

    /// Leaf certificate HAProxy serves for `sni`, without any verification.
    pub fn served_leaf_unverified(&self, sni: &str) -> Vec<u8> {
        tls::leaf_unverified(self.https_port(), sni)
    }

    /// Pebble's issuing root (`/roots/0`), fetched when the sandbox started.
    /// Pebble's issuing root as a file: the base config's `[acme] trust_roots`.
    pub fn pebble_roots_file(&self) -> PathBuf {
        self.dir().join("pebble-roots.pem")
    }

    /// A GET on Pebble's management port (`/roots/1`, `/intermediates/0`, ...): its body, which must come with 200.
    pub fn pebble_management_text(&self, path: &str) -> String {
        let url = self.pebble.management_url(path);
        let response = https_get(&url, &self.pebble_listener_ca());
        assert_eq!(response.status, 200, "GET {url}: {}", response.text());
        response.text()
    }

    /// The whole chain HAProxy sends for `sni` (leaf first), without any verification.
    pub fn served_chain_unverified(&self, sni: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        tls::handshake(self.https_port(), tls::server_name(sni), tls::unverified_config())
            .unwrap_or_else(|e| panic!("TLS handshake with HAProxy for SNI {sni:?}: {e}"))
    }

    pub fn pebble_root_pem(&self) -> String {
        self.pebble.root_pem.clone()
    }

    /// pebble-challtestsrv's management API, e.g. `http://127.0.0.1:<port>` + `/set-servfail` (POST, JSON).
    pub fn challtestsrv_management(&self) -> String {
        assert!(
            self.dns.is_none(),
            "this sandbox runs a DNS lab (SandboxOptions::dns) instead of pebble-challtestsrv: use Sandbox::dns()"
        );
        format!("http://{}", self.pebble.dns_mgmt)
    }

    /// The sandbox's DNS lab: its primary takes the TSIG-signed updates, and Pebble asks its resolver.
    pub fn dns(&self) -> &DnsLab {
        self.dns
            .as_ref()
            .expect("this sandbox has no DNS lab: start it with SandboxOptions { dns: Some(..), .. }")
    }

    /// Kills Pebble (the DNS helper stays); the directory URL then refuses connections.
    pub fn stop_pebble(&mut self) {
        self.pebble.stop_pebble();
    }

    pub fn haproxy_worker_pids(&self) -> Vec<u32> {
        self.haproxy.worker_pids()
    }

    /// Every process the sandbox runs: Pebble, its DNS helper or the DNS lab, HAProxy's master and its children.
    pub fn process_ids(&self) -> Vec<u32> {
        let master = self.haproxy.master_pid();
        let mut pids = self.pebble.pids();
        pids.extend(self.dns.iter().flat_map(DnsLab::pids));
        pids.push(master);
        pids.extend(process::children_of(master));
        pids
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.haproxy.stop();
        self.pebble.stop();
        if let Some(dns) = &mut self.dns {
            dns.stop();
        }
        // For debugging a failing test: keep the directory (configs, logs, certificates).
        if std::env::var_os("HAPCERT_KEEP_SANDBOX").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("HAPCERT_KEEP_SANDBOX: kept {}", self.dir.path().display());
        }
    }
}

/// A serial in hex as Pebble prints it (Go's big.Int `%x`): lower case, no leading zeros.
fn pebble_serial(hex: &str) -> String {
    assert!(
        !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{hex:?} is not a hex serial"
    );
    let trimmed = hex.trim_start_matches('0').to_ascii_lowercase();
    if trimmed.is_empty() { "0".to_owned() } else { trimmed }
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
