//! The fleet harness checked on its own, before the fleet engine exists: the nodes are distinct HAProxies on their own
//! addresses, the CA validates a name through the node the DNS helper points it at, the etcd cluster and the key and
//! config helpers work, and the per-node daemon controls do what they say. Both challenge modes.

use std::time::{Duration, Instant};

use crate::harness::{
    FLEET_PREFIX, FleetChallenge, FleetOptions, FleetSandbox, assert_exit, process_alive, try_http_get,
};

const NAME: &str = "two.example.com";
const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// Every node serves HAProxy's default certificate on its own address, and nothing listens on 127.0.0.1.
fn assert_default_cert_everywhere(fleet: &FleetSandbox) {
    for i in fleet.all_nodes() {
        assert_eq!(
            fleet.served_serial(i, NAME),
            None,
            "node {i} serves nothing that verifies yet"
        );
        let served = fleet.describe_served(i, NAME);
        assert!(
            served.contains("default.invalid"),
            "node {i} ({}) should serve HAProxy's default certificate: {served}",
            fleet.node_ip(i)
        );
    }
}

/// The challenge requests each node's HAProxy logged (httplog, on its stderr).
fn challenge_requests(fleet: &FleetSandbox, i: usize) -> usize {
    let log = std::fs::read_to_string(fleet.node_dir(i).join("logs/haproxy.log")).unwrap_or_default();
    log.matches("/.well-known/acme-challenge/").count()
}

/// Node 2 alone, with a config without [fleet], orders NAME: the CA reaches it through node 2, which then serves the
/// certificate while the other nodes do not, and Pebble counts one more issued certificate.
fn issue_through_node_2(fleet: &FleetSandbox) {
    let before = fleet.finalized_orders();
    let requests_before: Vec<usize> = fleet
        .all_nodes()
        .iter()
        .map(|&i| challenge_requests(fleet, i))
        .collect();
    let new_requests = |i: usize| challenge_requests(fleet, i) - requests_before[i - 1];
    fleet.point(NAME, 2);
    let run = fleet.hapcert(2, &["run"]);
    assert_exit(&run, 0);
    let served = fleet.wait_served(&[2], &[NAME], SERVED_WITHIN);
    let serial = &served[&(2, NAME.to_owned())];
    for i in fleet.all_nodes().into_iter().filter(|&i| i != 2) {
        assert_eq!(
            fleet.served_serial(i, NAME),
            None,
            "only node 2 ordered; node {i} serves {}",
            fleet.describe_served(i, NAME)
        );
        assert_eq!(
            new_requests(i),
            0,
            "the CA validated through node 2 only, yet node {i} saw a challenge"
        );
    }
    assert!(new_requests(2) > 0, "node 2's HAProxy logged no challenge request");
    assert_eq!(
        fleet.finalized_orders(),
        before + 1,
        "one certificate issued:\n{}",
        fleet.pebble_log()
    );
    assert!(
        fleet
            .pebble_log()
            .contains(&format!("Issued certificate serial {serial}")),
        "Pebble logs the serial node 2 serves ({serial})"
    );
}

