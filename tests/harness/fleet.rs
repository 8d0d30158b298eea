//! A fleet of load balancers on one machine, for the fleet engine's tests: N HAProxy 2.6 nodes sharing one Pebble (with
//! its DNS helper) and one 3-member etcd cluster, all torn down on drop.
//!
//! Node i (1-based) is 127.0.0.(10+i): its HAProxy binds that address (not 0.0.0.0) on the same http and https ports as
//! every other node, and its hapcert listens there on the shared side port, so that the CA reaches a name through
//! exactly the node the DNS helper names for it ([`FleetSandbox::point`]; unknown names lead to node 1). Everything of
//! node i lives in `<dir>/node<i>/`: HAProxy's config, cert dir, sockets, reload script and marker, hapcert's config and
//! state dir, and `logs/` (HAProxy, every hapcert run, the daemons). Pebble's and the DNS helper's logs are in
//! `<dir>/logs/`. HAPCERT_KEEP_SANDBOX=1 keeps the directories, as for [`super::Sandbox`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tempfile::TempDir;

use super::etcd::EtcdCluster;
use super::hapcert::{BaseConfig, base_config, toml_string};
use super::hapcert_daemon::HapcertDaemon;
use super::haproxy::{Haproxy, Layout, Ports, write_files};
use super::haproxy_cfg::{
    defaults_section, global_section, http_frontend_of, http_frontend_section_at, https_frontend_section_at,
    stateless_frontend_section_at,
};
use super::haproxy_edit::uncounted_reload;
use super::pebble::Pebble;
use super::process::{self, run_with_timeout};
use super::tools::tools;
use super::{SandboxOptions, certs, ports, tls};

/// The `[fleet] prefix` of every node's config, and what [`FleetSandbox::etcd_dump`] reads.
pub const FLEET_PREFIX: &str = "/hapcert/it";
const HAPCERT_TIMEOUT: Duration = Duration::from_secs(120);
/// The reload script gives up after 10 s per step; this only guards against a hung shell.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
const DAEMON_EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_SERVED: Duration = Duration::from_millis(100);
/// What the stateless frontend answers with until [`FleetSandbox::set_stateless_thumbprint`]: no account exists yet
/// when the fleet starts, so no validation can succeed before that.
const NO_THUMBPRINT: &str = "thumbprint-not-set";

/// How the CA's HTTP-01 validation is answered on every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FleetChallenge {
    /// Node i's HAProxy forwards `/.well-known/acme-challenge/` to hapcert's responder on 127.0.0.(10+i):<side port>.
    #[default]
    SidePort,
    /// Node i's HAProxy answers `<token>.<thumbprint>` itself (`[challenge] mode = "stateless"`). The thumbprint is the
    /// ACME account's, known only once the account exists: see [`FleetSandbox::set_stateless_thumbprint`].
    Stateless,
}

#[derive(Clone, Debug, Default)]
pub struct FleetOptions {
    pub challenge: FleetChallenge,
    /// Pebble's settings, as for a single-node sandbox.
    pub sandbox: SandboxOptions,
}

struct Node {
    ip: Ipv4Addr,
    root: PathBuf,
    /// None while stopped by [`FleetSandbox::stop_haproxy`].
    haproxy: Option<Haproxy>,
    /// The last daemon started, kept after it stops so that its log stays readable.
    daemon: Option<HapcertDaemon>,
    /// hapcert runs and daemons on this node, numbering their logs.
    runs: AtomicUsize,
    /// HAProxy starts on this node (the first is 1), numbering the logs of the stopped ones.
    haproxy_starts: usize,
}

impl Node {
    fn layout(&self) -> Layout {
        Layout {
            root: self.root.clone(),
        }
    }

    fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

pub struct FleetSandbox {
    // Drop stops the processes explicitly (daemons, HAProxies, Pebble, etcd); the directory goes last.
    nodes: Vec<Node>,
    pebble: Pebble,
    etcd: EtcdCluster,
    ports: Ports,
    challenge: FleetChallenge,
    key_file: PathBuf,
    wrong_key_file: PathBuf,
    dir: TempDir,
}

impl FleetSandbox {
    pub fn start(nodes: usize) -> FleetSandbox {
        FleetSandbox::start_with(nodes, FleetOptions::default())
    }

