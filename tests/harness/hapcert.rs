//! Running hapcert inside a sandbox, and the config file it reads.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Sandbox, process};

const HAPCERT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the base config of one node is made of: a sandbox's, or a fleet node's.
pub(super) struct BaseConfig {
    pub acme_directory: String,
    pub ca_bundle: PathBuf,
    pub trust_roots: PathBuf,
    /// The node's address: where hapcert listens, and where its HAProxy is reached.
    pub address: String,
    /// The side port, HAProxy's plain-HTTP port and its HTTPS port.
    pub ports: (u16, u16, u16),
    pub stateless: bool,
    pub cert_dir: PathBuf,
    pub check_command: String,
    pub reload_command: String,
    pub state_dir: PathBuf,
}

/// The `[acme]`, `[challenge]`, `[haproxy]` and `[state]` tables of `base`.
pub(super) fn base_config(base: &BaseConfig) -> String {
    let q = |s: &str| toml_string(s);
    let path = |p: &PathBuf| toml_string(&p.display().to_string());
    let (side, http, https) = base.ports;
    let address = &base.address;
    let mode = if base.stateless { "mode = \"stateless\"\n" } else { "" };
    format!(
        "\
[acme]
directory = {directory}
contact = [{contact}]
ca_bundle = {ca_bundle}
trust_roots = {trust_roots}

[challenge]
{mode}listen = {listen}
preflight_address = {preflight}

[haproxy]
cert_dir = {cert_dir}
check_command = {check}
reload_command = {reload}
verify = [{verify}]

[state]
dir = {state}
",
        directory = q(&base.acme_directory),
        contact = q("ops@example.com"),
        ca_bundle = path(&base.ca_bundle),
        trust_roots = path(&base.trust_roots),
        listen = q(&format!("{address}:{side}")),
        preflight = q(&format!("{address}:{http}")),
        verify = q(&format!("{address}:{https}")),
        cert_dir = path(&base.cert_dir),
        check = q(&base.check_command),
        reload = q(&base.reload_command),
        state = path(&base.state_dir),
    )
}

impl Sandbox {
    /// The `[acme]`, `[challenge]`, `[haproxy]` and `[state]` tables, ready to append `[[certificate]]`s to. `[acme]`
    /// trusts Pebble's listener (`ca_bundle`) and the root its certificates lead to (`trust_roots`).
    pub fn base_config(&self) -> String {
        base_config(&BaseConfig {
            acme_directory: self.acme_directory(),
            ca_bundle: self.pebble_listener_ca(),
            trust_roots: self.pebble_roots_file(),
            address: "127.0.0.1".into(),
            ports: (self.side_port(), self.http_port(), self.https_port()),
            stateless: false,
            cert_dir: self.cert_dir(),
            check_command: self.check_command(),
            reload_command: self.reload_command(),
            state_dir: self.state_dir(),
        })
    }

    /// The base config with the Runtime API (the admin socket) and the master socket configured, plus `certs`.
    pub fn runtime_config(&self, certs: &str) -> String {
        let sockets = format!(
            "[haproxy]\nruntime_api = \"{}\"\nmaster_socket = \"{}\"\n",
            self.haproxy_admin_sock().display(),
            self.haproxy_master_sock().display()
        );
        format!("{}\n{certs}", self.base_config().replacen("[haproxy]\n", &sockets, 1))
    }

    /// Writes hapcert.toml: the base config plus one `[[certificate]]` per (name, domains).
    pub fn write_config(&self, certs: &[(&str, &[&str])]) -> PathBuf {
        let mut text = self.base_config();
        for (name, domains) in certs {
            let domains: Vec<String> = domains.iter().map(|d| toml_string(d)).collect();
            text += &format!(
                "\n[[certificate]]\nname = {}\ndomains = [{}]\n",
                toml_string(name),
                domains.join(", ")
            );
        }
        self.write_config_text(&text)
    }

    pub fn write_config_text(&self, toml: &str) -> PathBuf {
        let path = self.config_path();
        fs::write(&path, toml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Runs hapcert with `--config <config_path>` prepended and waits (120 s at most: then it is killed
    /// and the test panics). Its output is also kept in `<dir>/logs/hapcert-<n>.{stdout,stderr}`.
    pub fn hapcert(&self, args: &[&str]) -> Output {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = self.dir().join("logs").join(format!("hapcert-{run:03}"));
        process::run_echoed("hapcert", args, self.hapcert_cmd(args), &stem, HAPCERT_TIMEOUT)
    }

    /// Runs hapcert with its stdout a pipe that nobody reads: the read end is closed before hapcert starts, so its
    /// first write to stdout fails with a broken pipe. Returns the exit status and what it wrote on stderr.
    pub fn hapcert_to_closed_pipe(&self, args: &[&str]) -> (ExitStatus, String) {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let stderr_path = self.dir().join("logs").join(format!("hapcert-{run:03}.stderr"));
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut cmd = self.hapcert_cmd(args);
        cmd.stdout(writer)
            .stderr(fs::File::create(&stderr_path).expect("the stderr file"));
        let mut child = cmd.spawn().expect("spawn hapcert");
        drop(cmd);
        let status = process::wait_with_timeout(&mut child, HAPCERT_TIMEOUT)
            .unwrap_or_else(|| panic!("hapcert {args:?} into a closed pipe did not finish; it was killed"));
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        eprintln!(
            "$ hapcert {} >closed-pipe\n{status}\n--- stderr ---\n{stderr}",
            args.join(" ")
        );
        (status, stderr)
    }

    /// Where this sandbox's daemon listens for commands by hand (`$HAPCERT_CONTROL`).
    pub fn control_socket(&self) -> PathBuf {
        self.dir().join("control.sock")
    }

    /// The same command, not started (stdin is null; stdout/stderr are inherited unless you set them).
    pub fn hapcert_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapcert"));
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("HAPCERT_CONFIG")
            // Each sandbox's daemon and commands meet on a socket of their own, never on the host's default.
            .env("HAPCERT_CONTROL", self.control_socket())
            .current_dir(self.dir())
            .stdin(Stdio::null());
        cmd
    }
}

/// A TOML basic string. serde_json's escaping is valid TOML for everything but a raw U+007F, which no
/// path or name here contains.
pub(super) fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}
