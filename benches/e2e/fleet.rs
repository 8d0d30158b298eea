//! The fleet scenarios of issue 13, on the test harness's fleet: 3 HAProxy nodes on 127.0.0.11-13, one Pebble, a
//! 3-member etcd cluster, and a `hapcert daemon` per node. Names are not pointed anywhere, so the CA validates every
//! one through node 1, whichever node holds its lock: node 1's responder answers the fleet's tokens from its watch.
//!
//! - (f) 3 nodes from an empty store, until every node serves every certificate, alternated run by run with (a) for
//!   hapcert alone on the same machine, which the target is relative to;
//! - (g) `hapcert renew --force` on node 2 while the daemons run, until all 3 nodes serve the new serial;
//! - (i) the requests one idle node's daemon sends to etcd, counted on the wire by [`CountingProxy`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hapcert::core::config::Config;
use serde::Serialize;

use crate::etcd_proxy::CountingProxy;
use crate::harness::{FleetSandbox, Sandbox};
use crate::tools::{Bench, Tool, cert_name, domain};

const NODES: [usize; 3] = [1, 2, 3];
/// Far above what a healthy run takes; a fleet that does not converge fails the bench instead of stalling it.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// Between handshakes to the (node, name) pairs not served yet.
const POLL: Duration = Duration::from_millis(5);
/// A duplicate order would be finalized moments after the first: it is looked for this long after (f) converges.
const LATE_ORDER_GRACE: Duration = Duration::from_secs(2);
/// Between two forced renewals in (g). Pebble gave two certificates ordered 0.9 s apart the same notAfter, and the
/// other nodes adopt a shared certificate only if its notAfter is later than theirs (`fleet::converge::is_newer`):
/// back to back, the second renewal is never adopted, and (g) measures that bug instead of a renewal.
const BETWEEN_RENEWALS: Duration = Duration::from_secs(2);
/// After node 2's daemon restarts behind the proxy: its first pass and the convergence that follows are not idle.
const IDLE_SETTLE: Duration = Duration::from_secs(10);

pub struct FleetPlan {
    pub certs: usize,
    pub runs_f: usize,
    pub runs_g: usize,
    pub idle_window: Duration,
}

#[derive(Debug, Default, Serialize)]
pub struct FleetResults {
    pub certs: usize,
    /// (f): seconds from starting the daemons until every node serves every certificate, per run.
    pub f_seconds: Vec<f64>,
    /// (f): orders Pebble finalized, per run.
    pub f_orders: Vec<usize>,
    /// (a) for hapcert alone, alternated with (f): seconds per run.
    pub a_seconds: Vec<f64>,
    /// (g): seconds from the command's start until all 3 nodes serve the new serial, per repetition.
    pub g_seconds: Vec<f64>,
    /// (g): orders Pebble finalized per repetition.
    pub g_orders: Vec<usize>,
    pub idle: Option<Idle>,
}

#[derive(Debug, Serialize)]
pub struct Idle {
    pub window_seconds: f64,
    /// Node 2's `[fleet] lease_ttl` during the window (the default: its config leaves it unset).
    pub lease_ttl_seconds: f64,
    /// Requests per etcd gateway path during the window.
    pub requests: BTreeMap<String, usize>,
    /// TCP connections node 2 opened to etcd during the window.
    pub connections: usize,
    /// Requests per path from the daemon's start until the window opened: joining, the first listing, the watch
    /// (one long request that stays open through the window), the first pass and its convergence.
    pub before_window: BTreeMap<String, usize>,
    pub connections_before_window: usize,
}

impl Idle {
    pub fn total(&self) -> usize {
        self.requests.values().sum()
    }

    pub fn per_hour(&self, count: usize) -> f64 {
        count as f64 * 3600.0 / self.window_seconds
    }
}

