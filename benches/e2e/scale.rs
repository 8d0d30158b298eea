//! (j), the "at scale" item of issue 15: a mass revocation makes every certificate due at once. 1,000 certificates,
//! one name each, issued by Pebble and served by one HAProxy from its crt directory, are renewed by one
//! `hapcert renew --force` (what an operator runs when the CA announces the revocation), timed from the command's start
//! until a verifying handshake with every name shows the new serial. Twice per run: through the Runtime API (hot
//! updates), and on the reload path (no admin socket, no `runtime_api`: the check command, then one reload).
//!
//! The issuance that puts the 1,000 certificates in place is not timed. The per-step costs come from the timestamps of
//! hapcert's own log lines (info level, as in every other scenario), read after the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::Sandbox;
use crate::report::{median, seconds_cell, verdict};
use crate::tools::{Bench, Tool, cert_name, domain};

/// Issue 15's target, through the Runtime API, for 1,000 certificates on the 2-core machine.
const TARGET_RUNTIME_API: Duration = Duration::from_secs(60);
/// On the reload path: the whole batch in one reload.
const TARGET_RELOADS: usize = 1;
/// A name whose new certificate is not served yet is asked again after this: the poller runs while hapcert does, and
/// must not take much of the machine from it.
const POLL: Duration = Duration::from_millis(20);
/// After hapcert exits (it has verified every certificate on the wire by then), every name must show its new serial
/// within this.
const SERVED_AFTER_EXIT: Duration = Duration::from_secs(30);

pub struct ScalePlan {
    pub certs: usize,
    pub runs: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Path {
    RuntimeApi,
    Reload,
}

impl Path {
    fn title(self) -> &'static str {
        match self {
            Path::RuntimeApi => "Runtime API (hot update)",
            Path::Reload => "reload path (no Runtime API)",
        }
    }
}

/// One timed renewal of the whole batch.
#[derive(Debug, Serialize)]
pub struct ScaleRun {
    pub path: Path,
    /// From the command's start until the last name showed its new serial.
    pub served_seconds: f64,
    /// The command's own wall time, user+sys CPU and peak RSS.
    pub command_seconds: f64,
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
    /// Reloads HAProxy's master counted during the command (`show proc`).
    pub reloads: usize,
    /// Certificates Pebble issued during the command.
    pub orders: usize,
    pub requests: Option<u64>,
    /// Seconds per step, from hapcert's log (see [`steps`]).
    pub steps: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct ScaleResults {
    pub certs: usize,
    pub runs: Vec<ScaleRun>,
}

/// The steps, in the order a run goes through them, as [`steps`] names them.
const STEPS: [(&str, &str); 7] = [
    (
        "start",
        "start to the first order: config, state, ARI windows, survey, the verify endpoints' preflight",
    ),
    (
        "issuance",
        "issuance: orders, HTTP-01, finalize, download, check of each certificate",
    ),
    (
        "write",
        "writing the backups and the new PEMs (temp files synced, renamed, each directory synced once)",
    ),
    (
        "set_commit",
        "hot update: `set ssl cert` + `commit ssl cert` (with the `show ssl cert` around them)",
    ),
    ("check", "the config check (`haproxy -c`)"),
    ("reload", "the reload, until a new worker runs"),
    (
        "verify",
        "the verify handshakes (and `show ssl cert` per certificate on the Runtime API)",
    ),
];
/// The rest of the command's wall time: before its first log line, and after the last verify.
const AFTER: (&str, &str) = (
    "after",
    "the rest: reading the config, state and files before the first log line; after the last verify, the state, the \
     new certificates' ARI windows, the metrics",
);

pub fn run(plan: &ScalePlan) -> ScaleResults {
    let mut results = ScaleResults {
        certs: plan.certs,
        runs: Vec::new(),
    };
    for run in 1..=plan.runs {
        for path in [Path::RuntimeApi, Path::Reload] {
            eprintln!(
                "== (j) {} certificates due at once, {}, run {run}/{}",
                plan.certs,
                path.title(),
                plan.runs
            );
            let one = renew_all(plan.certs, path);
            eprintln!(
                "   served {:.3} s (command {:.3} s, cpu {:.3} s), {} reload(s), {} orders; steps {:?}",
                one.served_seconds, one.command_seconds, one.cpu_seconds, one.reloads, one.orders, one.steps
            );
            results.runs.push(one);
        }
    }
    results
}

fn renew_all(count: usize, path: Path) -> ScaleRun {
    let names: Vec<usize> = (0..count).collect();
    let sb = Sandbox::start();
    let bench = Bench::new(&sb, Tool::Hapcert);
    // The certificates as they were before the revocation: issued and served (untimed).
    let started = Instant::now();
    bench.issue_each(&names);
    eprintln!(
        "   {count} certificates issued and served in {:.1} s (untimed)",
        started.elapsed().as_secs_f64()
    );
    if path == Path::Reload {
        // A host without a runtime API: no admin socket in haproxy.cfg, no `runtime_api` or `master_socket` in
        // hapcert's config, so hapcert's deploy is its check command and reload command.
        sb.remove_admin_socket();
        sb.write_config_text(&(sb.base_config() + &certificate_tables(&names)));
    }
    let before: Vec<(String, String)> = names
        .iter()
        .map(|&i| {
            let sni = domain(i);
            let serial = sb
                .served_serial(&sni)
                .unwrap_or_else(|| panic!("(j): expected HAProxy to serve {sni} before the renewal"));
            (sni, serial)
        })
        .collect();
    let reloads_before = master_reloads(&sb);
    let orders_before = issued(&sb);

    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (sample, served_at) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| poll_served(&sb, &before, started, &done));
        let sample = bench.hapcert(&["renew", "--force"]);
        done.store(true, Ordering::Relaxed);
        (sample, poller.join().expect("the poller panicked"))
    });
    let log = std::fs::read_to_string(bench.last_log().with_extension("stderr")).unwrap_or_default();
    ScaleRun {
        path,
        served_seconds: served_at.as_secs_f64(),
        command_seconds: sample.cost.wall.as_secs_f64(),
        cpu_seconds: sample.cost.cpu.as_secs_f64(),
        max_rss_kib: sample.cost.max_rss_kib,
        reloads: master_reloads(&sb) - reloads_before,
        orders: issued(&sb) - orders_before,
        requests: sample.requests,
        steps: steps(&log, sample.cost.wall.as_secs_f64()),
    }
}

