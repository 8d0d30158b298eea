//! Running hapcert inside a sandbox, and the config file it reads.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Sandbox, process};

const HAPCERT_TIMEOUT: Duration = Duration::from_secs(120);

impl Sandbox {
    /// The `[acme]`, `[challenge]`, `[haproxy]` and `[state]` tables, ready to append `[[certificate]]`s to. `[acme]`
    /// trusts Pebble's listener (`ca_bundle`) and the root its certificates lead to (`trust_roots`).
    pub fn base_config(&self) -> String {
        let q = |s: &str| toml_string(s);
        let path = |p: PathBuf| toml_string(&p.display().to_string());
        format!(
            "\
[acme]
directory = {directory}
contact = [{contact}]
ca_bundle = {ca_bundle}
trust_roots = {trust_roots}

[challenge]
listen = {listen}
preflight_address = {preflight}

[haproxy]
cert_dir = {cert_dir}
check_command = {check}
reload_command = {reload}
verify = [{verify}]

[state]
dir = {state}
",
            directory = q(&self.acme_directory()),
            contact = q("ops@example.com"),
            ca_bundle = path(self.pebble_listener_ca()),
            trust_roots = path(self.pebble_roots_file()),
            listen = q(&format!("127.0.0.1:{}", self.side_port())),
            preflight = q(&format!("127.0.0.1:{}", self.http_port())),
            verify = q(&format!("127.0.0.1:{}", self.https_port())),
            cert_dir = path(self.cert_dir()),
            check = q(&self.check_command()),
            reload = q(&self.reload_command()),
            state = path(self.state_dir()),
        )
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

    /// The same command, not started (stdin is null; stdout/stderr are inherited unless you set them).
    pub fn hapcert_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapcert"));
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("HAPCERT_CONFIG")
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
