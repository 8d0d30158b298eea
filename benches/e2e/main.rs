//! The end-to-end benchmark of issue 6: hapcert against certbot and lego on the same machine, in one run, each in a
//! sandbox of its own (Pebble 2.6 with `PEBBLE_VA_NOSLEEP=1`, nonce rejection 0, authorization reuse 0, and HAProxy 2.6,
//! from the test harness). `scripts/bench` installs the tools and runs it; this file only measures and reports.
//!
//! The fleet scenarios of issue 13 ((f), (g), and the idle load (i)) are hapcert's alone: see [`fleet`]. DNS-01 (h), of
//! issue 14, runs the three tools against a BIND 9 lab instead of Pebble's DNS helper: see [`dns`]. (j), 1,000
//! certificates due at once (issue 15), is hapcert's alone too: see [`scale`].
//!
//! `cargo bench --bench e2e -- [--quick] [--only a,b,c,d,e,f,g,h,i,j]`. Under `cargo test` it does nothing: it is a benchmark,
//! and the test suite holds no timing.

mod dns;
mod etcd_proxy;
mod fleet;
#[path = "../../tests/harness/mod.rs"]
mod harness;
mod measure;
mod report;
mod responder_load;
mod scale;
mod tools;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::Sandbox;
use report::{Measured, Results, Scenario};
use tools::{Bench, Tool};

struct Options {
    quick: bool,
    only: Option<Vec<String>>,
    /// Tools to run; all three unless `--tools` narrows it (for working on one tool, not for published figures).
    tools: Vec<Tool>,
    out: PathBuf,
}

/// Sizes and repetitions: the issue's for a full run; a quick run keeps every scenario and tool but fewer certificates
/// in (a) and (b) and one run each.
struct Plan {
    certs_a: usize,
    names_b: usize,
    noop_sizes: [usize; 2],
    runs_slow: usize,
    runs_fast: usize,
    /// Runs of (h): each tool issues from an empty state in a fresh sandbox every time.
    runs_h: usize,
    wrk_duration: Duration,
    fleet: fleet::FleetPlan,
    scale: scale::ScalePlan,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("e2e is a benchmark, not a test: run scripts/bench (or cargo bench --bench e2e)");
        return;
    }
    let options = parse(&args);
    let plan = if options.quick {
        Plan {
            certs_a: 5,
            names_b: 5,
            noop_sizes: [50, 1000],
            runs_slow: 1,
            runs_fast: 1,
            runs_h: 1,
            wrk_duration: Duration::from_secs(2),
            // (f) keeps the full run's 50 certificates, once: its figure is a ratio to (a) at the same size.
            fleet: fleet::FleetPlan {
                certs: 50,
                runs_f: 1,
                runs_g: 5,
                idle_window: Duration::from_secs(60),
            },
            scale: scale::ScalePlan {
                certs: scale_certs(100),
                runs: 1,
            },
        }
    } else {
        Plan {
            certs_a: 50,
            names_b: 50,
            noop_sizes: [50, 1000],
            runs_slow: 3,
            runs_fast: 5,
            // Seven rather than five: lego's runs fall in two groups seconds apart, and the median needs more of them.
            runs_h: 7,
            wrk_duration: Duration::from_secs(10),
            // The idle window covers the 5-minute reconcile and probe once: they come 300 s after the daemon starts,
            // and the window opens about 15 s after.
            fleet: fleet::FleetPlan {
                certs: 50,
                runs_f: 3,
                runs_g: 7,
                idle_window: Duration::from_secs(330),
            },
            // Three: each run issues the 1,000 twice (untimed) and renews them twice, about 5 minutes in all.
            scale: scale::ScalePlan {
                certs: scale_certs(1000),
                runs: 3,
            },
        }
    };
    let wanted = |s: &str| options.only.as_ref().is_none_or(|only| only.iter().any(|o| o == s));
    let versions = versions();
    let mut measured = Vec::new();

    if wanted("a") || wanted("c") {
        let (a, last) = scenario_a(&plan, &options.tools);
        if wanted("a") {
            measured.extend(a);
        }
        if wanted("c") {
            let issued: Vec<usize> = (0..plan.certs_a).collect();
            measured.extend(scenario_c(&plan, &last, &issued));
        }
    }
    if wanted("b") {
        measured.extend(scenario_b(&plan, &options.tools));
    }
    if wanted("d") {
        measured.extend(scenario_d(&plan, &options.tools));
    }
    if wanted("h") {
        measured.extend(dns::scenario_h(plan.runs_h, &options.tools));
    }
    let responder = if wanted("e") {
        eprintln!("== (e) the HTTP-01 responder under wrk");
        fs_create(&options.out);
        responder_load::run(plan.wrk_duration, &options.out.join("responder.log"))
    } else {
        Vec::new()
    };

    let fleet = (wanted("f") || wanted("g") || wanted("i")).then(|| fleet::run(&plan.fleet, wanted));
    let scale = wanted("j").then(|| scale::run(&plan.scale));

    let mut results = Results {
        summary: Vec::new(),
        quick: options.quick,
        machine: machine(),
        versions,
        binary_bytes: std::fs::metadata(env!("CARGO_BIN_EXE_hapcert")).map_or(0, |m| m.len()),
        measured,
        responder,
        fleet,
        scale,
    };
    results.summarize();
    let markdown = results.markdown();
    println!("\n{markdown}");
    fs_create(&options.out);
    let md_path = options.out.join("results.md");
    let json_path = options.out.join("results.json");
    std::fs::write(&md_path, &markdown).expect("write results.md");
    std::fs::write(
        &json_path,
        serde_json::to_vec_pretty(&results).expect("results serialize"),
    )
    .expect("write json");
    println!("written: {} and {}", md_path.display(), json_path.display());
}