/// Runs what `wanted` names among "f", "g" and "i". (g) and (i) use the fleet of the last (f) run, or one issued
/// (untimed) for them.
pub fn run(plan: &FleetPlan, wanted: impl Fn(&str) -> bool) -> FleetResults {
    let names: Vec<usize> = (0..plan.certs).collect();
    let mut results = FleetResults {
        certs: plan.certs,
        ..FleetResults::default()
    };
    let mut fleet = None;
    if wanted("f") {
        for run in 1..=plan.runs_f {
            eprintln!(
                "== (f) 3 nodes, {} certificates from an empty store, run {run}/{}, after (a) for hapcert alone",
                plan.certs, plan.runs_f
            );
            let sb = Sandbox::start();
            let a = Bench::new(&sb, Tool::Hapcert).issue_each(&names);
            drop(sb);
            results.a_seconds.push(a.cost.wall.as_secs_f64());
            let (f, seconds, orders) = issue_from_empty(&names);
            eprintln!(
                "   (a) alone: {:.3} s; (f) 3 nodes: {seconds:.3} s, {orders} orders",
                a.cost.wall.as_secs_f64()
            );
            results.f_seconds.push(seconds);
            results.f_orders.push(orders);
            fleet = Some(f);
        }
    }
    if !(wanted("g") || wanted("i")) {
        return results;
    }
    let mut fleet = fleet.unwrap_or_else(|| {
        eprintln!("== a 3-node fleet with {} certificates, for (g) and (i)", plan.certs);
        issue_from_empty(&names).0
    });
    if wanted("g") {
        eprintln!("== (g) forced renewal on node 2, until all 3 nodes serve it");
        for rep in 1..=plan.runs_g {
            if rep > 1 {
                std::thread::sleep(BETWEEN_RENEWALS);
            }
            let (seconds, orders) = force_renew_on_node_2(&fleet, 0);
            eprintln!("   {rep}/{}: {seconds:.3} s, {orders} order(s)", plan.runs_g);
            results.g_seconds.push(seconds);
            results.g_orders.push(orders);
        }
    }
    if wanted("i") {
        eprintln!(
            "== (i) idle fleet: node 2's requests to etcd over {:?}",
            plan.idle_window
        );
        results.idle = Some(idle_node_2(&mut fleet, plan.idle_window));
    }
    results
}

fn cert_specs(names: &[usize]) -> Vec<(String, Vec<String>)> {
    names.iter().map(|&i| (cert_name(i), vec![domain(i)])).collect()
}

/// A fresh fleet, every node configured with all `names`; the clock runs from starting the 3 daemons until a
/// verifying handshake to every node shows every name. Returns the fleet, the seconds, and Pebble's finalized orders.
fn issue_from_empty(names: &[usize]) -> (FleetSandbox, f64, usize) {
    let mut fleet = FleetSandbox::start(NODES.len());
    let specs = cert_specs(names);
    let tables: Vec<(&str, Vec<&str>)> = specs
        .iter()
        .map(|(n, d)| (n.as_str(), d.iter().map(String::as_str).collect()))
        .collect();
    let tables: Vec<(&str, &[&str])> = tables.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    for i in NODES {
        fleet.write_node_config_text(i, &node_config(&fleet, i, &tables));
    }
    let started = Instant::now();
    for i in NODES {
        fleet.start_daemon(i);
    }
    // Each (node, name) is handshaken until it verifies, then never again: the last one seen is the figure, and
    // the rounds shrink as the fleet converges, so the clock stops within a few ms of it.
    let mut missing: BTreeSet<(usize, String)> = NODES
        .iter()
        .flat_map(|&i| names.iter().map(move |&n| (i, domain(n))))
        .collect();
    let mut done_at = started.elapsed();
    while !missing.is_empty() {
        missing.retain(|(i, name)| fleet.served_serial(*i, name).is_none());
        done_at = started.elapsed();
        if missing.is_empty() {
            break;
        }
        if done_at > CONVERGE_TIMEOUT {
            let pending: Vec<String> = missing.iter().map(|(i, name)| format!("node {i} {name}")).collect();
            panic!(
                "(f): expected every node to serve every certificate within {CONVERGE_TIMEOUT:?}; {} of {} are \
                 still not served: {}",
                pending.len(),
                NODES.len() * names.len(),
                pending.join(", ")
            );
        }
        std::thread::sleep(POLL);
    }
    std::thread::sleep(LATE_ORDER_GRACE);
    let orders = fleet.finalized_orders();
    (fleet, done_at.as_secs_f64(), orders)
}

/// The harness's node config with the Runtime API added, as (a)'s config has it (and the README recommends): a
/// certificate is then deployed by a hot update, not a reload, so (f) and (a) deploy the same way.
fn node_config(fleet: &FleetSandbox, i: usize, tables: &[(&str, &[&str])]) -> String {
    let sockets = format!(
        "[haproxy]\nruntime_api = \"{}\"\nmaster_socket = \"{}\"\n",
        fleet.haproxy_admin_sock(i).display(),
        fleet.haproxy_master_sock(i).display()
    );
    let base = fleet.node_base_config(i);
    assert!(
        base.contains("[haproxy]\n"),
        "expected a [haproxy] table in the harness's node config:\n{base}"
    );
    base.replacen("[haproxy]\n", &sockets, 1) + &fleet.certificate_tables(i, tables) + &fleet.fleet_table(i)
}

