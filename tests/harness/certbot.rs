//! Debian's certbot, run against the sandbox's Pebble, to make a real `/etc/letsencrypt`-style tree for the import
//! tests. Its standalone server answers HTTP-01 on the sandbox's side port, so validation takes the path it takes on a
//! load balancer: Pebble → HAProxy's plain frontend → the side port.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::{Sandbox, process, tools};

const CERTBOT_TIMEOUT: Duration = Duration::from_secs(120);

/// certbot's binary, looked up once. Missing, it fails the test and says how to install it.
fn certbot_bin() -> &'static Path {
    static CERTBOT: OnceLock<PathBuf> = OnceLock::new();
    CERTBOT.get_or_init(|| {
        tools::find(
            "certbot",
            Some("HAPCERT_CERTBOT"),
            &[Path::new("/usr/bin")],
            tools::FindIn::EnvPathThenDirs,
            "install it with `apt-get install certbot` (scripts/test does)",
        )
    })
}

/// The key options of one `certbot certonly`.
#[derive(Clone, Copy, Debug)]
pub enum CertbotKey {
    Ecdsa(&'static str),
    Rsa(u32),
}

impl Sandbox {
    /// certbot's `--config-dir`: `<dir>/letsencrypt`, the tree `hapcert import certbot` reads.
    pub fn certbot_config_dir(&self) -> PathBuf {
        self.dir().join("letsencrypt")
    }

    /// Runs certbot with its three directories inside the sandbox and Pebble's listener CA trusted, and waits
    /// (120 s at most). Output is kept in `<dir>/logs/certbot-<n>.{stdout,stderr}` and certbot's own log in
    /// `<dir>/letsencrypt-logs/`.
    pub fn certbot(&self, args: &[&str]) -> Output {
        let logs = self.dir().join("logs");
        let earlier = fs::read_dir(&logs).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with("certbot-") && name.ends_with(".stdout")
                })
                .count()
        });
        let stem = logs.join(format!("certbot-{:03}", earlier + 1));
        let mut cmd = Command::new(certbot_bin());
        cmd.arg("--config-dir")
            .arg(self.certbot_config_dir())
            .arg("--work-dir")
            .arg(self.dir().join("letsencrypt-work"))
            .arg("--logs-dir")
            .arg(self.dir().join("letsencrypt-logs"))
            .args(args)
            // certbot talks to the CA through python-requests, which trusts this bundle instead of the system's.
            .env("REQUESTS_CA_BUNDLE", self.pebble_listener_ca())
            .current_dir(self.dir())
            .stdin(Stdio::null());
        process::run_echoed("certbot", args, cmd, &stem, CERTBOT_TIMEOUT)
    }

    /// `certbot certonly --standalone` for one lineage, the way the postmortem's load balancer ran it: HTTP-01 on the
    /// side port HAProxy forwards the challenge path to. `extra` adds options such as hooks. Panics if certbot fails.
    pub fn certbot_certonly(&self, cert_name: &str, domains: &[&str], key: CertbotKey, extra: &[&str]) {
        let directory = self.acme_directory();
        let side_port = self.side_port().to_string();
        let key_size;
        let key_args: Vec<&str> = match key {
            CertbotKey::Ecdsa(curve) => vec!["--key-type", "ecdsa", "--elliptic-curve", curve],
            CertbotKey::Rsa(bits) => {
                key_size = bits.to_string();
                vec!["--key-type", "rsa", "--rsa-key-size", &key_size]
            }
        };
        let mut args = vec![
            "certonly",
            "--standalone",
            "--http-01-port",
            &side_port,
            "--server",
            &directory,
            "--non-interactive",
            "--agree-tos",
            "--register-unsafely-without-email",
            "--cert-name",
            cert_name,
        ];
        args.extend(key_args);
        for domain in domains {
            args.extend(["-d", domain]);
        }
        args.extend(extra);
        let out = self.certbot(&args);
        super::assert_exit(&out, 0);
    }
}