fn parse(args: &[String]) -> Options {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let mut options = Options {
        quick: false,
        only: None,
        tools: Tool::ALL.to_vec(),
        out: target.join("bench"),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--bench" => {}
            "--quick" => options.quick = true,
            "--only" => {
                let list = rest.next().expect("--only needs a list such as a,c");
                options.only = Some(list.split(',').map(str::to_owned).collect());
            }
            "--tools" => {
                let list = rest.next().expect("--tools needs a list such as hapcert,certbot");
                options.tools = Tool::ALL
                    .into_iter()
                    .filter(|t| list.split(',').any(|n| n == t.name()))
                    .collect();
            }
            "--out" => options.out = PathBuf::from(rest.next().expect("--out needs a directory")),
            other => panic!(
                "unknown argument {other:?}; use --quick, --only a,b,c,d,e,f,g,h,i,j, --tools hapcert,certbot,lego, --out DIR"
            ),
        }
    }
    options
}

/// (j)'s count: `default`, or `HAPCERT_BENCH_SCALE_CERTS` (for working on it with fewer; not for published figures).
fn scale_certs(default: usize) -> usize {
    std::env::var("HAPCERT_BENCH_SCALE_CERTS")
        .ok()
        .map(|n| n.parse().expect("HAPCERT_BENCH_SCALE_CERTS is a count of certificates"))
        .unwrap_or(default)
}

fn fs_create(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
}

fn record(measured: &mut Vec<Measured>, scenario: Scenario, tool: Tool, certs: usize, sample: tools::Sample) {
    record_outcome(measured, scenario, tool, certs, Ok(sample));
}

/// A run's sample, or the reason it failed: a failed run is counted, not timed.
fn record_outcome(
    measured: &mut Vec<Measured>,
    scenario: Scenario,
    tool: Tool,
    certs: usize,
    outcome: Result<tools::Sample, String>,
) {
    let sample = match outcome {
        Ok(sample) => sample,
        Err(why) => {
            eprintln!("   {} FAILED: {why}", tool.name());
            match measured.iter_mut().find(|m| m.scenario == scenario && m.tool == tool) {
                Some(m) => m.failed += 1,
                None => measured.push(Measured {
                    scenario,
                    tool,
                    certs,
                    samples: Vec::new(),
                    failed: 1,
                }),
            }
            return;
        }
    };
    eprintln!(
        "   {} {}: {:.3} s, cpu {:.3} s, rss {} KiB, requests {:?}",
        tool.name(),
        certs,
        sample.cost.wall.as_secs_f64(),
        sample.cost.cpu.as_secs_f64(),
        sample.cost.max_rss_kib,
        sample.requests
    );
    match measured.iter_mut().find(|m| m.scenario == scenario && m.tool == tool) {
        Some(m) => m.samples.push(sample),
        None => measured.push(Measured {
            scenario,
            tool,
            certs,
            samples: vec![sample],
            failed: 0,
        }),
    }
}

