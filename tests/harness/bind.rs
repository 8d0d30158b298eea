//! A small DNS world of real BIND 9 servers for DNS-01 tests: a primary that accepts RFC 2136 updates signed with a TSIG
//! key, an optional secondary fed by zone transfers, and a resolver in front (Pebble's `-dnsserver`), because an
//! authoritative named answers a CNAME without following it into another zone, and Pebble needs the followed answer.
//!
//! Every named runs in the foreground as a plain child process on its own port of 127.0.0.1 (named binds interface
//! addresses, and loopback has only 127.0.0.1 here), with its config, zone files and journals under the lab's directory
//! and its log in the sandbox's logs directory. /work/shared/notes/bind9.md has the measurements behind the choices.
//!
//! The zones, all under the reserved `.test` TLD and all answering 127.0.0.1 where they have addresses:
//! - `example.test`: `@`, `ns1`, `www`, `*`. The key may set TXT at `_acme-challenge` of the apex, `www` and `mixed`.
//! - `shop.test`: `@`, `ns1`; `_acme-challenge` is a CNAME to `shop.acme.delegate.test.`, and the key may not update
//!   shop.test at all: the only way to answer its challenge is through the delegate zone.
//! - `delegate.test`: `@`, `ns1`; the key may set TXT at any name in it.
//! - `locked.test`: `@`, `ns1`, `*`; the key may set TXT only at `_acme-challenge.other.locked.test`, so the challenge
//!   name of `locked.test` itself is refused by policy.
//! - `http.test`: `@`, `ns1`, `*`, no updates: names for HTTP-01 certificates next to DNS-01 ones.
//!
//! None of the zones holds a TXT record of its own, so any TXT found in them was put there by a test or by hapcert.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;

use super::ports::free_port;
use super::process::{Daemon, poll_until, run_with_timeout};
use super::tools::{BindTools, bind_tools};

/// The TSIG key named accepts updates from.
pub const KEY_NAME: &str = "acme-key";
/// The key for the secondary's rndc control channel, which only the harness uses.
const RNDC_KEY_NAME: &str = "lab-rndc";

const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a one-shot tool (dig, nsupdate, rndc) may take before the test fails instead of hanging.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a secondary may take to serve what the primary serves (a NOTIFY, or an rndc refresh, takes well under a
/// second here; the margin is for a loaded machine).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the optional secondary does when the primary changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secondary {
    /// The primary sends NOTIFY at once (`notify-delay 0`): the secondary has an update within about half a second.
    Notified,
    /// No NOTIFY, and the secondary polls only once an hour: it serves the old data until
    /// [`DnsLab::refresh_secondary`]. For testing a client that must not trust one server's answer.
    Lagging,
}

#[derive(Clone, Debug, Default)]
pub struct DnsLabOptions {
    /// None: a primary and a resolver only.
    pub secondary: Option<Secondary>,
}

struct Zone {
    name: &'static str,
    /// Owner names with an A record of 127.0.0.1.
    a: &'static [&'static str],
    /// Further records, zone-file lines.
    extra: &'static str,
    /// What the primary lets the key change (an `update-policy` or `allow-update` statement).
    updates: &'static str,
}

const ZONES: &[Zone] = &[
    Zone {
        name: "example.test",
        a: &["@", "ns1", "www", "*"],
        extra: "",
        updates: "update-policy {
        grant acme-key name _acme-challenge.example.test. TXT;
        grant acme-key name _acme-challenge.www.example.test. TXT;
        grant acme-key name _acme-challenge.mixed.example.test. TXT;
    };",
    },
    Zone {
        name: "shop.test",
        a: &["@", "ns1"],
        // `blocked.shop.test` delegates into a zone whose policy does not grant that name: an update there is refused.
        extra: "_acme-challenge IN CNAME shop.acme.delegate.test.\n\
                _acme-challenge.blocked IN CNAME _acme-challenge.locked.test.\n",
        // Explicit, although it is named's default: the point of this zone is that it cannot be updated.
        updates: "allow-update { none; };",
    },
    Zone {
        name: "delegate.test",
        a: &["@", "ns1"],
        extra: "",
        updates: "update-policy { grant acme-key zonesub TXT; };",
    },
    Zone {
        name: "locked.test",
        a: &["@", "ns1", "*"],
        extra: "",
        updates: "update-policy { grant acme-key name _acme-challenge.other.locked.test. TXT; };",
    },
    Zone {
        name: "http.test",
        a: &["@", "ns1", "*"],
        extra: "",
        updates: "allow-update { none; };",
    },
];

