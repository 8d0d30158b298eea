//! (h) of issue 14: one certificate for `example.test` and `*.example.test` over DNS-01, from an empty state, by hapcert,
//! certbot (`dns-rfc2136`) and lego (`rfc2136`), against the same kind of lab: the tests' BIND 9 primary taking
//! TSIG-signed updates, a secondary it notifies at once, and a resolver in front of Pebble (tests/harness/bind.rs).
//!
//! Every tool gets a fresh sandbox for every run, and runs with the smallest propagation wait with which it still
//! succeeds here (docs/PERFORMANCE.md says how each was found). A run counts only when the tool exited 0, left a
//! certificate with both names, and left no `_acme-challenge` TXT on the primary or on the secondary; any other run is
//! counted as failed and not timed.
//!
//! The peers' waits can be changed for finding those smallest values again (not for published figures):
//! `HAPCERT_BENCH_CERTBOT_PROPAGATION_SECONDS`, `HAPCERT_BENCH_LEGO_POLLING_INTERVAL` and
//! `HAPCERT_BENCH_LEGO_SEQUENCE_INTERVAL` (whole seconds, as the tools take them).

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    DnsLab, DnsLabOptions, Sandbox, SandboxOptions, Secondary, leaf_der_from_pem_file, san_dns_names,
};
use crate::record_outcome;
use crate::report::{Measured, Scenario};
use crate::tools::{Bench, Sample, Tool};

const APEX: &str = "example.test";
const WILDCARD: &str = "*.example.test";
const ZONE: &str = "example.test";
/// The certificate's name in hapcert and certbot: hapcert writes `<name>.pem`, certbot `live/<name>/`.
const CERT_NAME: &str = "example.test";

/// certbot's `--dns-rfc2136-propagation-seconds`: a plain sleep between its update and telling the CA. 0 succeeds
/// here, because Pebble asks a resolver that forwards to the primary, which has the record as soon as it answered the
/// update.
const CERTBOT_PROPAGATION_SECONDS: u64 = 0;
/// lego's `RFC2136_POLLING_INTERVAL`: lego sleeps one interval before its first propagation check, whatever the check
/// is, so this is a sleep per authorization. 0 succeeds here, for the reason above.
const LEGO_POLLING_INTERVAL: u64 = 0;
/// lego's `RFC2136_SEQUENCE_INTERVAL`: its rfc2136 provider solves one authorization at a time (its update replaces the
/// whole TXT RRset, so apex and wildcard could not be present together) and sleeps this long between them. 0 failed in
/// 4 runs of 5 ("Correct value not found for DNS challenge" for the second name): the resolver in front of Pebble keeps
/// an answer for up to a second, so the CA was still given the first authorization's value, which lego had replaced.
/// 1 covers that cache, and succeeded every time.
const LEGO_SEQUENCE_INTERVAL: u64 = 1;

/// What runs in (h): hapcert twice (with its DNS preflight, its default, and without), and the two peers.
#[derive(Clone, Copy)]
enum Contender {
    Hapcert { preflight: bool },
    Peer(Tool),
}

impl Contender {
    fn scenario(self) -> Scenario {
        match self {
            Contender::Hapcert { preflight: false } => Scenario::HNoPreflight,
            _ => Scenario::H,
        }
    }

    fn tool(self) -> Tool {
        match self {
            Contender::Hapcert { .. } => Tool::Hapcert,
            Contender::Peer(tool) => tool,
        }
    }
}

/// (h), `runs` times, the contenders in alternation so that a slow minute on the machine falls on all of them.
pub fn scenario_h(runs: usize, tools: &[Tool]) -> Vec<Measured> {
    let contenders: Vec<Contender> = tools
        .iter()
        .flat_map(|&tool| match tool {
            Tool::Hapcert => vec![
                Contender::Hapcert { preflight: true },
                Contender::Hapcert { preflight: false },
            ],
            peer => vec![Contender::Peer(peer)],
        })
        .collect();
    let mut measured = Vec::new();
    for run in 1..=runs {
        eprintln!("== (h) DNS-01, {APEX} + {WILDCARD} from empty, run {run}/{runs}");
        for &contender in &contenders {
            // A lab that does not start is the bench's failure, not the tool's: that panics here.
            let sb = Sandbox::start_with(SandboxOptions {
                dns: Some(DnsLabOptions {
                    secondary: Some(Secondary::Notified),
                }),
                ..Default::default()
            });
            let bench = Bench::new(&sb, contender.tool());
            let outcome = catch_unwind(AssertUnwindSafe(|| issue_and_check(&bench, contender))).map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned())
            });
            record_outcome(&mut measured, contender.scenario(), contender.tool(), 1, outcome);
        }
    }
    measured
}

/// One timed issuance, then the untimed checks that make it count.
fn issue_and_check(bench: &Bench, contender: Contender) -> Sample {
    let lab = bench.sb.dns();
    let (sample, pem) = match contender {
        Contender::Hapcert { preflight } => (
            hapcert(bench, lab, preflight),
            bench.sb.cert_dir().join("example.test.pem"),
        ),
        Contender::Peer(Tool::Certbot) => (
            certbot(bench, lab),
            bench
                .sb
                .certbot_config_dir()
                .join("live")
                .join(CERT_NAME)
                .join("cert.pem"),
        ),
        // lego names its files after the first domain.
        Contender::Peer(Tool::Lego) => (
            lego(bench, lab),
            bench.lego_dir().join("certificates").join(format!("{APEX}.crt")),
        ),
        Contender::Peer(Tool::Hapcert) => unreachable!("hapcert is not its own peer"),
    };
    let names: BTreeSet<String> = san_dns_names(&leaf_der_from_pem_file(&pem)).into_iter().collect();
    let wanted: BTreeSet<String> = [APEX, WILDCARD].map(str::to_owned).into();
    assert_eq!(names, wanted, "the names of {}", pem.display());
    // The secondary hears of the last cleanup by NOTIFY a moment after the tool exits, and once in the first 50 runs it
    // missed one and kept serving the record the primary had deleted (the zone's own refresh comes only a minute
    // later). A record only the secondary still serves was not left by the tool: make it transfer now, so that what
    // is left is what the primary holds.
    lab.refresh_secondary(ZONE);
    let leftovers = lab.challenge_leftovers();
    assert!(leftovers.is_empty(), "challenge records left behind: {leftovers:?}");
    sample
}