/// Walks the names in config order, the order hapcert deploys them in, asking each until it shows a serial other than
/// the one before; returns when the last one does. Before hapcert's deploy starts, that is one handshake per `POLL`.
fn poll_served(sb: &Sandbox, before: &[(String, String)], started: Instant, done: &AtomicBool) -> Duration {
    let mut exited_at = None;
    for (sni, old) in before {
        loop {
            match sb.served_serial(sni) {
                Some(serial) if serial != *old => break,
                _ => {}
            }
            if done.load(Ordering::Relaxed) {
                let exited = *exited_at.get_or_insert_with(Instant::now);
                assert!(
                    exited.elapsed() < SERVED_AFTER_EXIT,
                    "(j): hapcert has exited, and HAProxy still serves serial {old} for {sni} after {SERVED_AFTER_EXIT:?}"
                );
            }
            std::thread::sleep(POLL);
        }
    }
    started.elapsed()
}

fn certificate_tables(names: &[usize]) -> String {
    names
        .iter()
        .map(|&i| {
            format!(
                "\n[[certificate]]\nname = \"{}\"\ndomains = [\"{}\"]\n",
                cert_name(i),
                domain(i)
            )
        })
        .collect()
}

/// Pebble's `Issued certificate serial` lines: one per finalized order.
fn issued(sb: &Sandbox) -> usize {
    sb.pebble_log().matches("Issued certificate serial ").count()
}