/// The names of the lab's zones.
pub fn zones() -> Vec<&'static str> {
    ZONES.iter().map(|z| z.name).collect()
}

/// The ports a lab listens on, chosen before anything starts so that the sandbox can hand the resolver's address to
/// Pebble while the lab is still starting.
#[derive(Clone, Copy, Debug)]
pub struct LabPorts {
    primary: u16,
    secondary: Option<(u16, u16)>,
    resolver: u16,
}

impl LabPorts {
    pub fn pick(opts: &DnsLabOptions) -> LabPorts {
        LabPorts {
            primary: free_port(),
            // (DNS, rndc control channel)
            secondary: opts.secondary.map(|_| (free_port(), free_port())),
            resolver: free_port(),
        }
    }

    pub fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.resolver)
    }
}

pub struct DnsLab {
    dir: PathBuf,
    ports: LabPorts,
    secret: String,
    /// `key "acme-key" { ... };`, read by the primary's config and by `nsupdate -k`.
    key_file: PathBuf,
    rndc_key_file: PathBuf,
    primary: Daemon,
    secondary: Option<Daemon>,
    resolver: Daemon,
}

impl DnsLab {
    /// Starts the lab in `dir` (created if missing) with its logs in `logs`, and returns once every named answers for
    /// every zone it serves and the secondary, if any, serves the primary's serials.
    pub fn start(dir: &Path, logs: &Path, opts: DnsLabOptions) -> DnsLab {
        DnsLab::start_on(dir, logs, &opts, LabPorts::pick(&opts))
    }