/// hapcert as an operator would configure it for this zone: updates to the primary, and the check against the
/// primary and the secondary, named in `nameservers` because the zone's NS records name port-53 servers that do not
/// exist here. Propagation timeout and interval are left at their defaults.
fn hapcert(bench: &Bench, lab: &DnsLab, preflight: bool) -> Sample {
    let secret = bench.sb.dir().join("tsig.secret");
    lab.write_secret_file(&secret);
    let mut nameservers = vec![format!("{:?}", lab.primary())];
    nameservers.extend(lab.secondary().map(|s| format!("{s:?}")));
    let mut config = bench.hapcert_base_config();
    if !preflight {
        config = config.replacen("[challenge]\n", "[challenge]\npreflight = false\n", 1);
    }
    config += &format!(
        "\n[[dns_provider]]\nname = \"bind\"\nkind = \"rfc2136\"\nserver = {:?}\ntsig_key_name = {:?}\n\
         tsig_secret_file = {:?}\nnameservers = [{}]\n\
         \n[[certificate]]\nname = {CERT_NAME:?}\ndomains = [{APEX:?}, {WILDCARD:?}]\nchallenge = \"dns-01\"\n",
        lab.primary(),
        lab.key_name(),
        secret,
        nameservers.join(", ")
    );
    bench.sb.write_config_text(&config);
    bench.hapcert(&["run"])
}

/// certbot 2.1 with Debian's `python3-certbot-dns-rfc2136`: the credentials file its documentation shows, sent to the
/// primary. The algorithm must be in capitals: certbot 2.1 reads `hmac-sha256` as unknown and falls back to HMAC-MD5.
fn certbot(bench: &Bench, lab: &DnsLab) -> Sample {
    let (host, port) = lab
        .primary()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .expect("host:port");
    let ini = write_private(
        &bench.sb.dir().join("rfc2136.ini"),
        &format!(
            "dns_rfc2136_server = {host}\ndns_rfc2136_port = {port}\ndns_rfc2136_name = {}\n\
             dns_rfc2136_secret = {}\ndns_rfc2136_algorithm = HMAC-SHA256\n",
            lab.key_name(),
            lab.secret_base64()
        ),
    );
    let seconds = knob("HAPCERT_BENCH_CERTBOT_PROPAGATION_SECONDS", CERTBOT_PROPAGATION_SECONDS).to_string();
    let ini = ini.display().to_string();
    bench.certbot(&[
        "certonly",
        "--dns-rfc2136",
        "--dns-rfc2136-credentials",
        &ini,
        "--dns-rfc2136-propagation-seconds",
        &seconds,
        "--cert-name",
        CERT_NAME,
        "-d",
        APEX,
        "-d",
        WILDCARD,
    ])
}

/// lego 4.9.1's rfc2136 provider, updates to the primary. `--dns.disable-cp` because lego's own check cannot work
/// here: it looks up the zone's NS names (ns1.example.test) with the system resolver and asks them on port 53, where no
/// server runs, and gives up after its propagation timeout. With the flag, lego sends one TXT query to
/// `--dns.resolvers` and does not look at the answer: it checks nothing.
fn lego(bench: &Bench, lab: &DnsLab) -> Sample {
    let directory = bench.sb.acme_directory();
    let resolver = lab.resolver();
    let mut cmd = Command::new("lego");
    cmd.args(["--server", &directory, "--accept-tos", "--email", "ops@example.com"])
        .args(["--dns", "rfc2136", "--dns.resolvers", &resolver, "--dns.disable-cp"])
        .arg("--path")
        .arg(bench.lego_dir())
        .args(["-d", APEX, "-d", WILDCARD, "run"])
        .env("LEGO_CA_CERTIFICATES", bench.sb.pebble_listener_ca())
        .env("RFC2136_NAMESERVER", lab.primary())
        .env("RFC2136_TSIG_KEY", lab.key_name())
        // lego takes the algorithm as a DNS name, final dot included.
        .env("RFC2136_TSIG_ALGORITHM", "hmac-sha256.")
        .env("RFC2136_TSIG_SECRET", lab.secret_base64())
        .env(
            "RFC2136_POLLING_INTERVAL",
            knob("HAPCERT_BENCH_LEGO_POLLING_INTERVAL", LEGO_POLLING_INTERVAL).to_string(),
        )
        .env(
            "RFC2136_SEQUENCE_INTERVAL",
            knob("HAPCERT_BENCH_LEGO_SEQUENCE_INTERVAL", LEGO_SEQUENCE_INTERVAL).to_string(),
        );
    bench.timed("lego", cmd)
}

/// A whole number of seconds from the environment, or the bench's value.
fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number of seconds")),
        Err(_) => default,
    }
}

/// Credentials for a peer, mode 0600 as both tools ask of a file with a secret.
fn write_private(path: &Path, text: &str) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_owned()
}