#[test]
fn fleet_harness_side_port_nodes_routing_etcd_and_daemons() {
    let started = Instant::now();
    let mut fleet = FleetSandbox::start(3);
    assert_eq!(fleet.challenge(), FleetChallenge::SidePort);
    assert_eq!(
        (1..=3).map(|i| fleet.node_ip(i)).collect::<Vec<_>>(),
        ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    );

    // 1. Three distinct HAProxies, each on its own address only.
    assert_default_cert_everywhere(&fleet);
    let masters: Vec<u32> = (1..=3).map(|i| fleet.haproxy_master_pid(i)).collect();
    let workers: Vec<Vec<u32>> = (1..=3).map(|i| fleet.haproxy_worker_pids(i)).collect();
    assert!(
        masters[0] != masters[1] && masters[1] != masters[2] && masters[0] != masters[2],
        "{masters:?}"
    );
    assert!(workers.iter().all(|w| w.len() == 1), "one worker per node: {workers:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", fleet.https_port())).is_err(),
        "nothing may listen on 127.0.0.1:{}: the nodes bind their own addresses",
        fleet.https_port()
    );
    fleet.stop_haproxy(2);
    assert!(
        fleet.describe_served(2, NAME).starts_with("no handshake"),
        "node 2 is down: {}",
        fleet.describe_served(2, NAME)
    );
    for i in [1, 3] {
        assert!(
            fleet.describe_served(i, NAME).contains("default.invalid"),
            "node {i} still serves"
        );
        assert_eq!(
            fleet.haproxy_worker_pids(i),
            workers[i - 1],
            "node {i}'s HAProxy was left alone"
        );
    }
    fleet.start_haproxy(2);
    assert_default_cert_everywhere(&fleet);

    // 2. The CA validates through the node the DNS helper names.
    fleet.write_single_node_config(2, &[("two", &[NAME])]);
    issue_through_node_2(&fleet);

    // 3. The etcd cluster, and what etcd_dump reads.
    fleet.etcd().etcdctl(&["endpoint", "health"]);
    assert_eq!(fleet.etcd_dump(), [], "nothing under {FLEET_PREFIX} yet");
    fleet
        .etcd()
        .etcdctl(&["put", &format!("{FLEET_PREFIX}/harness/probe"), "hello fleet"]);
    fleet.etcd().etcdctl(&["put", "/elsewhere/probe", "not ours"]);
    fleet
        .etcd()
        .etcdctl(&["put", &format!("{FLEET_PREFIX}/harness/empty"), ""]);
    assert_eq!(
        fleet.etcd_dump(),
        [
            (format!("{FLEET_PREFIX}/harness/empty"), Vec::new()),
            (format!("{FLEET_PREFIX}/harness/probe"), b"hello fleet".to_vec()),
        ]
    );

    // The [fleet] config the harness writes is valid (the engine does not exist yet, so run refuses it).
    fleet.write_node_config(1, &[("one", &["one.example.com"])]);
    let config = fleet.node_config_text(1);
    assert!(
        config.contains("[fleet]\n") && config.contains("node = \"node1\"\n"),
        "{config}"
    );
    assert_exit(&fleet.hapcert(1, &["check-config"]), 0);
    assert_ne!(
        std::fs::read_to_string(fleet.key_file()).unwrap(),
        std::fs::read_to_string(fleet.wrong_key_file()).unwrap(),
        "two different fleet keys"
    );

    // The daemon controls, on node 3 as a single node.
    fleet.write_single_node_config(3, &[("three", &["three.example.com"])]);
    fleet.start_daemon(3);
    fleet.wait_daemon_log(3, "hapcert daemon started", Duration::from_secs(30));
    fleet.pause_daemon(3);
    assert!(fleet.daemon_paused(3));
    fleet.resume_daemon(3);
    assert!(!fleet.daemon_paused(3));
    assert_eq!(fleet.stop_daemon(3).code(), Some(0), "{}", fleet.daemon_log(3));
    fleet.start_daemon(3);
    fleet.wait_daemon_log(3, "hapcert daemon started", Duration::from_secs(30));
    let pid = fleet.daemon_pid(3);
    fleet.pause_daemon(3);
    let killed = fleet.kill_daemon(3);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed),
        Some(libc::SIGKILL)
    );
    assert!(!process_alive(pid));
    eprintln!("side-port fleet self-test took {:?}", started.elapsed());
}

#[test]
fn fleet_harness_stateless_every_node_answers_with_the_thumbprint() {
    let started = Instant::now();
    let fleet = FleetSandbox::start_with(
        2,
        FleetOptions {
            challenge: FleetChallenge::Stateless,
            ..FleetOptions::default()
        },
    );
    assert_default_cert_everywhere(&fleet);
    fleet.write_single_node_config(2, &[("two", &[NAME])]);
    assert!(fleet.node_config_text(2).contains("mode = \"stateless\"\n"));
    let thumbprint = fleet.account_thumbprint(2);
    fleet.set_stateless_thumbprint(&thumbprint);
    for i in fleet.all_nodes() {
        let url = format!(
            "http://{}:{}/.well-known/acme-challenge/tok_en-1",
            fleet.node_ip(i),
            fleet.http_port()
        );
        let answer = try_http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(
            (answer.status, answer.text()),
            (200, format!("tok_en-1.{thumbprint}")),
            "node {i}"
        );
    }
    // In stateless mode hapcert listens nowhere: occupy node 2's side port to prove it.
    let _occupied = std::net::TcpListener::bind((fleet.node_ip(2).as_str(), fleet.side_port())).unwrap();
    issue_through_node_2(&fleet);
    eprintln!("stateless fleet self-test took {:?}", started.elapsed());
}
