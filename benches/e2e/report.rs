//! Medians, ratios and targets, as the table in docs/PERFORMANCE.md shows them, and the same figures as JSON.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::fleet::FleetResults;
use crate::responder_load::LoadResult;
use crate::scale::ScaleResults;
use crate::tools::{Sample, Tool};

/// The targets of issue 6, for the full run's sizes. A quick run has smaller sizes, so they are not judged there.
const TARGET_A_WALL: Duration = Duration::from_secs(10);
const TARGET_A_VS_CERTBOT: f64 = 15.0;
const TARGET_A_VS_LEGO: f64 = 25.0;
const TARGET_REQUESTS_PER_CERT: f64 = 9.0;
const TARGET_B_WALL: Duration = Duration::from_secs(2);
const TARGET_C50_WALL: Duration = Duration::from_millis(20);
const TARGET_C50_RSS_BYTES: u64 = 12_000_000;
const TARGET_C1000_WALL: Duration = Duration::from_millis(100);
const TARGET_D_WALL: Duration = Duration::from_secs(1);
const TARGET_BINARY_BYTES: u64 = 12_000_000;
/// The targets of issue 13. (f) is judged in a quick run too: it keeps the full run's size, and so does its (a).
const TARGET_F_VS_A: f64 = 2.0;
const TARGET_G_WALL: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scenario {
    /// Many certificates, one name each, from an empty state.
    A,
    /// One certificate with many names.
    B,
    /// A run with nothing due, over this many certificates.
    C(usize),
    /// A forced renewal of one certificate, until HAProxy serves it.
    D,
    /// One certificate for an apex and its wildcard over DNS-01, from an empty state (issue 14); hapcert with its
    /// defaults, the DNS preflight included.
    H,
    /// The same with hapcert's DNS preflight turned off. The peers have no such step, so this row borrows their
    /// figures from [`Scenario::H`] and only hapcert runs in it.
    HNoPreflight,
}

impl Scenario {
    fn title(self, certs: usize) -> String {
        match self {
            Scenario::A => format!("(a) {certs} certificates, one name each, from empty"),
            Scenario::B => format!("(b) 1 certificate with {certs} names"),
            Scenario::C(n) => format!("(c) no-op run, {n} certificates on disk"),
            Scenario::D => "(d) forced renewal of 1, until served".to_owned(),
            Scenario::H => "(h) DNS-01: 1 certificate for example.test + *.example.test, from empty".to_owned(),
            Scenario::HNoPreflight => "(h) the same, hapcert with `[challenge] preflight = false`".to_owned(),
        }
    }

    /// The scenario whose peer figures this one is compared with.
    fn peers_from(self) -> Scenario {
        match self {
            Scenario::HNoPreflight => Scenario::H,
            other => other,
        }
    }
}

/// Every sample of one tool in one scenario.
#[derive(Debug, Serialize)]
pub struct Measured {
    pub scenario: Scenario,
    pub tool: Tool,
    /// Certificates issued (a, d, h) or names (b) or certificates on disk (c) per sample.
    pub certs: usize,
    pub samples: Vec<Sample>,
    /// Runs that failed (the tool exited non-zero, or left no certificate with every name, or left a challenge
    /// record behind): counted here, and kept out of the medians.
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub summary: Vec<Summary>,
    pub quick: bool,
    pub machine: String,
    pub versions: Vec<(String, String)>,
    pub binary_bytes: u64,
    pub measured: Vec<Measured>,
    pub responder: Vec<LoadResult>,
    pub fleet: Option<FleetResults>,
    pub scale: Option<ScaleResults>,
}

/// The middle value; the mean of the two middle ones for an even count.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

impl Measured {
    pub fn wall(&self) -> Duration {
        Duration::from_secs_f64(median(self.samples.iter().map(|s| s.cost.wall.as_secs_f64()).collect()).unwrap_or(0.0))
    }
    fn cpu(&self) -> Duration {
        Duration::from_secs_f64(median(self.samples.iter().map(|s| s.cost.cpu.as_secs_f64()).collect()).unwrap_or(0.0))
    }
    fn rss_bytes(&self) -> u64 {
        let kib = median(self.samples.iter().map(|s| s.cost.max_rss_kib as f64).collect()).unwrap_or(0.0);
        (kib * 1024.0) as u64
    }
    fn requests(&self) -> Option<f64> {
        median(
            self.samples
                .iter()
                .filter_map(|s| s.requests)
                .map(|r| r as f64)
                .collect(),
        )
    }
}