    pub fn start_with(nodes: usize, opts: FleetOptions) -> FleetSandbox {
        assert!(
            (1..=200).contains(&nodes),
            "a fleet has 1 to 200 nodes (127.0.0.11 and up), not {nodes}"
        );
        let started = Instant::now();
        // etcd elects its leader meanwhile: it needs nothing else here.
        let etcd = thread::spawn(EtcdCluster::start);
        let dir = tempfile::Builder::new()
            .prefix("hapcert-fleet-")
            .tempdir()
            .expect("create temp dir");
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).expect("create logs dir");
        // Ports are picked on 127.0.0.1; a port free there is free on 127.0.0.x too unless something binds that
        // address alone, and only fleets do, each on ports no other sandbox of this binary is given.
        let ports = Ports {
            http: ports::free_port(),
            https: ports::free_port(),
            side: ports::free_port(),
        };

        let mut pebble = Pebble::spawn_answering(dir.path(), &logs, ports.http, &opts.sandbox, &node_ip(1).to_string());
        let mut fleet_nodes: Vec<Node> = (1..=nodes)
            .map(|i| {
                let root = dir.path().join(format!("node{i}"));
                fs::create_dir_all(root.join("logs")).expect("create the node's logs dir");
                Node {
                    ip: node_ip(i),
                    root,
                    haproxy: None,
                    daemon: None,
                    runs: AtomicUsize::new(0),
                    haproxy_starts: 0,
                }
            })
            .collect();
        for node in &mut fleet_nodes {
            let layout = node.layout();
            write_files(&layout, &node.root.join("reload-marker"));
            let config = haproxy_config(&layout, &node.ip.to_string(), &ports, opts.challenge);
            node.haproxy = Some(Haproxy::spawn_with_config(layout, &config, &node.logs(), "haproxy"));
            node.haproxy_starts = 1;
        }
        pebble.wait_ready();
        let roots = dir.path().join("pebble-roots.pem");
        fs::write(&roots, &pebble.root_pem).unwrap_or_else(|e| panic!("write {}: {e}", roots.display()));
        for node in &mut fleet_nodes {
            let ip = IpAddr::V4(node.ip);
            node.haproxy
                .as_mut()
                .expect("just started")
                .wait_ready_at(ip, ports.https);
        }
        let key_file = dir.path().join("fleet.key");
        let wrong_key_file = dir.path().join("wrong-fleet.key");
        keygen(&key_file, &logs.join("keygen"));
        keygen(&wrong_key_file, &logs.join("keygen-wrong"));
        let etcd = etcd.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));

        eprintln!(
            "fleet sandbox {} ({nodes} nodes, {:?}) ready in {:?}",
            dir.path().display(),
            opts.challenge,
            started.elapsed()
        );
        FleetSandbox {
            nodes: fleet_nodes,
            pebble,
            etcd,
            ports,
            challenge: opts.challenge,
            key_file,
            wrong_key_file,
            dir,
        }
    }

    fn node(&self, i: usize) -> &Node {
        assert!(
            (1..=self.nodes.len()).contains(&i),
            "node {i} does not exist: the fleet has nodes 1 to {}",
            self.nodes.len()
        );
        &self.nodes[i - 1]
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        self.node(i);
        &mut self.nodes[i - 1]
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// 1, 2, ..., N.
    pub fn all_nodes(&self) -> Vec<usize> {
        (1..=self.nodes.len()).collect()
    }

    pub fn challenge(&self) -> FleetChallenge {
        self.challenge
    }

    /// `127.0.0.(10+i)`.
    pub fn node_ip(&self, i: usize) -> String {
        self.node(i).ip.to_string()
    }

    /// `<dir>/node<i>`.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.node(i).root.clone()
    }

    /// `<dir>/node<i>/certs`, HAProxy's `crt` dir, created empty.
    pub fn cert_dir(&self, i: usize) -> PathBuf {
        self.node(i).layout().cert_dir()
    }

    /// `<dir>/node<i>/state`, not created: hapcert creates it itself.
    pub fn state_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("state")
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("hapcert.toml")
    }

    pub fn haproxy_cfg(&self, i: usize) -> PathBuf {
        self.node(i).layout().cfg()
    }

    pub fn haproxy_master_sock(&self, i: usize) -> PathBuf {
        self.node(i).layout().master_sock()
    }

    pub fn haproxy_admin_sock(&self, i: usize) -> PathBuf {
        self.node(i).layout().admin_sock()
    }

    /// The node's default reload command appends one line here per reload; the harness's own reloads add none.
    pub fn reload_marker(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("reload-marker")
    }

    pub fn reload_count(&self, i: usize) -> usize {
        fs::read_to_string(self.reload_marker(i)).map_or(0, |text| text.lines().count())
    }

    /// Reloads node i's HAProxy through its master socket and returns once a new worker runs, as for a sandbox.
    pub fn reload_command(&self, i: usize) -> String {
        format!("/bin/sh {}", self.node(i).layout().reload_script().display())
    }

    pub fn check_command(&self, i: usize) -> String {
        format!(
            "{} -c -q -f {}",
            tools().haproxy.display(),
            self.haproxy_cfg(i).display()
        )
    }

    /// The plain port every node binds, and Pebble's httpPort.
    pub fn http_port(&self) -> u16 {
        self.ports.http
    }

    pub fn https_port(&self) -> u16 {
        self.ports.https
    }

    /// hapcert's responder port, the same on every node's address.
    pub fn side_port(&self) -> u16 {
        self.ports.side
    }

    pub fn acme_directory(&self) -> String {
        self.pebble.directory_url()
    }

    pub fn pebble_listener_ca(&self) -> PathBuf {
        self.pebble.listener_ca.clone()
    }

    /// Pebble's issuing root as a file: every node's `[acme] trust_roots`.
    pub fn pebble_roots_file(&self) -> PathBuf {
        self.dir().join("pebble-roots.pem")
    }

    pub fn pebble_root_pem(&self) -> String {
        self.pebble.root_pem.clone()
    }

    pub fn pebble_log(&self) -> String {
        self.pebble.log()
    }

    /// How many certificates Pebble has issued so far: one per finalized order. Pebble 2.4, 2.6 and 2.10 log
    /// `Issued certificate serial <hex> for order <id>` once per certificate.
    pub fn finalized_orders(&self) -> usize {
        self.pebble_log().matches("Issued certificate serial ").count()
    }

    // ---- DNS ----

    /// Makes the DNS helper answer node i's address for `name` (an A record through the management API's `/add-a`),
    /// so that the CA validates `name` through that node. Names never pointed lead to node 1.
    pub fn point(&self, name: &str, node: usize) {
        let body = serde_json::json!({ "host": name, "addresses": [self.node_ip(node)] });
        self.challtestsrv_post("/add-a", &body);
    }

    /// Removes what [`FleetSandbox::point`] added for `name` (`/clear-a`): it leads to node 1 again.
    pub fn unpoint(&self, name: &str) {
        self.challtestsrv_post("/clear-a", &serde_json::json!({ "host": name }));
    }

    fn challtestsrv_post(&self, path: &str, body: &serde_json::Value) {
        let addr = &self.pebble.dns_mgmt;
        let body = body.to_string();
        let answer = (|| -> std::io::Result<String> {
            let mut sock = TcpStream::connect(addr)?;
            sock.set_read_timeout(Some(tls::IO_TIMEOUT))?;
            write!(
                sock,
                "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            let mut answer = String::new();
            sock.read_to_string(&mut answer)?;
            Ok(answer)
        })()
        .unwrap_or_else(|e| panic!("POST http://{addr}{path} {body} to the DNS helper: {e}"));
        let status = answer.lines().next().unwrap_or("");
        assert!(
            status.split_whitespace().nth(1) == Some("200"),
            "POST http://{addr}{path} {body}: the DNS helper did not answer 200:\n{answer}"
        );
    }

    // ---- keys and configs ----

    /// The fleet's key, made by `hapcert fleet keygen` when the fleet started; every node's `[fleet] key_file`.
    pub fn key_file(&self) -> PathBuf {
        self.key_file.clone()
    }

    /// Another fleet key, made the same way: for a node that must fail to open what the others sealed.
    pub fn wrong_key_file(&self) -> PathBuf {
        self.wrong_key_file.clone()
    }

    /// `[acme]`, `[challenge]`, `[haproxy]` and `[state]` for node i, as `Sandbox::base_config` has them but for that
    /// node's address, sockets, reload script and state dir (and `mode = "stateless"` in a stateless fleet).
    pub fn node_base_config(&self, i: usize) -> String {
        base_config(&BaseConfig {
            acme_directory: self.acme_directory(),
            ca_bundle: self.pebble_listener_ca(),
            trust_roots: self.pebble_roots_file(),
            address: self.node_ip(i),
            ports: (self.side_port(), self.http_port(), self.https_port()),
            stateless: self.challenge == FleetChallenge::Stateless,
            cert_dir: self.cert_dir(i),
            check_command: self.check_command(i),
            reload_command: self.reload_command(i),
            state_dir: self.state_dir(i),
        })
    }

    /// One `[[certificate]]` per (name, domains), each with `file = "<node i's cert dir>/<name>.pem"`.
    pub fn certificate_tables(&self, i: usize, certs: &[(&str, &[&str])]) -> String {
        let mut text = String::new();
        for (name, domains) in certs {
            let domains: Vec<String> = domains.iter().map(|d| toml_string(d)).collect();
            let file = self.cert_dir(i).join(format!("{name}.pem"));
            write!(
                text,
                "\n[[certificate]]\nname = {}\ndomains = [{}]\nfile = {}\n",
                toml_string(name),
                domains.join(", "),
                toml_string(&file.display().to_string())
            )
            .expect("write to a String");
        }
        text
    }

    /// Node i's `[fleet]` table: the 3 etcd members, [`FLEET_PREFIX`], `node<i>`, the fleet key, a 3 s lease, a 30 s
    /// convergence timeout, and its plain address as what it advertises.
    pub fn fleet_table(&self, i: usize) -> String {
        let etcd: Vec<String> = self.etcd.endpoints().iter().map(|e| toml_string(e)).collect();
        format!(
            "\n[fleet]\netcd = [{}]\nprefix = {}\nnode = {}\nkey_file = {}\nlease_ttl = \"3s\"\nconverge_timeout = \"30s\"\n\
             advertise = {}\n",
            etcd.join(", "),
            toml_string(FLEET_PREFIX),
            toml_string(&format!("node{i}")),
            toml_string(&self.key_file.display().to_string()),
            toml_string(&format!("{}:{}", self.node_ip(i), self.http_port())),
        )
    }

    /// Writes node i's hapcert.toml: base config, certificates, `[fleet]`.
    pub fn write_node_config(&self, i: usize, certs: &[(&str, &[&str])]) -> PathBuf {
        let text = self.node_base_config(i) + &self.certificate_tables(i, certs) + &self.fleet_table(i);
        self.write_node_config_text(i, &text)
    }

    /// [`FleetSandbox::write_node_config`] without `[fleet]`: node i runs as a single node.
    pub fn write_single_node_config(&self, i: usize, certs: &[(&str, &[&str])]) -> PathBuf {
        let text = self.node_base_config(i) + &self.certificate_tables(i, certs);
        self.write_node_config_text(i, &text)
    }

    pub fn write_node_config_text(&self, i: usize, text: &str) -> PathBuf {
        let path = self.config_path(i);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    pub fn node_config_text(&self, i: usize) -> String {
        let path = self.config_path(i);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    // ---- hapcert ----

    /// Runs hapcert on node i with `--config <node i's config>` prepended and waits (120 s at most: then it is killed
    /// and the test panics). Its output is also kept in `<dir>/node<i>/logs/hapcert-<n>.{stdout,stderr}`.
    pub fn hapcert(&self, i: usize, args: &[&str]) -> Output {
        let node = self.node(i);
        let run = node.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = node.logs().join(format!("hapcert-{run:03}"));
        let program = format!("hapcert (node {i})");
        process::run_echoed(&program, args, self.hapcert_cmd(i, args), &stem, HAPCERT_TIMEOUT)
    }

    /// The same command, not started.
    pub fn hapcert_cmd(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapcert"));
        cmd.arg("--config")
            .arg(self.config_path(i))
            .args(args)
            .env_remove("HAPCERT_CONFIG")
            // Each node's daemon and commands meet on a socket of their own, never on the host's default.
            .env("HAPCERT_CONTROL", self.node_dir(i).join("control.sock"))
            .current_dir(self.node_dir(i))
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `hapcert daemon` on node i, its output in `<dir>/node<i>/logs/daemon-<n>.log`. Panics if node i's
    /// previous daemon still runs.
    pub fn start_daemon(&mut self, i: usize) {
        let cmd = self.hapcert_cmd(i, &["daemon"]);
        let node = self.node_mut(i);
        if let Some(daemon) = node.daemon.as_mut() {
            assert!(
                !daemon.is_running(),
                "node {i}'s daemon (pid {}) still runs; stop it first",
                daemon.pid()
            );
        }
        let run = node.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let log = node.logs().join(format!("daemon-{run:03}.log"));
        node.daemon = Some(HapcertDaemon::start(cmd, log));
    }

    /// Node i's daemon (the last one started), to wait for its log or its exit.
    pub fn daemon(&mut self, i: usize) -> &mut HapcertDaemon {
        self.node_mut(i)
            .daemon
            .as_mut()
            .unwrap_or_else(|| panic!("no daemon was started on node {i}"))
    }

    pub fn daemon_pid(&mut self, i: usize) -> u32 {
        self.daemon(i).pid()
    }

    /// Everything node i's last daemon printed so far (stdout and stderr).
    pub fn daemon_log(&mut self, i: usize) -> String {
        self.daemon(i).log()
    }

    /// Waits until node i's daemon logs `needle`; panics with its log if it exits first or `timeout` passes.
    pub fn wait_daemon_log(&mut self, i: usize, needle: &str, timeout: Duration) {
        self.daemon(i).wait_for_log(needle, timeout);
    }

    /// SIGTERM (after a SIGCONT, in case it is paused), then waits for the exit (30 s at most).
    pub fn stop_daemon(&mut self, i: usize) -> ExitStatus {
        let daemon = self.daemon(i);
        daemon.signal(libc::SIGCONT);
        daemon.signal(libc::SIGTERM);
        daemon.wait_exit(DAEMON_EXIT_TIMEOUT)
    }

    /// SIGKILL, and reaps it: a crash, with no chance to release a lock or a lease.
    pub fn kill_daemon(&mut self, i: usize) -> ExitStatus {
        let daemon = self.daemon(i);
        daemon.signal(libc::SIGKILL);
        daemon.wait_exit(DAEMON_EXIT_TIMEOUT)
    }

    /// SIGSTOP, and returns once the kernel reports it stopped: the daemon keeps its sockets and believes it holds what
    /// it held, but does nothing (a GC pause, a frozen VM). Its etcd lease runs out after `lease_ttl`.
    pub fn pause_daemon(&mut self, i: usize) {
        self.signal_daemon_until(i, libc::SIGSTOP, "stopped", true);
    }

    /// SIGCONT, and returns once it runs again.
    pub fn resume_daemon(&mut self, i: usize) {
        self.signal_daemon_until(i, libc::SIGCONT, "running again", false);
    }

    /// Whether node i's daemon is stopped by a signal (state `T` in /proc).
    pub fn daemon_paused(&mut self, i: usize) -> bool {
        process::state(self.daemon_pid(i)) == Some('T')
    }

    /// Signals are delivered asynchronously: wait until the state shows it (5 s at most).
    fn signal_daemon_until(&mut self, i: usize, signal: libc::c_int, what: &str, paused: bool) {
        self.daemon(i).signal(signal);
        let pid = self.daemon_pid(i);
        if !process::poll_until(Duration::from_secs(5), || (process::state(pid) == Some('T')) == paused) {
            self.daemon(i).fail(format_args!(
                "node {i}: not {what} 5 s after signal {signal} (state {:?})",
                process::state(pid)
            ));
        }
    }

    /// `hapcert haproxy-config` on node i, whose config must be in stateless mode (it creates the ACME account if
    /// needed): the thumbprint of node i's account, which the answer it prints ends in.
    pub fn account_thumbprint(&self, i: usize) -> String {
        let bind = format!("{}:{}", self.node_ip(i), self.http_port());
        let out = self.hapcert(i, &["haproxy-config", "--bind", &bind]);
        let text = String::from_utf8_lossy(&out.stdout);
        let marker = "%[path,field(-1,/)].";
        let thumbprint = text
            .find(marker)
            .map(|start| &text[start + marker.len()..])
            .and_then(|rest| rest.split('"').next())
            .filter(|t| !t.is_empty());
        match (out.status.success(), thumbprint) {
            (true, Some(thumbprint)) => thumbprint.to_owned(),
            _ => panic!(
                "node {i}: `hapcert haproxy-config` ({}) printed no stateless answer with a thumbprint (is the node's \
                 config in stateless mode?):\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// In a stateless fleet: makes every node's HAProxy answer `<token>.<thumbprint>` and reloads the running ones
    /// (a stopped node gets the new config when it starts). The fleet must share one ACME account for this to be right
    /// on every node.
    pub fn set_stateless_thumbprint(&self, thumbprint: &str) {
        assert_eq!(
            self.challenge,
            FleetChallenge::Stateless,
            "set_stateless_thumbprint is for a fleet started with FleetChallenge::Stateless"
        );
        for i in self.all_nodes() {
            let cfg = self.haproxy_cfg_text(i);
            let Some(old) = http_frontend_of(&cfg) else {
                panic!("node {i}: no `frontend plain` section in HAProxy's config:\n{cfg}");
            };
            let new = stateless_frontend_section_at(&self.node_ip(i), self.http_port(), thumbprint);
            let cfg = cfg.replacen(old, &new, 1);
            if self.node(i).haproxy.is_some() {
                self.set_haproxy_cfg(i, &cfg);
            } else {
                fs::write(self.haproxy_cfg(i), cfg).expect("write haproxy.cfg");
            }
        }
    }

    // ---- HAProxy ----

    pub fn haproxy_cfg_text(&self, i: usize) -> String {
        let path = self.haproxy_cfg(i);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Writes node i's HAProxy config and reloads it (uncounted: no line in the reload marker).
    pub fn set_haproxy_cfg(&self, i: usize, text: &str) {
        let path = self.haproxy_cfg(i);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.reload_haproxy(i);
    }

    /// Reloads node i's HAProxy through its reload script without counting it, and returns once a new worker runs.
    /// Panics with the script's output, `haproxy -c`'s diagnostics and the end of HAProxy's log if it fails.
    pub fn reload_haproxy(&self, i: usize) {
        let node = self.node(i);
        let Some(haproxy) = node.haproxy.as_ref() else {
            panic!("node {i}'s HAProxy is stopped; start_haproxy({i}) first");
        };
        let run = node.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = node.logs().join(format!("harness-reload-{run:03}"));
        uncounted_reload(haproxy, &self.haproxy_cfg(i), &stem, &format!("node {i}: "));
    }

    /// Stops node i's HAProxy (SIGTERM to the master, SIGKILL for what is left): its address refuses connections.
    pub fn stop_haproxy(&mut self, i: usize) {
        let node = self.node_mut(i);
        let Some(mut haproxy) = node.haproxy.take() else {
            panic!("node {i}'s HAProxy is already stopped");
        };
        haproxy.stop();
    }

    /// Starts node i's HAProxy again on its config file as it is now, and waits until it serves. The stopped one's log
    /// is kept as `logs/haproxy-<n>.log`.
    pub fn start_haproxy(&mut self, i: usize) {
        let https = self.ports.https;
        let node = self.node_mut(i);
        assert!(node.haproxy.is_none(), "node {i}'s HAProxy already runs");
        let logs = node.logs();
        let old_log = logs.join(format!("haproxy-{}.log", node.haproxy_starts));
        fs::rename(logs.join("haproxy.log"), &old_log)
            .unwrap_or_else(|e| panic!("keep node {i}'s HAProxy log as {}: {e}", old_log.display()));
        let layout = node.layout();
        let config = fs::read_to_string(layout.cfg()).expect("read haproxy.cfg");
        let mut haproxy = Haproxy::spawn_with_config(layout, &config, &logs, "haproxy");
        haproxy.wait_ready_at(IpAddr::V4(node.ip), https);
        node.haproxy = Some(haproxy);
        node.haproxy_starts += 1;
    }

    fn running_haproxy(&self, i: usize) -> &Haproxy {
        self.node(i)
            .haproxy
            .as_ref()
            .unwrap_or_else(|| panic!("node {i}'s HAProxy is stopped"))
    }

    pub fn haproxy_master_pid(&self, i: usize) -> u32 {
        self.running_haproxy(i).master_pid()
    }

    /// Node i's current HAProxy workers, from `show proc` on its master socket.
    pub fn haproxy_worker_pids(&self, i: usize) -> Vec<u32> {
        self.running_haproxy(i).worker_pids()
    }

    // ---- what the nodes serve ----

    /// The serial (hex, whole bytes, as `serial_hex` gives it) of the leaf node i serves for `sni`, if it verifies
    /// against Pebble's root for that name. None when it does not (HAProxy's default certificate, say) or when the
    /// handshake fails (the node is down).
    pub fn served_serial(&self, i: usize, sni: &str) -> Option<String> {
        let config = tls::verifying_config(&self.pebble.root_pem);
        let chain = tls::handshake_at(self.node_addr(i), self.https_port(), tls::server_name(sni), config).ok()?;
        chain.first().map(|leaf| certs::serial_hex(leaf))
    }

    /// The leaf node i serves for `sni`, without verification.
    pub fn served_leaf_unverified(&self, i: usize, sni: &str) -> std::io::Result<Vec<u8>> {
        let chain = tls::handshake_at(
            self.node_addr(i),
            self.https_port(),
            tls::server_name(sni),
            tls::unverified_config(),
        )?;
        chain
            .first()
            .map(|leaf| leaf.to_vec())
            .ok_or_else(|| std::io::Error::other("the server sent no certificate"))
    }

    /// What node i serves for `sni`, in words: the verified serial, or why not, for panic messages.
    pub fn describe_served(&self, i: usize, sni: &str) -> String {
        if let Some(serial) = self.served_serial(i, sni) {
            return format!("serial {serial} (verifies)");
        }
        match self.served_leaf_unverified(i, sni) {
            Ok(leaf) => format!("does not verify: {}", certs::describe(&leaf)),
            Err(e) => format!("no handshake: {e}"),
        }
    }

    /// Polls every 100 ms until every node in `nodes` serves a certificate that verifies for every name in `names`;
    /// returns (node, name) → serial. Panics with a table of what each node serves if `timeout` passes first.
    pub fn wait_served(&self, nodes: &[usize], names: &[&str], timeout: Duration) -> HashMap<(usize, String), String> {
        self.wait_served_until(nodes, names, timeout, false)
    }

    /// [`FleetSandbox::wait_served`], and every node serves the same serial for each name.
    pub fn wait_same_serial(
        &self,
        nodes: &[usize],
        names: &[&str],
        timeout: Duration,
    ) -> HashMap<(usize, String), String> {
        self.wait_served_until(nodes, names, timeout, true)
    }

    fn wait_served_until(
        &self,
        nodes: &[usize],
        names: &[&str],
        timeout: Duration,
        same: bool,
    ) -> HashMap<(usize, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut served = HashMap::new();
            for &i in nodes {
                for &name in names {
                    if let Some(serial) = self.served_serial(i, name) {
                        served.insert((i, name.to_owned()), serial);
                    }
                }
            }
            let all = served.len() == nodes.len() * names.len();
            let agree = || {
                names.iter().all(|&name| {
                    let mut serials = nodes.iter().map(|&i| &served[&(i, name.to_owned())]);
                    let first = serials.next();
                    serials.all(|s| Some(s) == first)
                })
            };
            if all && (!same || agree()) {
                return served;
            }
            if Instant::now() > deadline {
                let wanted = if same {
                    "the same verifying certificate"
                } else {
                    "a verifying certificate"
                };
                panic!(
                    "not every node served {wanted} for every name within {timeout:?}:\n{}",
                    self.served_table(nodes, names)
                );
            }
            sleep(POLL_SERVED);
        }
    }

    /// One line per (node, name): what it serves.
    pub fn served_table(&self, nodes: &[usize], names: &[&str]) -> String {
        let mut table = String::new();
        for &i in nodes {
            for &name in names {
                writeln!(
                    table,
                    "  node {i} ({}) {name}: {}",
                    self.node_ip(i),
                    self.describe_served(i, name)
                )
                .expect("write to a String");
            }
        }
        table
    }

    fn node_addr(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.node(i).ip)
    }

    // ---- etcd ----

    pub fn etcd(&self) -> &EtcdCluster {
        &self.etcd
    }

    /// For stopping and starting members.
    pub fn etcd_mut(&mut self) -> &mut EtcdCluster {
        &mut self.etcd
    }

    /// Every key under [`FLEET_PREFIX`] with its value, as raw bytes (`etcdctl get --prefix -w json`, whose keys and
    /// values are base64), in key order.
    pub fn etcd_dump(&self) -> Vec<(String, Vec<u8>)> {
        let text = self.etcd.etcdctl(&["get", "--prefix", FLEET_PREFIX, "-w", "json"]);
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("etcdctl get -w json: not JSON ({e}): {text}"));
        let decode = |field: &serde_json::Value| {
            let b64 = field.as_str().unwrap_or("");
            BASE64
                .decode(b64)
                .unwrap_or_else(|e| panic!("etcdctl get -w json: {b64:?} is not base64 ({e}): {text}"))
        };
        // etcd leaves out empty fields: no `kvs` when nothing matches, no `value` for an empty value.
        let kvs = json["kvs"].as_array().cloned().unwrap_or_default();
        kvs.iter()
            .map(|kv| {
                let key = String::from_utf8(decode(&kv["key"]))
                    .unwrap_or_else(|e| panic!("etcd key is not UTF-8 ({e}): {kv}"));
                (key, decode(&kv["value"]))
            })
            .collect()
    }
}

impl Drop for FleetSandbox {
    fn drop(&mut self) {
        // hapcert first, so that no daemon sees its HAProxy or etcd vanish and starts reacting. A paused daemon dies
        // of SIGKILL too.
        for node in &mut self.nodes {
            node.daemon = None;
        }
        for node in &mut self.nodes {
            if let Some(mut haproxy) = node.haproxy.take() {
                haproxy.stop();
            }
        }
        self.pebble.stop();
        for member in 0..3 {
            self.etcd.stop(member);
        }
        if std::env::var_os("HAPCERT_KEEP_SANDBOX").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("HAPCERT_KEEP_SANDBOX: kept {}", self.dir.path().display());
        }
    }
}

/// `127.0.0.(10+i)` for node i (1-based).
pub fn node_ip(i: usize) -> Ipv4Addr {
    let last = u8::try_from(10 + i).unwrap_or_else(|_| panic!("node {i}: no address 127.0.0.{}", 10 + i));
    Ipv4Addr::new(127, 0, 0, last)
}

/// Node HAProxy's whole config: as a sandbox's, but bound to the node's address, and with the stateless answer instead
/// of the forwarding in a stateless fleet.
fn haproxy_config(layout: &Layout, ip: &str, ports: &Ports, challenge: FleetChallenge) -> String {
    let plain = match challenge {
        FleetChallenge::SidePort => http_frontend_section_at(ip, ports),
        FleetChallenge::Stateless => stateless_frontend_section_at(ip, ports.http, NO_THUMBPRINT),
    };
    [
        global_section(Some(&layout.admin_sock())),
        defaults_section(true),
        plain,
        https_frontend_section_at(ip, ports.https, &layout.default_pem(), &layout.cert_dir()),
    ]
    .join("\n")
}

/// `hapcert fleet keygen --out <out>`, which reads no config.
fn keygen(out: &Path, stem: &Path) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapcert"));
    cmd.args(["fleet", "keygen", "--out"])
        .arg(out)
        .env_remove("HAPCERT_CONFIG")
        .stdin(Stdio::null());
    let output = run_with_timeout(cmd, stem, HAPCERT_TIMEOUT);
    assert!(
        output.status.success() && out.is_file(),
        "hapcert fleet keygen --out {} ({}): expected a key file\n{}{}",
        out.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