/// `hapcert renew --force` of certificate `i` on node 2, timed from the command's start until every node serves a
/// serial other than the one before. Returns the seconds and the orders it cost.
fn force_renew_on_node_2(fleet: &FleetSandbox, i: usize) -> (f64, usize) {
    let sni = domain(i);
    let before = fleet.served_serial(1, &sni).unwrap_or_else(|| {
        panic!(
            "(g): expected node 1 to serve {sni} before the renewal:\n{}",
            table(fleet, &sni)
        )
    });
    let orders_before = fleet.finalized_orders();
    let started = Instant::now();
    let out = fleet.hapcert(2, &["renew", "--force", &cert_name(i)]);
    assert!(
        out.status.success(),
        "(g): expected `hapcert renew --force {}` on node 2 to succeed, it ended with {} (its output is above)",
        cert_name(i),
        out.status
    );
    let mut waiting: Vec<usize> = NODES.to_vec();
    let mut served = BTreeMap::new();
    while !waiting.is_empty() {
        waiting.retain(|&node| match fleet.served_serial(node, &sni) {
            Some(serial) if serial != before => {
                served.insert(node, serial);
                false
            }
            _ => true,
        });
        if !waiting.is_empty() {
            assert!(
                started.elapsed() < CONVERGE_TIMEOUT,
                "(g): expected every node to serve a serial other than {before} for {sni} within \
                 {CONVERGE_TIMEOUT:?}:\n{}",
                table(fleet, &sni)
            );
            std::thread::sleep(POLL);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let serials: BTreeSet<&String> = served.values().collect();
    assert_eq!(
        serials.len(),
        1,
        "(g): expected the 3 nodes to serve one new serial for {sni}, saw {served:?}"
    );
    (seconds, fleet.finalized_orders() - orders_before)
}

fn table(fleet: &FleetSandbox, sni: &str) -> String {
    fleet.served_table(&NODES, &[sni])
}

/// Node 2's daemon restarted behind a counting proxy, with the default lease TTL, on a fleet where everything is
/// issued and nothing is due; its requests to etcd over `window`, after it has settled.
fn idle_node_2(fleet: &mut FleetSandbox, window: Duration) -> Idle {
    fleet.stop_daemon(2);
    let upstreams = fleet.etcd().endpoints();
    let proxy = CountingProxy::start(&upstreams);
    let mut config = fleet.node_config_text(2);
    for (upstream, local) in upstreams.iter().zip(proxy.endpoints()) {
        let quoted = format!("\"{upstream}\"");
        assert!(
            config.contains(&quoted),
            "expected node 2's [fleet] etcd to list {upstream}:\n{config}"
        );
        config = config.replace(&quoted, &format!("\"{local}\""));
    }
    // What an operator gets without setting it (10 s), rather than the harness's 3 s for fast lease tests.
    let harness_ttl = "lease_ttl = \"3s\"\n";
    assert!(
        config.contains(harness_ttl),
        "expected the harness's {harness_ttl:?} in node 2's config:\n{config}"
    );
    config = config.replacen(harness_ttl, "", 1);
    let path = fleet.write_node_config_text(2, &config);
    let lease_ttl = Config::parse(&config, &path)
        .unwrap_or_else(|e| panic!("expected node 2's config to parse once pointed at the proxy: {e:?}\n{config}"))
        .fleet
        .expect("node 2's config keeps its [fleet]")
        .lease_ttl;
    fleet.start_daemon(2);
    fleet.wait_daemon_log(2, "joined the fleet", Duration::from_secs(30));
    fleet.wait_daemon_log(2, "renewal pass done", Duration::from_secs(60));
    std::thread::sleep(IDLE_SETTLE);
    let before = fleet.finalized_orders();
    let (before_window, connections_before_window) = proxy.snapshot();
    proxy.reset();
    let started = Instant::now();
    std::thread::sleep(window);
    let (requests, connections) = proxy.snapshot();
    let window_seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        fleet.finalized_orders(),
        before,
        "(i): expected no order while the fleet is idle"
    );
    Idle {
        window_seconds,
        lease_ttl_seconds: lease_ttl.as_secs_f64(),
        requests,
        connections,
        before_window,
        connections_before_window,
    }
}
