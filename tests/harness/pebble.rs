//! Pebble (the ACME test CA) and pebble-challtestsrv (its DNS server, answering 127.0.0.1 for every name), or Pebble
//! alone, asking a DNS lab's resolver (bind.rs).

use std::env;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::SandboxOptions;
use super::certs::listener_pki;
use super::http::try_https_get;
use super::ports::free_port;
use super::process::Daemon;
use super::tools::{self, tools};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pebble's own default certificate lifetime (5 years), which the harness also gives the latest Pebble's default
/// profile: that Pebble ignores `certificateValidityPeriod` and would otherwise issue for 90 days.
const PEBBLE_DEFAULT_VALIDITY_SECS: u64 = 157_766_400;

/// Which Pebble a sandbox runs. Each is a Debian package (see scripts/lib/tools.sh), and each speaks a different
/// amount of ACME beyond RFC 8555.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PebbleVersion {
    /// Debian trixie's 2.6.0: ARI (`renewalInfo`, draft-ietf-acme-ari-03 path), no profiles.
    #[default]
    V2_6,
    /// Debian bookworm's 2.4.0: neither ARI nor profiles.
    V2_4,
    /// Debian sid's, the newest packaged (2.10.0 when written): ARI and profiles (`meta.profiles`).
    Latest,
}

impl PebbleVersion {
    pub fn label(self) -> &'static str {
        match self {
            PebbleVersion::V2_6 => "2.6",
            PebbleVersion::V2_4 => "2.4",
            PebbleVersion::Latest => "latest",
        }
    }

    pub fn debian_suite(self) -> &'static str {
        match self {
            PebbleVersion::V2_6 => "trixie",
            PebbleVersion::V2_4 => "bookworm",
            PebbleVersion::Latest => "sid",
        }
    }
}

pub struct Pebble {
    pub port: u16,
    pub mgmt_port: u16,
    /// challtestsrv's management API (plain HTTP), `127.0.0.1:<port>`; empty when Pebble asks a DNS lab instead.
    pub dns_mgmt: String,
    /// CA that signed the listener certificate of both Pebble ports (what clients must trust).
    pub listener_ca: PathBuf,
    /// Pebble's issuing root, fetched once when ready: Pebble makes a new one on every start.
    pub root_pem: String,
    pebble: Daemon,
    /// None when Pebble asks a DNS lab.
    challtestsrv: Option<Daemon>,
}

/// Where Pebble sends its DNS queries (the A records of HTTP-01 names, the TXT of DNS-01 challenges).
enum Dns<'a> {
    /// A pebble-challtestsrv of its own, answering this IPv4 address to every A query.
    Challtestsrv { default_ipv4: &'a str },
    /// A server that runs already (`127.0.0.1:PORT`).
    Server(&'a str),
}

impl Pebble {
    /// Spawns both processes. Call [`Pebble::wait_ready`] before use; in between, the caller can start
    /// other things while Pebble generates its keys.
    pub fn spawn(dir: &Path, logs: &Path, http_port: u16, opts: &SandboxOptions) -> Pebble {
        Pebble::spawn_answering(dir, logs, http_port, opts, "127.0.0.1")
    }

    /// [`Pebble::spawn`] with the DNS helper answering `default_ipv4` to every A query that no `/add-a` record matches:
    /// a fleet points unknown names at its first node.
    pub fn spawn_answering(
        dir: &Path,
        logs: &Path,
        http_port: u16,
        opts: &SandboxOptions,
        default_ipv4: &str,
    ) -> Pebble {
        Pebble::spawn_with(dir, logs, http_port, opts, Dns::Challtestsrv { default_ipv4 })
    }

    /// [`Pebble::spawn`] without a DNS helper: Pebble asks `dns_server` (`127.0.0.1:PORT`, a DNS lab's resolver).
    pub fn spawn_asking(dir: &Path, logs: &Path, http_port: u16, opts: &SandboxOptions, dns_server: &str) -> Pebble {
        Pebble::spawn_with(dir, logs, http_port, opts, Dns::Server(dns_server))
    }

    fn spawn_with(dir: &Path, logs: &Path, http_port: u16, opts: &SandboxOptions, dns: Dns) -> Pebble {
        let conf = dir.join("pebble");
        fs::create_dir_all(&conf).expect("create pebble dir");

        let (dns, dns_mgmt, challtestsrv) = match dns {
            Dns::Challtestsrv { default_ipv4 } => {
                let dns = format!("127.0.0.1:{}", free_port());
                let dns_mgmt = format!("127.0.0.1:{}", free_port());
                let mut cmd = Command::new(&tools().challtestsrv);
                // Only the DNS server. Every A query gets `default_ipv4` and AAAA gets nothing: otherwise Pebble tries
                // ::1 first, where nothing listens, and the validation fails.
                cmd.args(["-dns01", &dns, "-management", &dns_mgmt])
                    .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""])
                    .args(["-defaultIPv4", default_ipv4, "-defaultIPv6", ""]);
                (dns, dns_mgmt, Some(Daemon::spawn("challtestsrv", cmd, logs)))
            }
            Dns::Server(server) => (server.to_owned(), String::new(), None),
        };

        let (port, mgmt_port) = (free_port(), free_port());
        let (config, listener_ca) = write_config(&conf, port, mgmt_port, http_port, opts);
        let mut cmd = Command::new(tools::pebble(opts.pebble));
        cmd.arg("-config").arg(&config).args(["-strict", "-dnsserver", &dns]);
        // Start from a clean slate: no PEBBLE_* knob from the developer's shell leaks in.
        for (key, _) in env::vars_os() {
            if key.to_string_lossy().starts_with("PEBBLE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", opts.nonce_reject.to_string())
            .env("PEBBLE_AUTHZREUSE", "0");
        if opts.alternate_roots > 0 {
            cmd.env("PEBBLE_ALTERNATE_ROOTS", opts.alternate_roots.to_string());
        }
        let pebble = Daemon::spawn("pebble", cmd, logs);

        Pebble {
            port,
            mgmt_port,
            dns_mgmt,
            listener_ca,
            root_pem: String::new(),
            pebble,
            challtestsrv,
        }
    }

    /// Waits until the DNS helper and the ACME directory answer, then fetches the issuing root.
    pub fn wait_ready(&mut self) {
        let dns_mgmt = &self.dns_mgmt;
        if let Some(challtestsrv) = &mut self.challtestsrv {
            challtestsrv.wait_ready("management port", READY_TIMEOUT, || {
                TcpStream::connect(dns_mgmt).is_ok()
            });
        }

        let (dir_url, ca) = (self.directory_url(), &self.listener_ca);
        self.pebble.wait_ready("ACME directory", READY_TIMEOUT, || {
            try_https_get(&dir_url, ca).is_ok_and(|r| r.status == 200)
        });

        let root_url = self.management_url("/roots/0");
        let mut root = String::new();
        self.pebble
            .wait_ready("issuing root on the management port", READY_TIMEOUT, || {
                match try_https_get(&root_url, ca) {
                    Ok(r) if r.status == 200 => root = r.text(),
                    _ => return false,
                }
                true
            });
        if !root.starts_with("-----BEGIN CERTIFICATE-----") {
            self.pebble
                .fail(format_args!("{root_url} returned no PEM certificate: {root:?}"));
        }
        self.root_pem = root;
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// `https://127.0.0.1:<management port><path>`: roots, intermediates, certificate status.
    pub fn management_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.mgmt_port)
    }

    /// Pebble's combined stdout and stderr so far.
    pub fn log(&self) -> String {
        let path = self.pebble.log_path();
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pebble.pid()];
        pids.extend(self.challtestsrv.as_ref().map(Daemon::pid));
        pids
    }

    /// Kills Pebble only; the DNS server stays up. The ACME port then refuses connections.
    pub fn stop_pebble(&mut self) {
        self.pebble.stop(Duration::ZERO);
    }

    pub fn stop(&mut self) {
        self.pebble.stop(Duration::ZERO);
        if let Some(challtestsrv) = &mut self.challtestsrv {
            challtestsrv.stop(Duration::ZERO);
        }
    }
}

