//! Medians, ratios and targets, as the table in docs/PERFORMANCE.md shows them, and the same figures as JSON.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::responder_load::LoadResult;
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
}

impl Scenario {
    fn title(self, certs: usize) -> String {
        match self {
            Scenario::A => format!("(a) {certs} certificates, one name each, from empty"),
            Scenario::B => format!("(b) 1 certificate with {certs} names"),
            Scenario::C(n) => format!("(c) no-op run, {n} certificates on disk"),
            Scenario::D => "(d) forced renewal of 1, until served".to_owned(),
        }
    }
}

/// Every sample of one tool in one scenario.
#[derive(Debug, Serialize)]
pub struct Measured {
    pub scenario: Scenario,
    pub tool: Tool,
    /// Certificates issued (a, d) or names (b) or certificates on disk (c) per sample.
    pub certs: usize,
    pub samples: Vec<Sample>,
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
}

/// The middle value; the mean of the two middle ones for an even count.
fn median(mut values: Vec<f64>) -> Option<f64> {
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

fn verdict(ok: bool) -> &'static str {
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

    /// A peer's median wall time ÷ hapcert's.
    fn ratio(&self, scenario: Scenario, peer: Tool) -> Option<f64> {
        let ours = self.find(scenario, Tool::Hapcert)?.wall().as_secs_f64();
        Some(self.find(scenario, peer)?.wall().as_secs_f64() / ours)
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
            let cell = |tool| self.find(scenario, tool).map_or("–".to_owned(), |m| secs(m.wall()));
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
        for m in &self.measured {
            let (requests, per_cert) = match (m.requests(), m.scenario) {
                (Some(r), Scenario::A | Scenario::D) => {
                    let issued = if m.scenario == Scenario::D { 1 } else { m.certs };
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