/// The master's reload counter, from `show proc` on its socket: the `<reloads>` column of the `master` line.
fn master_reloads(sb: &Sandbox) -> usize {
    let sock = sb.haproxy_master_sock();
    let ask = || -> std::io::Result<String> {
        let mut stream = UnixStream::connect(&sock)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"show proc\n")?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    };
    // The master socket refuses connections for a moment after a reload.
    let deadline = Instant::now() + Duration::from_secs(5);
    let reply = loop {
        match ask() {
            Ok(reply) => break reply,
            Err(e) if Instant::now() > deadline => panic!("show proc on {}: {e}", sock.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    reply
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&"master")).then(|| fields.get(2)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no master line with a reload count in `show proc`:\n{reply}"))
}

/// Seconds per step of one run, from the timestamps of hapcert's log lines (tracing's RFC 3339, to the microsecond):
/// the first line, the first `ordering`, the batch's `writing` and `written` lines, the `hot update committed` lines
/// (Runtime API) or the check's and the reload's lines (reload path), and the `deployed and verified` lines. The last
/// step is the rest of the command's wall time, so what comes before the first line (reading the config, the state and
/// the certificate files) is counted there.
fn steps(log: &str, command_seconds: f64) -> BTreeMap<String, f64> {
    let stamped: Vec<(OffsetDateTime, &str)> = log
        .lines()
        .filter_map(|line| {
            let (stamp, rest) = line.split_once(' ')?;
            Some((OffsetDateTime::parse(stamp, &Rfc3339).ok()?, rest))
        })
        .collect();
    let mut out = BTreeMap::new();
    let Some(&(first, _)) = stamped.first() else {
        return out;
    };
    let at = |t: OffsetDateTime| (t - first).as_seconds_f64();
    let first_of = |words: &str| stamped.iter().find(|(_, l)| l.contains(words)).map(|(t, _)| at(*t));
    let last_of = |words: &str| {
        stamped
            .iter()
            .rev()
            .find(|(_, l)| l.contains(words))
            .map(|(t, _)| at(*t))
    };
    let ordering = first_of(" ordering");
    let writing = first_of("writing the new certificate files");
    let written = first_of("certificate files written");
    let applied = last_of("hot update committed").or_else(|| last_of("HAProxy reloaded"));
    let verified = last_of("deployed and verified on the wire");
    let mut put = |name: &str, from: Option<f64>, to: Option<f64>| {
        if let (Some(from), Some(to)) = (from, to) {
            out.insert(name.to_owned(), (to - from).max(0.0));
        }
    };
    put("start", Some(0.0), ordering);
    put("issuance", ordering, writing);
    put("write", writing, written);
    match last_of("HAProxy config check passed") {
        Some(checked) => {
            put("check", written, Some(checked));
            put("reload", Some(checked), last_of("HAProxy reloaded"));
        }
        None => put("set_commit", written, applied),
    }
    put("verify", applied, verified);
    put("after", verified, Some(command_seconds));
    out
}

/// The section of results.md: one row per path, then the per-step costs per certificate.
pub fn markdown(md: &mut String, results: &ScaleResults) {
    let certs = results.certs;
    let _ = writeln!(md, "\n### (j) {certs} certificates due at once (hapcert only)\n");
    let _ = writeln!(
        md,
        "| path | runs | median until all served | min – max | command | CPU | peak RSS | reloads | orders | target | met |"
    );
    let _ = writeln!(md, "|---|---:|---:|---|---:|---:|---:|---|---|---|---|");
    for path in [Path::RuntimeApi, Path::Reload] {
        let runs: Vec<&ScaleRun> = results.runs.iter().filter(|r| r.path == path).collect();
        if runs.is_empty() {
            continue;
        }
        let served: Vec<f64> = runs.iter().map(|r| r.served_seconds).collect();
        let (mid, spread) = seconds_cell(&served);
        let med = |f: fn(&ScaleRun) -> f64| median(runs.iter().map(|r| f(r)).collect()).unwrap_or(0.0);
        let reloads: Vec<String> = runs.iter().map(|r| r.reloads.to_string()).collect();
        let orders_ok = runs.iter().all(|r| r.orders == certs);
        let (target, ok) = match path {
            Path::RuntimeApi => (
                format!("≤ {} s, no reload", TARGET_RUNTIME_API.as_secs()),
                median(served.clone()).is_some_and(|m| m <= TARGET_RUNTIME_API.as_secs_f64())
                    && runs.iter().all(|r| r.reloads == 0),
            ),
            Path::Reload => (
                format!("≤ {TARGET_RELOADS} reload"),
                runs.iter().all(|r| r.reloads <= TARGET_RELOADS),
            ),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {mid} | {spread} | {:.2} s | {:.2} s | {:.1} MB | {} | {} | {target} | {} |",
            path.title(),
            runs.len(),
            med(|r| r.command_seconds),
            med(|r| r.cpu_seconds),
            med(|r| r.max_rss_kib as f64) * 1024.0 / 1e6,
            reloads.join(", "),
            if orders_ok {
                format!("{certs} each run")
            } else {
                "**not one per certificate**".to_owned()
            },
            verdict(ok && orders_ok)
        );
    }
    let _ = writeln!(
        md,
        "\n| step (median of the runs) | Runtime API: total | per certificate | reload path: total | per certificate |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for (key, title) in STEPS.iter().chain(std::iter::once(&AFTER)) {
        let cell = |path: Path| {
            let values: Vec<f64> = results
                .runs
                .iter()
                .filter(|r| r.path == path)
                .filter_map(|r| r.steps.get(*key).copied())
                .collect();
            match median(values) {
                Some(total) => format!("{total:.2} s | {:.2} ms", total * 1000.0 / certs as f64),
                None => "– | –".to_owned(),
            }
        };
        let _ = writeln!(md, "| {title} | {} | {} |", cell(Path::RuntimeApi), cell(Path::Reload));
    }
}