    /// [`DnsLab::start`] on ports picked beforehand.
    pub fn start_on(dir: &Path, logs: &Path, opts: &DnsLabOptions, ports: LabPorts) -> DnsLab {
        let started = Instant::now();
        let tools = bind_tools();
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let dir = dir.canonicalize().expect("canonicalize the lab directory");
        let secret = random_secret();
        let key_file = dir.join("acme-key.conf");
        write_file(&key_file, &key_statement(KEY_NAME, &secret), 0o600);

        // The primary first: a secondary that finds no primary at its first try waits minutes before the next.
        let primary_dir = subdir(&dir, "primary");
        let notify = match opts.secondary {
            Some(Secondary::Notified) => format!(
                "notify explicit; notify-delay 0; also-notify {{ 127.0.0.1 port {}; }};",
                ports.secondary.expect("ports for the secondary").0
            ),
            _ => "notify no;".to_owned(),
        };
        let mut conf = options(
            &primary_dir,
            ports.primary,
            NO_CONTROLS,
            &format!("recursion no; {notify}"),
        );
        conf += &format!("include \"{}\";\n", key_file.display());
        for zone in ZONES {
            let file = primary_dir.join(format!("{}.zone", zone.name));
            write_file(&file, &zone_file(zone), 0o644);
            conf += &format!(
                "zone \"{}\" {{\n    type primary;\n    file \"{}\";\n    {}\n}};\n",
                zone.name,
                file.display(),
                zone.updates
            );
        }
        let mut primary = spawn_named(tools, "named-primary", &primary_dir, &conf, logs);
        wait_answering(&mut primary, &dir, ports.primary, true);

        let rndc_key_file = dir.join("rndc.key");
        let mut secondary = ports.secondary.map(|(port, rndc_port)| {
            let secondary_dir = subdir(&dir, "secondary");
            let lag = if opts.secondary == Some(Secondary::Lagging) {
                // The zones' SOA asks for a refresh every 60 s; these bounds override it.
                "min-refresh-time 3600; max-refresh-time 3600;"
            } else {
                ""
            };
            // An rndc channel with a key of the lab's own, for refresh_secondary (a notified secondary has one too: it
            // costs nothing, and a test may want to force a transfer there as well).
            generate_rndc_key(tools, &rndc_key_file);
            let controls = format!(
                "include \"{}\";\ncontrols {{ inet 127.0.0.1 port {rndc_port} allow {{ 127.0.0.1; }} keys {{ \"{RNDC_KEY_NAME}\"; }}; }};\n",
                rndc_key_file.display()
            );
            let mut conf = options(&secondary_dir, port, &controls, &format!("recursion no; notify no; {lag}"));
            for zone in ZONES {
                conf += &format!(
                    "zone \"{}\" {{ type secondary; primaries {{ 127.0.0.1 port {}; }}; file \"{}\"; }};\n",
                    zone.name,
                    ports.primary,
                    secondary_dir.join(format!("{}.bk", zone.name)).display()
                );
            }
            spawn_named(tools, "named-secondary", &secondary_dir, &conf, logs)
        });

        let resolver_dir = subdir(&dir, "resolver");
        let hints = resolver_dir.join("root.hints");
        // A root of our own on loopback: named primes its root servers even when it only forwards, and must not go
        // out to the internet's roots.
        write_file(
            &hints,
            ". 3600000 IN NS fake-root.\nfake-root. 3600000 IN A 127.0.0.1\n",
            0o644,
        );
        let mut conf = options(
            &resolver_dir,
            ports.resolver,
            NO_CONTROLS,
            &format!(
                // A one-second cache: tests change records and read them back through the resolver at once.
                "recursion yes; allow-recursion {{ 127.0.0.0/8; }}; forward only; \
                 forwarders {{ 127.0.0.1 port {}; }}; max-cache-ttl 1; max-ncache-ttl 1;",
                ports.primary
            ),
        );
        conf += &format!("zone \".\" {{ type hint; file \"{}\"; }};\n", hints.display());
        let mut resolver = spawn_named(tools, "named-resolver", &resolver_dir, &conf, logs);
        wait_answering(&mut resolver, &dir, ports.resolver, false);

        if let Some(daemon) = &mut secondary {
            let (primary, port) = (ports.primary, ports.secondary.expect("ports for the secondary").0);
            daemon.wait_ready("every zone at the primary's serial", READY_TIMEOUT, || {
                ZONES.iter().all(|z| caught_up(&dir, primary, port, z.name))
            });
        }
        let lab = DnsLab {
            dir,
            ports,
            secret,
            key_file,
            rndc_key_file,
            primary,
            secondary,
            resolver,
        };
        eprintln!("dns lab {} ready in {:?}", lab.dir.display(), started.elapsed());
        lab
    }

    /// `127.0.0.1:PORT` of the primary, which takes the updates.
    pub fn primary(&self) -> String {
        format!("127.0.0.1:{}", self.ports.primary)
    }

    /// `127.0.0.1:PORT` of the secondary, if the lab has one.
    pub fn secondary(&self) -> Option<String> {
        self.ports.secondary.map(|(port, _)| format!("127.0.0.1:{port}"))
    }

    /// `127.0.0.1:PORT` of the resolver: what Pebble asks, and what follows CNAMEs across zones.
    pub fn resolver(&self) -> String {
        self.ports.resolver()
    }

    pub fn key_name(&self) -> &str {
        KEY_NAME
    }

    /// The TSIG key's secret (hmac-sha256, 32 random bytes, new for every lab), in standard base64.
    pub fn secret_base64(&self) -> &str {
        &self.secret
    }

    /// Writes the secret as base64 and a newline with mode 0600: a `secret_file` for hapcert's configuration.
    pub fn write_secret_file(&self, path: &Path) {
        write_file(path, &format!("{}\n", self.secret), 0o600);
    }

    /// Writes the key as `key "acme-key" { algorithm hmac-sha256; secret "..."; };`, as `nsupdate -k` and named read it.
    pub fn write_nsupdate_key(&self, path: &Path) {
        write_file(path, &key_statement(KEY_NAME, &self.secret), 0o600);
    }

    /// The TXT values at `name` (strings of one record joined, quotes removed), as `server` answers. The resolver is
    /// asked to recurse (it follows CNAMEs); the primary and the secondary are asked with +norecurse, so only what they
    /// hold themselves counts. Empty when there is none.
    pub fn txt(&self, server: &str, name: &str) -> Vec<String> {
        let recurse = if server == self.resolver() {
            "+recurse"
        } else {
            "+norecurse"
        };
        let out = self.dig(server, &[recurse, "+noall", "+answer", "TXT", name]);
        records(&out)
            .into_iter()
            .filter(|r| r.kind == "TXT")
            .map(|r| txt_value(&r.data))
            .collect()
    }