/// Writes the listener PKI and Pebble's JSON config into `conf`; returns (config path, listener CA path).
fn write_config(conf: &Path, port: u16, mgmt_port: u16, http_port: u16, opts: &SandboxOptions) -> (PathBuf, PathBuf) {
    let write = |name: &str, text: &str| {
        let path = conf.join(name);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    };
    let pki = listener_pki();
    let listener_ca = write("listener-ca.pem", &pki.ca_pem);
    let cert = write("listener.pem", &pki.cert_pem);
    let key = write("listener.key", &pki.key_pem);

    let mut settings = json!({
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
        "certificate": cert,
        "privateKey": key,
        // Pebble validates HTTP-01 against this port: HAProxy's plain frontend, which forwards the
        // challenge path to hapcert's side port, so tests exercise the real route.
        "httpPort": http_port,
        // Nothing listens here; hapcert does not do TLS-ALPN-01.
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    });
    if let Some(secs) = opts.cert_validity_secs {
        settings["certificateValidityPeriod"] = json!(secs);
    }
    if !opts.eab_keys.is_empty() {
        settings["externalAccountBindingRequired"] = json!(true);
        let keys: serde_json::Map<String, serde_json::Value> = opts
            .eab_keys
            .iter()
            .map(|(kid, key)| (kid.clone(), json!(key)))
            .collect();
        settings["externalAccountMACKeys"] = json!(keys);
    }
    if opts.pebble == PebbleVersion::Latest {
        settings["profiles"] = profiles(opts);
    } else {
        // Older Pebbles ignore the key without a word; a test that sets it expects profiles it would not get.
        assert!(
            opts.profiles.is_empty(),
            "SandboxOptions::profiles needs pebble: PebbleVersion::Latest; Pebble {} has no profiles",
            opts.pebble.label()
        );
    }
    // Every Pebble version reads its settings from a top-level "pebble" object.
    let config = write("pebble-config.json", &json!({ "pebble": settings }).to_string());
    (config, listener_ca)
}

/// The latest Pebble's `profiles`: a `default` one with the sandbox's certificate lifetime (the latest Pebble reads its
/// lifetimes only from profiles), plus `opts.profiles`, which may replace `default`.
fn profiles(opts: &SandboxOptions) -> serde_json::Value {
    let default_secs = opts.cert_validity_secs.unwrap_or(PEBBLE_DEFAULT_VALIDITY_SECS);
    let mut profiles = serde_json::Map::new();
    profiles.insert(
        "default".to_owned(),
        json!({ "description": "the harness's default profile", "validityPeriod": default_secs }),
    );
    for (name, secs) in &opts.profiles {
        profiles.insert(
            name.clone(),
            json!({ "description": format!("the harness's profile {name}"), "validityPeriod": secs }),
        );
    }
    json!(profiles)
}
