//! The three tools under test, each driven the way its documentation tells an operator to drive it, against the same
//! sandbox: Pebble validates HTTP-01 through HAProxy's plain frontend, which forwards the challenge path to the side
//! port where the tool answers (hapcert's responder, certbot's `--standalone`, lego's `--http`).

use std::cell::RefCell;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::harness::{Sandbox, serial_hex};
use crate::measure::{self, Cost};

/// No single command of a full run should come near this; a hung peer fails the bench instead of stalling it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(900);

/// Numbers every command of the bench, across sandboxes: its logs (`bench-logs/<tool>-<n>`) and profiles never
/// overwrite another's.
static COMMANDS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Hapcert,
    Certbot,
    Lego,
}

impl Tool {
    pub const ALL: [Tool; 3] = [Tool::Hapcert, Tool::Certbot, Tool::Lego];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Hapcert => "hapcert",
            Tool::Certbot => "certbot",
            Tool::Lego => "lego",
        }
    }
}

/// A certificate's name in every tool: certbot's `--cert-name`, hapcert's `name`, and the first label of its domain.
pub fn cert_name(i: usize) -> String {
    format!("b{i:04}")
}

pub fn domain(i: usize) -> String {
    format!("{}.bench.example.com", cert_name(i))
}

/// One tool in one sandbox, with its own files under the sandbox directory.
pub struct Bench<'a> {
    pub sb: &'a Sandbox,
    pub tool: Tool,
    /// The log stem of the last command, to check what it said.
    last: RefCell<PathBuf>,
}

/// What one timed piece of work cost, and, for hapcert, how many HTTP requests it sent to the CA (counted by its ACME
/// client's HTTP layer, read from `HAPCERT_REQUEST_COUNT_FILE`).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    pub cost: Cost,
    pub requests: Option<u64>,
}