    /// Every TXT record in every zone of the primary and of the secondary, from zone transfers, as
    /// `"<primary|secondary> <name without the final dot> <value>"`. The zones have no TXT of their own, so anything
    /// here was left by a test or a client: empty means clean.
    pub fn challenge_leftovers(&self) -> Vec<String> {
        let mut servers = vec![("primary", self.primary())];
        servers.extend(self.secondary().map(|s| ("secondary", s)));
        let mut leftovers = Vec::new();
        for (role, server) in servers {
            for zone in ZONES {
                let out = self.dig(&server, &["+noall", "+answer", "AXFR", zone.name]);
                assert!(
                    out.contains("SOA"),
                    "AXFR of {} from the {role} ({server}) returned no SOA:\n{out}",
                    zone.name
                );
                for record in records(&out).into_iter().filter(|r| r.kind == "TXT") {
                    let name = record.name.trim_end_matches('.');
                    leftovers.push(format!("{role} {name} {}", txt_value(&record.data)));
                }
            }
        }
        leftovers
    }

    /// Runs nsupdate against `server` with the lab's key. `commands` are nsupdate's (`update add ...`, `update delete
    /// ...`); the `server` line comes first, and a `send` is added unless the last line is one. nsupdate exits 0 when
    /// the update was applied, 2 with `update failed: REFUSED` (or NOTAUTH(...)) on stderr when named said no.
    pub fn nsupdate(&self, server: &str, commands: &str) -> Output {
        let key = self.key_file.to_string_lossy().into_owned();
        self.run_nsupdate(server, &["-k", &key], commands)
    }

    /// [`DnsLab::nsupdate`] signing with `acme-key` and the given secret instead, e.g. a wrong one (named answers
    /// `NOTAUTH(BADSIG)`).
    pub fn nsupdate_with_secret(&self, server: &str, secret_base64: &str, commands: &str) -> Output {
        self.run_nsupdate(
            server,
            &["-y", &format!("hmac-sha256:{KEY_NAME}:{secret_base64}")],
            commands,
        )
    }

    /// Makes the secondary fetch `zone` from the primary now (rndc refresh), and waits until it serves the primary's
    /// serial. For [`Secondary::Lagging`], which would otherwise wait an hour; harmless with a notified one.
    pub fn refresh_secondary(&self, zone: &str) {
        let (_, rndc_port) = self
            .ports
            .secondary
            .expect("refresh_secondary: this lab has no secondary");
        let mut cmd = Command::new(&bind_tools().rndc);
        cmd.args(["-s", "127.0.0.1", "-p", &rndc_port.to_string(), "-k"])
            .arg(&self.rndc_key_file)
            .args(["refresh", zone]);
        let out = self.run(cmd, "rndc");
        assert!(
            out.status.success(),
            "rndc refresh {zone}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_secondary(zone);
    }

    /// Waits until the secondary serves the primary's serial of `zone` (after an update, with a notified secondary);
    /// panics after 10 s. Returns how long it took.
    pub fn wait_secondary(&self, zone: &str) -> Duration {
        let started = Instant::now();
        assert!(self.secondary.is_some(), "wait_secondary: this lab has no secondary");
        if !poll_until(CATCH_UP_TIMEOUT, || self.caught_up(zone)) {
            panic!(
                "the secondary still serves serial {:?} of {zone} after {CATCH_UP_TIMEOUT:?}; the primary has {:?}",
                self.try_serial(&self.secondary().unwrap_or_default(), zone),
                self.try_serial(&self.primary(), zone)
            );
        }
        started.elapsed()
    }

    /// The SOA serial of `zone` on `server` (+norecurse). Every update bumps it on the primary.
    pub fn serial(&self, server: &str, zone: &str) -> u32 {
        self.try_serial(server, zone)
            .unwrap_or_else(|| panic!("{server} returned no SOA for {zone}"))
    }

    /// What the primary logged so far (each update: `adding an RR at ...`, `deleting an RR ...`, refusals with the
    /// reason).
    pub fn primary_log(&self) -> String {
        read_log(self.primary.log_path())
    }

    pub fn secondary_log(&self) -> Option<String> {
        self.secondary.as_ref().map(|s| read_log(s.log_path()))
    }

    pub fn resolver_log(&self) -> String {
        read_log(self.resolver.log_path())
    }

    /// PIDs of every named of the lab.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.primary.pid(), self.resolver.pid()];
        pids.extend(self.secondary.as_ref().map(Daemon::pid));
        pids
    }