/// The medians of one tool in one scenario, with the ratio and target of the table: what results.json adds to the raw
/// samples.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub tool: Tool,
    pub runs: usize,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    pub ca_requests: Option<f64>,
    /// This tool's median wall time ÷ hapcert's (for the peers).
    pub times_slower_than_hapcert: Option<f64>,
    /// Runs that failed and are not in the medians.
    pub failed_runs: usize,
    /// The target of issue 6 and whether the median meets it (hapcert, full run only).
    pub target: Option<String>,
    pub met: Option<bool>,
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "**NO**" }
}

impl Results {
    fn find(&self, scenario: Scenario, tool: Tool) -> Option<&Measured> {
        self.measured.iter().find(|m| m.scenario == scenario && m.tool == tool)
    }

    fn scenarios(&self) -> Vec<(Scenario, usize)> {
        let mut seen = Vec::new();
        for m in &self.measured {
            if !seen.iter().any(|(s, _)| *s == m.scenario) {
                seen.push((m.scenario, m.certs));
            }
        }
        seen
    }

    fn version(&self, tool: Tool) -> String {
        let found = self.versions.iter().find(|(name, _)| name == tool.name());
        found.map_or_else(|| tool.name().to_owned(), |(name, v)| format!("{name} {v}"))
    }

    /// A peer's measurements for `scenario`: its own, or those of the scenario it borrows them from.
    fn find_peer(&self, scenario: Scenario, peer: Tool) -> Option<&Measured> {
        self.find(scenario, peer)
            .or_else(|| self.find(scenario.peers_from(), peer))
    }

    /// A peer's median wall time ÷ hapcert's. None where either has no successful run.
    fn ratio(&self, scenario: Scenario, peer: Tool) -> Option<f64> {
        let ours = self.find(scenario, Tool::Hapcert).filter(|m| !m.samples.is_empty())?;
        let theirs = self.find_peer(scenario, peer).filter(|m| !m.samples.is_empty())?;
        Some(theirs.wall().as_secs_f64() / ours.wall().as_secs_f64())
    }

    /// The table's figures, for results.json.
    pub fn summarize(&mut self) {
        let mut summary = Vec::new();
        for m in &self.measured {
            let judged = (m.tool == Tool::Hapcert && !self.quick)
                .then(|| self.target(m.scenario, m.certs))
                .flatten();
            summary.push(Summary {
                scenario: m.scenario.title(m.certs),
                tool: m.tool,
                runs: m.samples.len(),
                wall_seconds: m.wall().as_secs_f64(),
                cpu_seconds: m.cpu().as_secs_f64(),
                peak_rss_bytes: m.rss_bytes(),
                ca_requests: m.requests(),
                times_slower_than_hapcert: (m.tool != Tool::Hapcert)
                    .then(|| self.ratio(m.scenario, m.tool))
                    .flatten(),
                failed_runs: m.failed,
                target: judged.as_ref().map(|(text, _)| text.clone()),
                met: judged.map(|(_, ok)| ok),
            });
        }
        self.summary = summary;
    }