/// (a), alternating the tools run by run. Each run gets a fresh sandbox, so each starts from an empty state; the last
/// run's sandboxes are kept, with what was issued, for (c).
fn scenario_a(plan: &Plan, tools: &[Tool]) -> (Vec<Measured>, Vec<(Tool, Sandbox)>) {
    let names: Vec<usize> = (0..plan.certs_a).collect();
    let mut measured = Vec::new();
    let mut last = Vec::new();
    for run in 1..=plan.runs_slow {
        eprintln!("== (a) {} certificates, run {run}/{}", plan.certs_a, plan.runs_slow);
        for &tool in tools {
            let sb = Sandbox::start();
            let sample = Bench::new(&sb, tool).issue_each(&names);
            record(&mut measured, Scenario::A, tool, plan.certs_a, sample);
            if run == plan.runs_slow {
                last.push((tool, sb));
            }
        }
    }
    (measured, last)
}

/// (c), on the certificates (a) issued, copied up to each size.
fn scenario_c(plan: &Plan, sandboxes: &[(Tool, Sandbox)], issued: &[usize]) -> Vec<Measured> {
    let mut measured = Vec::new();
    for size in plan.noop_sizes {
        eprintln!("== (c) no-op run with {size} certificates");
        let benches: Vec<Bench> = sandboxes.iter().map(|(tool, sb)| Bench::new(sb, *tool)).collect();
        for bench in &benches {
            bench.replicate(issued, size);
        }
        for _ in 0..plan.runs_fast {
            for bench in &benches {
                let sample = bench.noop(issued, size);
                record(&mut measured, Scenario::C(size), bench.tool, size, sample);
            }
        }
    }
    measured
}

fn scenario_b(plan: &Plan, tools: &[Tool]) -> Vec<Measured> {
    let names: Vec<usize> = (0..plan.names_b).collect();
    let mut measured = Vec::new();
    for run in 1..=plan.runs_slow {
        eprintln!(
            "== (b) 1 certificate with {} names, run {run}/{}",
            plan.names_b, plan.runs_slow
        );
        for &tool in tools {
            let sb = Sandbox::start();
            let sample = Bench::new(&sb, tool).issue_one_for_all(&names);
            record(&mut measured, Scenario::B, tool, plan.names_b, sample);
        }
    }
    measured
}

/// (d): each tool issues and serves one certificate first (untimed), then renews it by force, run after run.
fn scenario_d(plan: &Plan, tools: &[Tool]) -> Vec<Measured> {
    eprintln!("== (d) forced renewal of 1 certificate until served");
    let sandboxes: Vec<(Tool, Sandbox)> = tools.iter().map(|&t| (t, Sandbox::start())).collect();
    let benches: Vec<Bench> = sandboxes.iter().map(|(tool, sb)| Bench::new(sb, *tool)).collect();
    for bench in &benches {
        bench.issue_and_serve(0);
    }
    let mut measured = Vec::new();
    for _ in 0..plan.runs_fast {
        for bench in &benches {
            let sample = bench.force_renew_until_served(0);
            record(&mut measured, Scenario::D, bench.tool, 1, sample);
        }
    }
    measured
}

fn versions() -> Vec<(String, String)> {
    let first_line = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}); scripts/bench installs it from Debian's packages"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let certbot = first_line("certbot", &["--version"])
        .trim_start_matches("certbot ")
        .to_owned();
    // Debian's lego says "version dev"; its package version is the real one.
    let lego = first_line("dpkg-query", &["-W", "-f", "${Version}\n", "lego"]);
    let lego = if lego.is_empty() {
        first_line("lego", &["--version"])
    } else {
        lego
    };
    let haproxy = first_line(&harness::tools::tools().haproxy.display().to_string(), &["-v"]);
    vec![
        ("certbot".into(), certbot),
        ("lego".into(), lego.split('-').next().unwrap_or(&lego).to_owned()),
        ("haproxy".into(), haproxy),
    ]
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
        })
        .unwrap_or_else(|| "unknown OS".into());
    format!("{cores} cores, {os}")
}