    /// Kills every named (SIGKILL: nothing of theirs needs to survive a test) and reaps them. Idempotent.
    pub fn stop(&mut self) {
        self.resolver.stop(Duration::ZERO);
        if let Some(secondary) = &mut self.secondary {
            secondary.stop(Duration::ZERO);
        }
        self.primary.stop(Duration::ZERO);
    }

    fn caught_up(&self, zone: &str) -> bool {
        match self.ports.secondary {
            Some((port, _)) => caught_up(&self.dir, self.ports.primary, port, zone),
            None => true,
        }
    }

    fn try_serial(&self, server: &str, zone: &str) -> Option<u32> {
        serial_at(&self.dir, server, zone)
    }

    fn run_nsupdate(&self, server: &str, key_args: &[&str], commands: &str) -> Output {
        let (host, port) = split_server(server);
        let mut script = format!("server {host} {port}\n{}", commands.trim_end());
        if script.lines().last().map(str::trim) != Some("send") {
            script += "\nsend";
        }
        script += "\n";
        static SCRIPTS: AtomicUsize = AtomicUsize::new(0);
        let file = self
            .dir
            .join(format!("nsupdate-{}.txt", SCRIPTS.fetch_add(1, Ordering::Relaxed)));
        write_file(&file, &script, 0o600);
        let mut cmd = Command::new(&bind_tools().nsupdate);
        // -t: give up on an unanswered update after 5 s rather than nsupdate's 300.
        cmd.args(key_args).args(["-t", "5"]).arg(&file);
        let out = self.run(cmd, "nsupdate");
        eprintln!(
            "nsupdate ({}):\n{script}-> {}\n{}{}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn dig(&self, server: &str, args: &[&str]) -> String {
        dig(&self.dir, server, args)
    }

    fn run(&self, cmd: Command, what: &str) -> Output {
        run_tool(&self.dir, cmd, what)
    }
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a one-shot tool with its output in numbered files under `<lab>/tmp` (kept for a failing test's post-mortem).
fn run_tool(lab_dir: &Path, cmd: Command, what: &str) -> Output {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let scratch = lab_dir.join("tmp");
    fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("create {}: {e}", scratch.display()));
    run_with_timeout(cmd, &scratch.join(format!("{what}-{n}")), TOOL_TIMEOUT)
}

/// dig's stdout for a query to `server`. One try of one second: the servers are local, and a test must not hang.
fn dig(lab_dir: &Path, server: &str, args: &[&str]) -> String {
    let (host, port) = split_server(server);
    let mut cmd = Command::new(&bind_tools().dig);
    cmd.arg(format!("@{host}"))
        .args(["-p", &port.to_string(), "+time=1", "+tries=1"])
        .args(args);
    String::from_utf8_lossy(&run_tool(lab_dir, cmd, "dig").stdout).into_owned()
}

fn serial_at(lab_dir: &Path, server: &str, zone: &str) -> Option<u32> {
    soa_serial(&dig(lab_dir, server, &["+norecurse", "+short", "SOA", zone]))
}

/// Whether the secondary on `secondary` serves the serial of `zone` that the primary on `primary` serves.
fn caught_up(lab_dir: &Path, primary: u16, secondary: u16, zone: &str) -> bool {
    let serial = |port: u16| serial_at(lab_dir, &format!("127.0.0.1:{port}"), zone);
    matches!((serial(primary), serial(secondary)), (Some(p), Some(s)) if p == s)
}

/// Waits until the named on `port` answers the SOA of every zone (the resolver through its forwarder).
fn wait_answering(daemon: &mut Daemon, lab_dir: &Path, port: u16, authoritative: bool) {
    let server = format!("127.0.0.1:{port}");
    let recurse = if authoritative { "+norecurse" } else { "+recurse" };
    daemon.wait_ready("an SOA for every zone", READY_TIMEOUT, || {
        ZONES
            .iter()
            .all(|zone| soa_serial(&dig(lab_dir, &server, &[recurse, "+short", "SOA", zone.name])).is_some())
    });
}

fn spawn_named(tools: &BindTools, name: &'static str, dir: &Path, conf: &str, logs: &Path) -> Daemon {
    let path = dir.join("named.conf");
    write_file(&path, conf, 0o644);
    let mut cmd = Command::new(&tools.named);
    // -g: foreground, log to stderr (our log file). No -u: as root, dropping to user `bind` would lose access to the
    // root-owned temp dir.
    cmd.arg("-g").arg("-c").arg(&path);
    Daemon::spawn(name, cmd, logs)
}

/// No rndc channel. Without a `controls` statement, named opens one on 127.0.0.1:953 and ::1:953 with the system's key.
const NO_CONTROLS: &str = "controls { };\n";

/// `controls` and the `options` block every named of the lab shares, with `extra` statements. The lock and session key
/// files are moved into the named's own directory: their defaults are under /run/named, shared by every named.
fn options(dir: &Path, port: u16, controls: &str, extra: &str) -> String {
    let d = dir.display();
    format!(
        "{controls}options {{
    directory \"{d}\";
    pid-file \"{d}/named.pid\";
    lock-file \"{d}/named.lock\";
    session-keyfile \"{d}/session.key\";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    dnssec-validation no;
    allow-transfer {{ 127.0.0.0/8; }};
    {extra}
}};
"
    )
}