impl<'a> Bench<'a> {
    pub fn new(sb: &'a Sandbox, tool: Tool) -> Bench<'a> {
        fs::create_dir_all(sb.dir().join("bench-logs")).expect("create bench-logs");
        Bench {
            sb,
            tool,
            last: RefCell::default(),
        }
    }

    /// (a): one certificate per name, from an empty state: the first run creates the account.
    pub fn issue_each(&self, names: &[usize]) -> Sample {
        match self.tool {
            Tool::Hapcert => {
                self.write_hapcert_config(
                    &names
                        .iter()
                        .map(|&i| (cert_name(i), vec![domain(i)]))
                        .collect::<Vec<_>>(),
                );
                self.hapcert(&["run"])
            }
            Tool::Certbot | Tool::Lego => {
                let mut total = Cost::default();
                for &i in names {
                    total.add(self.peer_issue(&cert_name(i), &[domain(i)]).cost);
                }
                Sample {
                    cost: total,
                    requests: None,
                }
            }
        }
    }

    /// (b): one certificate for all `names`.
    pub fn issue_one_for_all(&self, names: &[usize]) -> Sample {
        let domains: Vec<String> = names.iter().map(|&i| domain(i)).collect();
        match self.tool {
            Tool::Hapcert => {
                self.write_hapcert_config(&[("multi".to_owned(), domains)]);
                self.hapcert(&["run"])
            }
            Tool::Certbot | Tool::Lego => self.peer_issue("multi", &domains),
        }
    }

    /// (c): the daily run when nothing is due, over `count` certificates (the issued ones, copied under new names
    /// by [`Bench::replicate`] when `count` is larger).
    pub fn noop(&self, issued: &[usize], count: usize) -> Sample {
        match self.tool {
            Tool::Hapcert => {
                let sample = self.hapcert(&["run"]);
                assert_eq!(sample.requests, Some(0), "a no-op run sends nothing to the CA");
                sample
            }
            Tool::Certbot => {
                let sample = self.certbot(&["renew", "--no-random-sleep-on-renew"]);
                self.assert_said("No renewals were attempted");
                sample
            }
            // lego keeps one certificate per domain and renews one per process: a timer runs it once per certificate.
            Tool::Lego => {
                let mut total = Cost::default();
                for k in 0..count {
                    let i = issued[k % issued.len()];
                    total.add(
                        self.lego(&["-d", &domain(i), "renew", "--days", "30", "--no-random-sleep"])
                            .cost,
                    );
                    self.assert_said("no renewal");
                }
                Sample {
                    cost: total,
                    requests: None,
                }
            }
        }
    }

    /// Brings the tool's store to `count` certificates by copying the `issued` ones under new names, then lets the
    /// tool see them once (untimed), as the day before would have: hapcert then knows each one's renewal window.
    pub fn replicate(&self, issued: &[usize], count: usize) {
        let copies: Vec<(usize, String)> = (issued.len()..count)
            .map(|k| {
                let original = issued[k % issued.len()];
                (original, format!("{}-{k}", cert_name(original)))
            })
            .collect();
        match self.tool {
            Tool::Hapcert => {
                let dir = self.sb.cert_dir();
                let mut entries: Vec<(String, Vec<String>)> =
                    issued.iter().map(|&i| (cert_name(i), vec![domain(i)])).collect();
                for (original, copy) in &copies {
                    fs::copy(
                        dir.join(format!("{}.pem", cert_name(*original))),
                        dir.join(format!("{copy}.pem")),
                    )
                    .expect("copy a PEM");
                    entries.push((copy.clone(), vec![domain(*original)]));
                }
                // As of yesterday: hapcert does not remember the facts of a file modified in the last 2 s (it may
                // change again within the same timestamp tick), and yesterday's run would have remembered them.
                let yesterday = SystemTime::now() - Duration::from_secs(86_400);
                for (name, _) in &entries {
                    let pem = File::options()
                        .write(true)
                        .open(dir.join(format!("{name}.pem")))
                        .expect("open a PEM");
                    pem.set_modified(yesterday).expect("set a PEM's mtime");
                }
                self.write_hapcert_config(&entries);
                self.hapcert(&["run"]);
            }
            Tool::Certbot => {
                for (original, copy) in &copies {
                    copy_certbot_lineage(&self.sb.certbot_config_dir(), &cert_name(*original), copy);
                }
                self.certbot(&["renew", "--no-random-sleep-on-renew"]);
            }
            // lego's store is keyed by domain: the no-op loop renews the same domains again instead.
            Tool::Lego => {}
        }
    }

    /// (d) setup: one certificate issued and served by HAProxy, as the tool's own deploy path puts it there.
    pub fn issue_and_serve(&self, i: usize) {
        match self.tool {
            Tool::Hapcert => {
                self.write_hapcert_config(&[(cert_name(i), vec![domain(i)])]);
                self.hapcert(&["run"]);
            }
            Tool::Certbot => {
                self.peer_issue(&cert_name(i), &[domain(i)]);
                let lineage = self.sb.certbot_config_dir().join("live").join(cert_name(i));
                self.run_hook(i, &[("RENEWED_LINEAGE", lineage)]);
            }
            Tool::Lego => {
                self.peer_issue(&cert_name(i), &[domain(i)]);
                let certs = self.lego_dir().join("certificates");
                self.run_hook(
                    i,
                    &[
                        ("LEGO_CERT_PATH", certs.join(format!("{}.crt", domain(i)))),
                        ("LEGO_CERT_KEY_PATH", certs.join(format!("{}.key", domain(i)))),
                    ],
                );
            }
        }
    }

    /// (d): a forced renewal of certificate `i`, timed from the start of the command until HAProxy serves the new
    /// certificate on a fresh handshake.
    pub fn force_renew_until_served(&self, i: usize) -> Sample {
        let sni = domain(i);
        let before = self.served_serial(&sni);
        let started = Instant::now();
        let mut sample = match self.tool {
            Tool::Hapcert => self.hapcert(&["renew", "--force", &cert_name(i)]),
            Tool::Certbot => {
                let hook = self.deploy_hook(i).display().to_string();
                self.certbot(&[
                    "renew",
                    "--force-renewal",
                    "--cert-name",
                    &cert_name(i),
                    "--no-random-sleep-on-renew",
                    "--deploy-hook",
                    &hook,
                ])
            }
            Tool::Lego => {
                let hook = self.deploy_hook(i).display().to_string();
                let args = [
                    "-d",
                    &sni,
                    "renew",
                    "--days",
                    "999999",
                    "--no-random-sleep",
                    "--renew-hook",
                    &hook,
                ];
                self.lego(&args)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.served_serial(&sni) == before {
            assert!(
                Instant::now() < deadline,
                "{}: HAProxy still serves {before} for {sni}",
                self.tool.name()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        sample.cost.wall = started.elapsed();
        sample
    }

    fn served_serial(&self, sni: &str) -> String {
        serial_hex(&self.sb.served_leaf_unverified(sni))
    }

    /// The deploy step of the postmortem's renew.sh, as a hook: join the chain and key into HAProxy's PEM, reload.
    fn deploy_hook(&self, i: usize) -> PathBuf {
        let (cert, key) = match self.tool {
            Tool::Certbot => ("$RENEWED_LINEAGE/fullchain.pem", "$RENEWED_LINEAGE/privkey.pem"),
            Tool::Lego => ("$LEGO_CERT_PATH", "$LEGO_CERT_KEY_PATH"),
            Tool::Hapcert => unreachable!("hapcert deploys by itself"),
        };
        let pem = self.sb.cert_dir().join(format!("{}.pem", cert_name(i)));
        let script = self.sb.dir().join(format!("deploy-{}.sh", self.tool.name()));
        let text = format!(
            "#!/bin/sh\nset -e\ncat \"{cert}\" \"{key}\" > \"{pem}.tmp\"\nmv \"{pem}.tmp\" \"{pem}\"\n{reload}\n",
            pem = pem.display(),
            reload = self.sb.reload_command()
        );
        fs::write(&script, text).expect("write the deploy hook");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the deploy hook");
        script
    }

    fn run_hook(&self, i: usize, env: &[(&str, PathBuf)]) {
        let mut cmd = Command::new(self.deploy_hook(i));
        for (key, value) in env {
            cmd.env(key, value);
        }
        self.timed("hook", cmd);
    }

    fn peer_issue(&self, name: &str, domains: &[String]) -> Sample {
        let mut args: Vec<&str> = Vec::new();
        let side = self.sb.side_port().to_string();
        if self.tool == Tool::Certbot {
            args.extend(["certonly", "--standalone", "--http-01-port", &side, "--cert-name", name]);
        }
        for d in domains {
            args.extend(["-d", d]);
        }
        match self.tool {
            Tool::Certbot => self.certbot(&args),
            Tool::Lego => {
                args.push("run");
                self.lego(&args)
            }
            Tool::Hapcert => unreachable!("hapcert issues through its config"),
        }
    }

    /// The sandbox's base config with the Runtime API, as the README recommends: a hot update, no reload. Every
    /// scenario deploys this way, so that hapcert's figures compare across them.
    pub fn hapcert_base_config(&self) -> String {
        let sockets = format!(
            "[haproxy]\nruntime_api = \"{}\"\nmaster_socket = \"{}\"\n",
            self.sb.haproxy_admin_sock().display(),
            self.sb.haproxy_master_sock().display()
        );
        self.sb.base_config().replacen("[haproxy]\n", &sockets, 1)
    }

    fn write_hapcert_config(&self, certs: &[(String, Vec<String>)]) {
        let mut text = self.hapcert_base_config();
        for (name, domains) in certs {
            let domains: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
            text += &format!(
                "\n[[certificate]]\nname = \"{name}\"\ndomains = [{}]\n",
                domains.join(", ")
            );
        }
        self.sb.write_config_text(&text);
    }

    pub fn hapcert(&self, args: &[&str]) -> Sample {
        let count_file = self.sb.dir().join("requests");
        let _ = fs::remove_file(&count_file);
        // HAPCERT_BENCH_LOG_LEVEL=trace shows every request to the CA in bench-logs/ (and costs time: not for figures).
        let level = std::env::var("HAPCERT_BENCH_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let args: Vec<&str> = ["--log-level", level.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let mut cmd = self.hapcert_command(&args);
        cmd.env("HAPCERT_REQUEST_COUNT_FILE", &count_file);
        let mut sample = self.timed("hapcert", cmd);
        sample.requests = fs::read_to_string(&count_file).ok().and_then(|t| t.trim().parse().ok());
        sample
    }

    /// hapcert as built for this bench, or, for profiling (docs/PERFORMANCE.md), `HAPCERT_BENCH_BIN` (a build with
    /// symbols) run under `perf record` when `HAPCERT_BENCH_PROFILE` names a directory for the profiles. The figures
    /// of a profiled run are perf's as much as hapcert's: profile and measure in separate runs.
    fn hapcert_command(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("HAPCERT_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hapcert").into());
        let mut cmd = match std::env::var_os("HAPCERT_BENCH_PROFILE") {
            Some(dir) => {
                let data =
                    Path::new(&dir).join(format!("hapcert-{:05}.perf.data", COMMANDS.load(Ordering::Relaxed) + 1));
                let mut perf = Command::new("perf");
                perf.args(["record", "-e", "cpu-clock", "-F", "4000", "-g", "-o"])
                    .arg(data)
                    .arg("--")
                    .arg(bin);
                perf
            }
            None => Command::new(bin),
        };
        cmd.arg("--config")
            .arg(self.sb.config_path())
            .args(args)
            .env_remove("HAPCERT_CONFIG");
        cmd
    }

    pub fn certbot(&self, args: &[&str]) -> Sample {
        let directory = self.sb.acme_directory();
        let mut cmd = Command::new("certbot");
        cmd.arg("--config-dir")
            .arg(self.sb.certbot_config_dir())
            .arg("--work-dir")
            .arg(self.sb.dir().join("letsencrypt-work"))
            .arg("--logs-dir")
            .arg(self.sb.dir().join("letsencrypt-logs"))
            .args(["--non-interactive", "--agree-tos", "--register-unsafely-without-email"])
            .args(["--server", &directory])
            .args(args)
            .env("REQUESTS_CA_BUNDLE", self.sb.pebble_listener_ca());
        self.timed("certbot", cmd)
    }

    pub fn lego_dir(&self) -> PathBuf {
        self.sb.dir().join("lego")
    }

    fn lego(&self, args: &[&str]) -> Sample {
        let directory = self.sb.acme_directory();
        // lego wants a solver even to find that nothing is due.
        let listen = format!("127.0.0.1:{}", self.sb.side_port());
        let mut cmd = Command::new("lego");
        cmd.args(["--server", &directory, "--accept-tos", "--email", "ops@example.com"])
            .args(["--http", "--http.port", &listen])
            .arg("--path")
            .arg(self.lego_dir())
            .args(args)
            .env("LEGO_CA_CERTIFICATES", self.sb.pebble_listener_ca());
        self.timed("lego", cmd)
    }

    pub fn timed(&self, program: &str, mut cmd: Command) -> Sample {
        let run = COMMANDS.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = self.sb.dir().join("bench-logs").join(format!("{program}-{run:05}"));
        cmd.current_dir(self.sb.dir());
        let cost = measure::run(cmd, &stem, COMMAND_TIMEOUT);
        *self.last.borrow_mut() = stem;
        Sample { cost, requests: None }
    }

    /// The log stem of the last command: its output is in `<stem>.stdout` and `<stem>.stderr`.
    pub fn last_log(&self) -> PathBuf {
        self.last.borrow().clone()
    }

    /// The last command said `words` (stdout or stderr): a peer's no-op must really have done nothing.
    fn assert_said(&self, words: &str) {
        let stem = self.last.borrow();
        let said = ["stdout", "stderr"].map(|ext| fs::read_to_string(stem.with_extension(ext)).unwrap_or_default());
        assert!(
            said.iter().any(|text| text.contains(words)),
            "{}: expected {words:?} in {}.*:\n{}{}",
            self.tool.name(),
            stem.display(),
            said[0],
            said[1]
        );
    }
}

/// A copy of certbot's lineage `from` named `to`: its archive, its `live` links and its renewal config, which names both
/// directories.
fn copy_certbot_lineage(config_dir: &Path, from: &str, to: &str) {
    if config_dir.join("renewal").join(format!("{to}.conf")).exists() {
        return; // made for a smaller size already
    }
    let archive = config_dir.join("archive");
    let live = config_dir.join("live");
    fs::create_dir_all(archive.join(to)).expect("create archive dir");
    fs::create_dir_all(live.join(to)).expect("create live dir");
    for entry in fs::read_dir(archive.join(from)).expect("read archive dir") {
        let entry = entry.expect("archive entry");
        fs::copy(entry.path(), archive.join(to).join(entry.file_name())).expect("copy archive file");
    }
    for entry in fs::read_dir(live.join(from)).expect("read live dir") {
        let entry = entry.expect("live entry");
        let Ok(target) = fs::read_link(entry.path()) else {
            continue; // the README
        };
        let target = target
            .to_string_lossy()
            .replace(&format!("/archive/{from}/"), &format!("/archive/{to}/"));
        std::os::unix::fs::symlink(target, live.join(to).join(entry.file_name())).expect("link live file");
    }
    let renewal = config_dir.join("renewal");
    let conf = fs::read_to_string(renewal.join(format!("{from}.conf"))).expect("read renewal conf");
    let conf = conf
        .replace(&format!("/live/{from}/"), &format!("/live/{to}/"))
        .replace(&format!("/archive/{from}\n"), &format!("/archive/{to}\n"));
    fs::write(renewal.join(format!("{to}.conf")), conf).expect("write renewal conf");
}