    /// (target text, met) of hapcert in `scenario`, judged only at the full run's sizes.
    fn target(&self, scenario: Scenario, certs: usize) -> Option<(String, bool)> {
        let ours = self.find(scenario, Tool::Hapcert)?;
        let ratio = |peer| self.ratio(scenario, peer);
        match scenario {
            Scenario::A if certs == 50 => {
                let per_cert = ours.requests().map(|r| r / certs as f64);
                let ok = ours.wall() <= TARGET_A_WALL
                    && ratio(Tool::Certbot).is_some_and(|r| r >= TARGET_A_VS_CERTBOT)
                    && ratio(Tool::Lego).is_some_and(|r| r >= TARGET_A_VS_LEGO)
                    && per_cert.is_some_and(|r| r <= TARGET_REQUESTS_PER_CERT);
                Some(("≤ 10 s, ≥ 15× certbot, ≥ 25× lego, ≤ 9 requests/cert".into(), ok))
            }
            Scenario::B if certs == 50 => Some(("≤ 2 s".into(), ours.wall() <= TARGET_B_WALL)),
            Scenario::C(50) => Some((
                "≤ 20 ms, ≤ 12 MB, 0 requests".into(),
                ours.wall() <= TARGET_C50_WALL
                    && ours.rss_bytes() <= TARGET_C50_RSS_BYTES
                    && ours.requests() == Some(0.0),
            )),
            Scenario::C(1000) => Some((
                "≤ 100 ms, 0 requests".into(),
                ours.wall() <= TARGET_C1000_WALL && ours.requests() == Some(0.0),
            )),
            Scenario::D => Some(("≤ 1 s".into(), ours.wall() <= TARGET_D_WALL)),
            // Issue 14's goal: faster than both, while checking every authoritative server.
            Scenario::H => Some((
                "faster than certbot and lego".into(),
                ours.failed == 0
                    && !ours.samples.is_empty()
                    && ratio(Tool::Certbot).is_some_and(|r| r > 1.0)
                    && ratio(Tool::Lego).is_some_and(|r| r > 1.0),
            )),
            _ => None,
        }
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let runs = self.measured.iter().map(|m| m.samples.len()).max().unwrap_or(0);
        let _ = writeln!(
            md,
            "Machine: {}. Mode: {}. Each cell is the median of its runs (up to {runs}); the tools ran in alternation.\n",
            self.machine,
            if self.quick {
                "--quick (smaller sizes, one run each: targets not judged)"
            } else {
                "full"
            }
        );
        let (certbot, lego) = (self.version(Tool::Certbot), self.version(Tool::Lego));
        let _ = writeln!(md, "### Wall time\n");
        let _ = writeln!(
            md,
            "| scenario | hapcert | {certbot} | {lego} | certbot ÷ hapcert | lego ÷ hapcert | target for hapcert | met |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---|");
        for (scenario, certs) in self.scenarios() {
            let cell = |tool| {
                let found = match tool {
                    Tool::Hapcert => self.find(scenario, tool),
                    _ => self.find_peer(scenario, tool),
                };
                found.map_or("–".to_owned(), wall_cell)
            };
            let ratio = |tool| {
                self.ratio(scenario, tool)
                    .map_or("–".to_owned(), |r| format!("{r:.1}×"))
            };
            let (target, met) = match self.target(scenario, certs) {
                Some((text, ok)) if !self.quick => (text, verdict(ok).to_owned()),
                _ => ("–".to_owned(), "–".to_owned()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {target} | {met} |",
                scenario.title(certs),
                cell(Tool::Hapcert),
                cell(Tool::Certbot),
                cell(Tool::Lego),
                ratio(Tool::Certbot),
                ratio(Tool::Lego)
            );
        }

        let _ = writeln!(md, "\n### CPU, memory and requests to the CA\n");
        let _ = writeln!(
            md,
            "| scenario | tool | runs | wall | user+sys CPU | peak RSS | CA requests | requests per certificate |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
        for m in self.measured.iter().filter(|m| !m.samples.is_empty()) {
            let (requests, per_cert) = match (m.requests(), m.scenario) {
                (Some(r), Scenario::A | Scenario::D | Scenario::H | Scenario::HNoPreflight) => {
                    let issued = if m.scenario == Scenario::A { m.certs } else { 1 };
                    (format!("{r}"), format!("{:.2}", r / issued as f64))
                }
                (Some(r), _) => (format!("{r}"), "–".to_owned()),
                (None, _) => ("not counted".to_owned(), "–".to_owned()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {requests} | {per_cert} |",
                m.scenario.title(m.certs),
                m.tool.name(),
                m.samples.len(),
                secs(m.wall()),
                secs(m.cpu()),
                mb(m.rss_bytes())
            );
        }

        let dns: Vec<&Measured> = self
            .measured
            .iter()
            .filter(|m| matches!(m.scenario, Scenario::H | Scenario::HNoPreflight))
            .collect();
        if !dns.is_empty() {
            // A median hides a tool whose runs fall in two groups (lego's first look at a challenge is either at once
            // or seconds later): every run is shown.
            let _ = writeln!(md, "\n### (h) every run, in order\n");
            let _ = writeln!(md, "| scenario | tool | wall of each successful run | failed runs |");
            let _ = writeln!(md, "|---|---|---|---:|");
            for m in dns {
                let walls: Vec<String> = m.samples.iter().map(|s| secs(s.cost.wall)).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    m.scenario.title(m.certs),
                    m.tool.name(),
                    if walls.is_empty() {
                        "–".to_owned()
                    } else {
                        walls.join(", ")
                    },
                    m.failed
                );
            }
        }

        if !self.responder.is_empty() {
            let _ = writeln!(md, "\n### (e) HTTP-01 responder under wrk (hapcert only)\n");
            let _ = writeln!(md, "| token | requests/s | p99 latency | requests | answers |");
            let _ = writeln!(md, "|---|---:|---:|---:|---|");
            for r in &self.responder {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.2} ms | {} | {} |",
                    r.tokens, r.requests_per_sec, r.p99_ms, r.requests, r.answers
                );
            }
        }

        if let Some(fleet) = &self.fleet {
            fleet_markdown(&mut md, fleet);
        }
        if let Some(scale) = &self.scale {
            crate::scale::markdown(&mut md, scale);
        }

        let binary_ok = self.binary_bytes <= TARGET_BINARY_BYTES;
        let _ = writeln!(
            md,
            "\nRelease binary (stripped, LTO): {} — target ≤ 12 MB: {}",
            mb(self.binary_bytes),
            verdict(binary_ok)
        );
        md
    }
}