fn zone_file(zone: &Zone) -> String {
    let z = zone.name;
    let mut text = format!("$TTL 60\n@ IN SOA ns1.{z}. hostmaster.{z}. ( 1 60 30 600 60 )\n@ IN NS ns1.{z}.\n");
    for owner in zone.a {
        text += &format!("{owner} IN A 127.0.0.1\n");
    }
    text + zone.extra
}

fn key_statement(name: &str, secret: &str) -> String {
    format!("key \"{name}\" {{\n    algorithm hmac-sha256;\n    secret \"{secret}\";\n}};\n")
}

/// 32 bytes from the kernel, in standard base64: the size tsig-keygen makes for hmac-sha256.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn generate_rndc_key(tools: &BindTools, path: &Path) {
    if path.exists() {
        return;
    }
    let mut cmd = Command::new(&tools.rndc_confgen);
    cmd.args(["-a", "-A", "hmac-sha256", "-k", RNDC_KEY_NAME, "-c"])
        .arg(path);
    let out = run_with_timeout(cmd, &path.with_extension("confgen"), TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "rndc-confgen: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn subdir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    // named writes journals (.jnl) and transferred zones here.
    fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    path
}

fn write_file(path: &Path, text: &str, mode: u32) {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    // `mode` applies only to a new file; an existing one gets it here.
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// "127.0.0.1:5300" -> ("127.0.0.1", 5300).
fn split_server(server: &str) -> (&str, u16) {
    let (host, port) = server
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{server:?} is not host:port"));
    let port = port.parse().unwrap_or_else(|_| panic!("{server:?} is not host:port"));
    (host, port)
}

/// The serial of the first `+short` SOA line (`mname rname serial refresh retry expire minimum`).
fn soa_serial(short: &str) -> Option<u32> {
    short
        .lines()
        .find_map(|line| line.split_whitespace().nth(2)?.parse().ok())
}

struct Record {
    name: String,
    kind: String,
    data: String,
}

/// Answer lines of dig (`name ttl class type data...`); comments and blank lines skipped.
fn records(out: &str) -> Vec<Record> {
    out.lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?.to_owned();
            let (_ttl, _class) = (fields.next()?, fields.next()?);
            let kind = fields.next()?.to_owned();
            let data = fields.collect::<Vec<_>>().join(" ");
            Some(Record { name, kind, data })
        })
        .collect()
}

/// A TXT record's strings, unquoted and joined (`"ab" "cd"` -> `abcd`). ACME's values are base64url, so there are no
/// escapes to undo.
fn txt_value(data: &str) -> String {
    data.split('"').skip(1).step_by(2).collect()
}