/// A median, or what failed: a run that failed is not timed.
fn wall_cell(m: &Measured) -> String {
    match (m.samples.is_empty(), m.failed) {
        (_, 0) => secs(m.wall()),
        (true, n) => format!("**failed** ({n} of {n} runs)"),
        (false, n) => format!("{} (**{n} failed**, not counted)", secs(m.wall())),
    }
}

pub fn seconds_cell(values: &[f64]) -> (String, String) {
    let Some(mid) = median(values.to_vec()) else {
        return ("–".to_owned(), "–".to_owned());
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let spread = format!(
        "{} – {}",
        secs(Duration::from_secs_f64(min)),
        secs(Duration::from_secs_f64(max))
    );
    (secs(Duration::from_secs_f64(mid)), spread)
}

/// The fleet's table: (f) with its (a) and their ratio, (g), and the idle node's requests to etcd by kind.
fn fleet_markdown(md: &mut String, fleet: &FleetResults) {
    let _ = writeln!(md, "\n### Fleet: 3 nodes, one etcd cluster (hapcert only)\n");
    let _ = writeln!(md, "| scenario | runs | median | min – max | also | target | met |");
    let _ = writeln!(md, "|---|---:|---:|---|---|---|---|");
    let certs = fleet.certs;
    if !fleet.f_seconds.is_empty() {
        let (f, f_spread) = seconds_cell(&fleet.f_seconds);
        let (a, a_spread) = seconds_cell(&fleet.a_seconds);
        let ratio = median(fleet.f_seconds.clone())
            .zip(median(fleet.a_seconds.clone()))
            .map(|(f, a)| f / a);
        let per_cert: Vec<String> = fleet
            .f_orders
            .iter()
            .map(|&o| format!("{:.2}", o as f64 / certs as f64))
            .collect();
        let once = fleet.f_orders.iter().all(|&o| o == certs);
        let ok = once && ratio.is_some_and(|r| r <= TARGET_F_VS_A);
        let _ = writeln!(
            md,
            "| (f) {certs} certificates, 3 nodes from an empty store, until every node serves every one | {} | {f} | \
             {f_spread} | orders per certificate: {} | ≤ 2× (a), exactly 1.00 order per certificate | {} |",
            fleet.f_seconds.len(),
            per_cert.join(", "),
            verdict(ok)
        );
        let _ = writeln!(
            md,
            "| (a) the same {certs} for hapcert alone, alternated with (f) | {} | {a} | {a_spread} | (f) ÷ (a): {} | – | – |",
            fleet.a_seconds.len(),
            ratio.map_or("–".to_owned(), |r| format!("{r:.2}×"))
        );
    }
    if !fleet.g_seconds.is_empty() {
        let (g, g_spread) = seconds_cell(&fleet.g_seconds);
        let ok = median(fleet.g_seconds.clone()).is_some_and(|m| m <= TARGET_G_WALL.as_secs_f64())
            && fleet.g_orders.iter().all(|&o| o == 1);
        let orders: Vec<String> = fleet.g_orders.iter().map(usize::to_string).collect();
        let _ = writeln!(
            md,
            "| (g) `renew --force` on node 2, until all 3 nodes serve the new serial | {} | {g} | {g_spread} | orders \
             per renewal: {} | ≤ 1.5 s, 1 order | {} |",
            fleet.g_seconds.len(),
            orders.join(", "),
            verdict(ok)
        );
    }
    if let Some(idle) = &fleet.idle {
        let total = idle.total();
        let _ = writeln!(
            md,
            "| (i) idle node 2: requests to etcd, {:.0} s window, lease_ttl {:.0} s | 1 | {total} in the window | – | \
             {:.0} per hour; {} connection(s) opened | the watch, the lease keep-alive and the 5-minute reconcile; \
             no polling | – |",
            idle.window_seconds,
            idle.lease_ttl_seconds,
            idle.per_hour(total),
            idle.connections
        );
        let _ = writeln!(
            md,
            "\n| node 2's requests to etcd, by gateway path | from its start to the window ({} connection(s)) | in the \
             window | per hour, idle |",
            idle.connections_before_window
        );
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let paths: BTreeSet<&String> = idle.requests.keys().chain(idle.before_window.keys()).collect();
        for path in paths {
            let count = idle.requests.get(path).copied().unwrap_or(0);
            let before = idle.before_window.get(path).copied().unwrap_or(0);
            let _ = writeln!(md, "| `{path}` | {before} | {count} | {:.0} |", idle.per_hour(count));
        }
    }
}
