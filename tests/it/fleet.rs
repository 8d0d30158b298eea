//! Fleets (issue 13), against a real 3-member etcd cluster, one real HAProxy per node on its own 127.0.0.x address, a
//! `hapcert daemon` per node, and a real Pebble: exactly one order per renewal, every node serving it, fencing, the
//! order journal, quorum loss, compaction, and keys that never enter etcd in clear.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::harness::{EtcdTlsMember, FleetChallenge, FleetOptions, FleetSandbox, assert_exit, stderr, stdout};

const CONVERGE: Duration = Duration::from_secs(90);
const ALL: [usize; 3] = [1, 2, 3];

fn specs(names: &[&'static str]) -> Vec<(&'static str, Vec<&'static str>)> {
    names.iter().map(|n| (*n, vec![domain(n)])).collect()
}

fn domain(name: &str) -> &'static str {
    Box::leak(format!("{name}.example.com").into_boxed_str())
}

fn write_configs(fleet: &FleetSandbox, nodes: &[usize], certs: &[(&'static str, Vec<&'static str>)]) {
    let tables: Vec<(&str, &[&str])> = certs.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    for &i in nodes {
        fleet.write_node_config(i, &tables);
    }
}

fn domains(certs: &[(&'static str, Vec<&'static str>)]) -> Vec<&'static str> {
    certs.iter().map(|(_, d)| d[0]).collect()
}

/// `fleet status --json` on node `i`.
fn fleet_status(fleet: &FleetSandbox, i: usize) -> serde_json::Value {
    let out = fleet.hapcert(i, &["fleet", "status", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("fleet status --json: {e}: {}", stdout(&out)))
}

/// A `[[notify]]` channel that appends "<event> <certificate>" to `file`.
fn notify_into(file: &std::path::Path) -> String {
    format!(
        "\n[[notify]]\nkind = \"exec\"\ncommand = \"echo $HAPCERT_EVENT $HAPCERT_CERTIFICATE >> {}\"\n",
        file.display()
    )
}

/// Polls `look` every `every` until it gives a value; panics with its last complaint after `timeout`.
fn eventually<T>(timeout: Duration, every: Duration, mut look: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match look() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => panic!("not within {timeout:?}: {why}"),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// Polls `fleet status` until every certificate is acknowledged by every node in `nodes`.
fn wait_acknowledged(fleet: &FleetSandbox, nodes: &[usize], count: usize, timeout: Duration) -> serde_json::Value {
    eventually(timeout, Duration::from_millis(200), || {
        let status = fleet_status(fleet, nodes[0]);
        let certs = status["certificates"].as_array().cloned().unwrap_or_default();
        let acknowledged = |c: &serde_json::Value| {
            let serving: Vec<&str> = c["serving"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s.as_str())
                .collect();
            nodes.iter().all(|i| serving.contains(&format!("node{i}").as_str()))
        };
        match certs.len() == count && certs.iter().all(acknowledged) {
            true => Ok(status),
            false => Err(format!("not every node acknowledged every certificate:\n{status:#}")),
        }
    })
}

/// Polls until every node in `nodes` serves the same serial for `name`, and not `old`; returns it.
fn wait_new_serial(fleet: &FleetSandbox, nodes: &[usize], name: &str, old: &str) -> String {
    eventually(CONVERGE, Duration::from_millis(50), || {
        let served: Vec<Option<String>> = nodes.iter().map(|&i| fleet.served_serial(i, name)).collect();
        match served[0].clone() {
            Some(first) if first != old && served.iter().all(|s| s.as_deref() == Some(first.as_str())) => Ok(first),
            _ => Err(format!("{name}: nodes {nodes:?} serve {served:?} (was {old})")),
        }
    })
}

/// Cases 1, 7 and 8: three nodes and five certificates from an empty store; then a forced renewal on node 2; then the
/// raw keys, and a node with the wrong fleet key.
#[test]
fn three_nodes_issue_each_certificate_once_serve_it_everywhere_and_keep_keys_sealed() {
    let mut fleet = FleetSandbox::start(3);
    let certs = specs(&["c1", "c2", "c3", "c4", "c5"]);
    write_configs(&fleet, &ALL, &certs);
    let names = domains(&certs);
    let started = Instant::now();
    for i in ALL {
        fleet.start_daemon(i);
    }
    let served = fleet.wait_same_serial(&ALL, &names, CONVERGE);
    eprintln!(
        "3 nodes serve 5 certificates {:?} after the daemons started",
        started.elapsed()
    );
    assert_eq!(
        fleet.finalized_orders(),
        5,
        "exactly one order per certificate:\n{}",
        fleet.pebble_log()
    );
    let status = wait_acknowledged(&fleet, &ALL, 5, CONVERGE);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status:#}");
    assert!(status["locks"].as_array().unwrap().is_empty(), "{status:#}");
    assert!(status["orders"].as_array().unwrap().is_empty(), "{status:#}");

    // Case 8: no private key in etcd in clear, in any form.
    let pem = std::fs::read_to_string(fleet.cert_dir(1).join("c1.pem")).unwrap();
    let key_b64: String = pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END").next())
        .expect("the PEM holds a PKCS#8 key")
        .split_whitespace()
        .collect();
    let key_der = base64::engine::general_purpose::STANDARD.decode(&key_b64).unwrap();
    let dump = fleet.etcd_dump();
    assert!(
        dump.iter().any(|(k, _)| k.ends_with("/certs/c1")),
        "{:?}",
        dump.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert!(dump.iter().any(|(k, _)| k.ends_with("/account")));
    for (key, value) in &dump {
        let text = String::from_utf8_lossy(value);
        assert!(!text.contains("PRIVATE KEY"), "{key} holds a PEM private key in clear");
        assert!(!text.contains(&key_b64[..40]), "{key} holds c1's key in base64");
        assert!(
            !value.windows(32).any(|w| w == &key_der[key_der.len() - 32..]),
            "{key} holds c1's key as DER"
        );
        assert!(!text.contains("\"d\":"), "{key} holds a JWK private key");
    }

    // Case 7: a forced renewal on node 2, while node 2's daemon holds the side port.
    let before = served[&(1, "c3.example.com".to_owned())].clone();
    let forced = Instant::now();
    let out = fleet.hapcert(2, &["renew", "--force", "c3"]);
    assert_exit(&out, 0);
    wait_new_serial(&fleet, &ALL, "c3.example.com", &before);
    eprintln!(
        "the forced renewal is served by all 3 nodes {:?} after the command started",
        forced.elapsed()
    );
    assert_eq!(fleet.finalized_orders(), 6, "one more order, not more");

    // Case 8, the other half: a node with another fleet key refuses, and keeps serving what it has.
    fleet.stop_daemon(3);
    let wrong = fleet.node_config_text(3).replace(
        &fleet.key_file().display().to_string(),
        &fleet.wrong_key_file().display().to_string(),
    );
    fleet.write_node_config_text(3, &wrong);
    let out = fleet.hapcert(3, &["run"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("sealed under another fleet key") && stderr(&out).contains("is not the fleet's key"),
        "{}",
        stderr(&out)
    );
    assert!(
        fleet.served_serial(3, "c1.example.com").is_some(),
        "node 3 still serves c1"
    );
    assert_eq!(fleet.finalized_orders(), 6);
}

/// Case 2: the CA validates through a node that holds no lock, in both challenge modes.
#[test]
fn the_ca_validates_through_a_node_that_holds_no_lock_in_side_port_mode() {
    validates_through_another_node(FleetChallenge::SidePort);
}

#[test]
fn the_ca_validates_through_a_node_that_holds_no_lock_in_stateless_mode() {
    validates_through_another_node(FleetChallenge::Stateless);
}

fn validates_through_another_node(challenge: FleetChallenge) {
    let mut fleet = FleetSandbox::start_with(
        3,
        FleetOptions {
            challenge,
            ..Default::default()
        },
    );
    // Node 1 orders; node 3 has no certificate of its own, so it never holds a lock, but its daemon answers the
    // fleet's tokens (side-port mode) or its HAProxy answers for the shared account (stateless mode).
    let certs = specs(&["far"]);
    write_configs(&fleet, &[1], &certs);
    write_configs(&fleet, &[3], &specs(&["other"]));
    fleet.point("other.example.com", 3);
    if challenge == FleetChallenge::Stateless {
        let thumbprint = fleet.account_thumbprint(1);
        assert_eq!(fleet.account_thumbprint(3), thumbprint, "the fleet shares one account");
        fleet.set_stateless_thumbprint(&thumbprint);
    }
    fleet.start_daemon(3);
    fleet.wait_same_serial(&[3], &["other.example.com"], CONVERGE);
    fleet.point("far.example.com", 3);
    let out = fleet.hapcert(1, &["run"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("renewed   far"), "{}", stdout(&out));
    assert!(fleet.served_serial(1, "far.example.com").is_some());
    assert_eq!(fleet.finalized_orders(), 2, "far and other, once each");
    let status = fleet_status(&fleet, 3);
    let far = status["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "far")
        .cloned();
    assert_eq!(far.map(|c| c["issued_by"].clone()), Some("node1".into()), "{status:#}");
}

/// Cases 3 and 4 start alike: node 1 alone has the certificate and orders it; nodes 2 and 3 run daemons without it
/// (the name points at node 3, whose daemon answers the fleet's tokens). Once node 1 has journaled its order, the
/// test stops it; then nodes 2 and 3 get the certificate (SIGHUP), take over the lock, and resume the journaled order.
fn holder_mid_order(name: &'static str) -> FleetSandbox {
    let mut fleet = FleetSandbox::start(3);
    write_configs(&fleet, &[1], &specs(&[name]));
    bystanders(&mut fleet, &[2, 3]);
    fleet.point(domain(name), 3);
    fleet.start_daemon(1);
    wait_for_key(&fleet, &format!("{}/orders/{name}", crate::harness::FLEET_PREFIX));
    fleet
}

fn successors_take_over(fleet: &mut FleetSandbox, name: &'static str) -> String {
    write_configs(fleet, &[2, 3], &specs(&[name]));
    for i in [2, 3] {
        fleet.daemon(i).signal(libc::SIGHUP);
    }
    fleet.wait_same_serial(&[2, 3], &[domain(name)], CONVERGE)[&(2, domain(name).to_owned())].clone()
}

/// Nodes that run a daemon with only an unrelated certificate ("other", validated through node 3, issued once by the
/// fleet): they take part (they answer the fleet's tokens) without ever holding the lock of the certificate a test
/// watches. Returns once "other" is served by all of them.
fn bystanders(fleet: &mut FleetSandbox, nodes: &[usize]) {
    fleet.point("other.example.com", 3);
    write_configs(fleet, nodes, &specs(&["other"]));
    for &i in nodes {
        fleet.start_daemon(i);
        fleet.wait_daemon_log(i, "joined the fleet", Duration::from_secs(20));
    }
    fleet.wait_same_serial(nodes, &["other.example.com"], CONVERGE);
}

/// Case 3: the lock holder is paused mid-order for longer than its lease. Another node takes over the journaled order;
/// the paused one, resumed, is fenced out. One certificate, one order.
#[test]
fn a_lock_holder_paused_past_its_lease_is_fenced_out_and_one_certificate_is_deployed() {
    let mut fleet = holder_mid_order("paused");
    fleet.pause_daemon(1);
    let serial = successors_take_over(&mut fleet, "paused");
    fleet.resume_daemon(1);
    fleet.wait_daemon_log(1, "fenced out", CONVERGE);
    wait_serial(&fleet, &ALL, "paused.example.com", &serial, CONVERGE);
    assert_eq!(
        fleet.finalized_orders(),
        2,
        "paused and other, once each:\n{}",
        fleet.pebble_log()
    );
    let resumed = fleet.daemon_log(2) + &fleet.daemon_log(3);
    assert!(resumed.contains("resuming it instead of ordering again"), "{resumed}");
}

/// Case 4: the lock holder is killed mid-order; another node completes the renewal, and every node serves it.
#[test]
fn a_lock_holder_killed_mid_order_is_succeeded_and_the_order_is_not_placed_twice() {
    let mut fleet = holder_mid_order("killed");
    fleet.kill_daemon(1);
    let serial = successors_take_over(&mut fleet, "killed");
    fleet.start_daemon(1);
    wait_serial(&fleet, &ALL, "killed.example.com", &serial, CONVERGE);
    assert_eq!(
        fleet.finalized_orders(),
        2,
        "killed and other, once each:\n{}",
        fleet.pebble_log()
    );
}

/// Polls until every node in `nodes` serves `serial` for `name`.
fn wait_serial(fleet: &FleetSandbox, nodes: &[usize], name: &str, serial: &str, timeout: Duration) {
    eventually(timeout, Duration::from_millis(50), || {
        let served: Vec<Option<String>> = nodes.iter().map(|&i| fleet.served_serial(i, name)).collect();
        match served.iter().all(|s| s.as_deref() == Some(serial)) {
            true => Ok(()),
            false => Err(format!("{name}: nodes {nodes:?} serve {served:?}, not {serial}")),
        }
    })
}

/// Polls etcd every 10 ms until `key` exists.
fn wait_for_key(fleet: &FleetSandbox, key: &str) {
    eventually(CONVERGE, Duration::from_millis(10), || {
        match fleet.etcd_dump().iter().any(|(k, _)| k == key) {
            true => Ok(()),
            false => Err(format!("{key} never appeared")),
        }
    })
}

/// Cases 5 and 6: one etcd member down, renewals go on; two down (no quorum), every node keeps serving, nothing is
/// deleted, `check` says the store is unreachable; quorum back, the fleet converges. A node down during a renewal
/// serves it within 10 s of its restart.
#[test]
fn the_fleet_renews_without_one_member_serves_without_quorum_and_a_node_back_converges_within_10_s() {
    let mut fleet = FleetSandbox::start(3);
    let certs = specs(&["q"]);
    write_configs(&fleet, &ALL, &certs);
    for i in ALL {
        fleet.start_daemon(i);
    }
    let first = fleet.wait_same_serial(&ALL, &["q.example.com"], CONVERGE)[&(1, "q.example.com".to_owned())].clone();

    fleet.etcd_mut().stop_and_settle(0);
    fleet.stop_daemon(3);
    let out = fleet.hapcert(2, &["renew", "--force", "q"]);
    assert_exit(&out, 0);
    let second =
        fleet.wait_same_serial(&[1, 2], &["q.example.com"], CONVERGE)[&(1, "q.example.com".to_owned())].clone();
    assert_ne!(first, second, "renewed with one member down");
    assert_eq!(
        fleet.served_serial(3, "q.example.com"),
        Some(first.clone()),
        "node 3 was down"
    );

    // Case 6: node 3 comes back and converges within 10 s.
    let back = Instant::now();
    fleet.start_daemon(3);
    wait_serial(&fleet, &[3], "q.example.com", &second, Duration::from_secs(10));
    eprintln!("node 3 serves the renewal {:?} after its restart", back.elapsed());

    // No quorum: everything is still served, nothing deleted, and `check` says the store is unreachable.
    fleet.etcd_mut().stop(1);
    std::thread::sleep(Duration::from_secs(2));
    for i in ALL {
        assert_eq!(
            fleet.served_serial(i, "q.example.com"),
            Some(second.clone()),
            "node {i}"
        );
        assert!(fleet.cert_dir(i).join("q.pem").exists());
    }
    let probed = format!(
        "{}\n[check]\nendpoints = [\"{}:{}\"]\n",
        fleet.node_config_text(1),
        fleet.node_ip(1),
        fleet.https_port()
    );
    fleet.write_node_config_text(1, &probed);
    let check = fleet.hapcert(1, &["check"]);
    assert!(
        stdout(&check).contains("fleet store unreachable"),
        "{}\n{}",
        stdout(&check),
        stderr(&check)
    );
    assert_eq!(
        check.status.code(),
        Some(1),
        "WARNING while no certificate is near expiry"
    );

    // Quorum back: a renewal goes through and every node serves it.
    fleet.etcd_mut().start_member(0);
    fleet.etcd_mut().start_member(1);
    let out = fleet.hapcert(1, &["renew", "--force", "q"]);
    assert_exit(&out, 0);
    let third = fleet.wait_same_serial(&ALL, &["q.example.com"], CONVERGE)[&(1, "q.example.com".to_owned())].clone();
    assert_ne!(third, second);
    assert_eq!(fleet.finalized_orders(), 3);
}

/// Case 10: a watch compacted away while a node was cut off from etcd: the node lists again and converges.
#[test]
fn a_node_whose_watch_was_compacted_away_still_converges() {
    let mut fleet = FleetSandbox::start(2);
    let certs = specs(&["w"]);
    write_configs(&fleet, &[1, 2], &certs);
    fleet.start_daemon(1);
    fleet.start_daemon(2);
    let first = fleet.wait_same_serial(&[1, 2], &["w.example.com"], CONVERGE)[&(1, "w.example.com".to_owned())].clone();
    // Node 2 is cut off (paused) past its lease, so the fleet no longer counts it (nor preflights through it), while
    // the store moves on and is compacted.
    fleet.pause_daemon(2);
    std::thread::sleep(Duration::from_secs(6));
    let out = fleet.hapcert(1, &["renew", "--force", "w"]);
    assert_exit(&out, 0);
    let status = fleet.etcd().etcdctl(&["endpoint", "status", "-w", "json"]);
    let revision = serde_json::from_str::<serde_json::Value>(&status).unwrap()[0]["Status"]["header"]["revision"]
        .as_i64()
        .unwrap();
    fleet.etcd().compact(revision);
    fleet.resume_daemon(2);
    wait_new_serial(&fleet, &[1, 2], "w.example.com", &first);
}

/// Case 9: etcd with TLS client certificates and authentication.
#[test]
fn a_fleet_works_over_etcd_with_tls_client_certificates_and_authentication() {
    let fleet = FleetSandbox::start(1);
    let member = EtcdTlsMember::start();
    let password = fleet.dir().join("etcd-password");
    std::fs::write(&password, "agent1pw\n").unwrap();
    for secret in [&password, &member.client_key] {
        std::fs::set_permissions(secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let table = format!(
        "\n[fleet]\netcd = [\"{}\"]\nprefix = \"/hapcert/tls\"\nnode = \"node1\"\nkey_file = \"{}\"\nca_bundle = \"{}\"\n\
         client_cert = \"{}\"\nclient_key = \"{}\"\nusername = \"agent1\"\npassword_file = \"{}\"\n",
        member.endpoint(),
        fleet.key_file().display(),
        member.ca.display(),
        member.client_cert.display(),
        member.client_key.display(),
        password.display()
    );
    let text = fleet.node_base_config(1) + &fleet.certificate_tables(1, &[("tls", &["tls.example.com"])]) + &table;
    fleet.write_node_config_text(1, &text);
    let out = fleet.hapcert(1, &["run"]);
    assert_exit(&out, 0);
    assert!(fleet.served_serial(1, "tls.example.com").is_some());
    let status = fleet_status(&fleet, 1);
    assert_eq!(status["certificates"][0]["name"], "tls", "{status:#}");
}

/// The move from a single node: `fleet init` shares its account and certificate (once: a second init is refused), and a
/// node that joins adopts what is there with no new order; `status` says who ordered what and who serves it.
#[test]
fn fleet_init_brings_a_single_node_in_and_a_joining_node_adopts_without_ordering() {
    let mut fleet = FleetSandbox::start(2);
    let certs = specs(&["moved"]);
    let tables: Vec<(&str, &[&str])> = certs.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    fleet.write_single_node_config(1, &tables);
    assert_exit(&fleet.hapcert(1, &["run"]), 0);
    let serial = fleet.served_serial(1, "moved.example.com").expect("node 1 serves it");
    assert_eq!(fleet.finalized_orders(), 1);

    write_configs(&fleet, &[1, 2], &certs);
    let out = fleet.hapcert(1, &["fleet", "init"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("shared the ACME account")
            && stdout(&out).contains(&format!("moved: shared serial {serial}")),
        "{}",
        stdout(&out)
    );
    let again = fleet.hapcert(1, &["fleet", "init"]);
    assert_exit(&again, 2);
    assert!(
        stderr(&again).contains("only fills an empty prefix"),
        "{}",
        stderr(&again)
    );

    fleet.start_daemon(2);
    wait_serial(&fleet, &[2], "moved.example.com", &serial, CONVERGE);
    assert_eq!(
        fleet.finalized_orders(),
        1,
        "the joining node adopted; it ordered nothing"
    );
    let status = fleet.hapcert(2, &["status"]);
    assert_exit(&status, 0);
    assert!(
        stdout(&status).contains(&format!("serial {serial}")) && stdout(&status).contains("ordered by node1"),
        "{}",
        stdout(&status)
    );
}

/// Visibility: the daemon's /metrics has the fleet's families, and the node that issued a certificate alerts
/// (`fleet-lagging`, through `[[notify]]`) when a live node has not acknowledged it within converge_timeout.
#[test]
fn the_issuing_node_alerts_on_a_laggard_and_metrics_show_the_fleet() {
    let mut fleet = FleetSandbox::start(2);
    let certs = specs(&["lag"]);
    write_configs(&fleet, &[1, 2], &certs);
    let metrics_port = crate::harness::free_port();
    let events = fleet.dir().join("events");
    let extra = format!("\n[daemon]\nlisten = \"127.0.0.1:{metrics_port}\"\njitter = \"0s\"\n") + &notify_into(&events);
    let text = fleet
        .node_config_text(1)
        .replace("converge_timeout = \"30s\"", "converge_timeout = \"10s\"")
        + &extra;
    fleet.write_node_config_text(1, &text);
    fleet.start_daemon(1);
    fleet.wait_served(&[1], &["lag.example.com"], CONVERGE);
    // Node 2 is alive in the fleet, but its HAProxy refuses every new file: it never acknowledges.
    let refusing = fleet.node_config_text(2).replace(&fleet.check_command(2), "/bin/false");
    fleet.write_node_config_text(2, &refusing);
    fleet.start_daemon(2);
    fleet.wait_daemon_log(2, "joined the fleet", Duration::from_secs(20));
    eventually(CONVERGE, Duration::from_millis(200), || {
        let told = std::fs::read_to_string(&events).unwrap_or_default();
        match told.contains("fleet-lagging lag") {
            true => Ok(()),
            false => Err(format!("no fleet-lagging alert: {told:?}")),
        }
    });
    assert!(
        fleet.daemon_log(1).contains("(node2) do not serve serial"),
        "{}",
        fleet.daemon_log(1)
    );
    let metrics = crate::harness::http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).text();
    for line in [
        "hapcert_fleet_store_up 1",
        "hapcert_fleet_nodes_alive 2",
        "hapcert_fleet_certificate_nodes_serving{certificate=\"lag\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert_eq!(fleet.finalized_orders(), 1);
}

/// With etcd unreachable, a certificate within emergency_days of expiry is ordered by the node alone, with a loud
/// `fleet-emergency` alert; once etcd is back, the fleet settles on that certificate.
#[test]
fn cut_off_from_etcd_a_node_orders_alone_only_within_emergency_days_and_the_fleet_settles_after() {
    // Two-day certificates: within the default emergency_days (3) from the start.
    let mut options = FleetOptions::default();
    options.sandbox.cert_validity_secs = Some(2 * 86_400);
    let mut fleet = FleetSandbox::start_with(2, options);
    let certs = specs(&["urgent"]);
    write_configs(&fleet, &[1, 2], &certs);
    fleet.point("urgent.example.com", 2);
    fleet.start_daemon(2);
    let issued =
        fleet.wait_served(&[2], &["urgent.example.com"], CONVERGE)[&(2, "urgent.example.com".to_owned())].clone();
    let run = fleet.hapcert(1, &["run"]);
    assert_exit(&run, 0);
    assert!(
        stdout(&run).contains(&format!(
            "adopted   urgent: serial {issued} from the fleet (ordered by node2)"
        )),
        "{}",
        stdout(&run)
    );
    let shared = fleet.wait_same_serial(&[1, 2], &["urgent.example.com"], CONVERGE)
        [&(1, "urgent.example.com".to_owned())]
        .clone();
    fleet.stop_daemon(2);

    let events = fleet.dir().join("events");
    let cut = fleet.node_config_text(1);
    let etcd_line = cut.lines().find(|l| l.starts_with("etcd = ")).unwrap().to_owned();
    let closed = format!("etcd = [\"http://127.0.0.1:{}\"]", crate::harness::closed_port());
    let cut_text = cut.replace(&etcd_line, &closed) + &notify_into(&events);
    fleet.write_node_config_text(1, &cut_text);
    fleet.unpoint("urgent.example.com");
    let out = fleet.hapcert(1, &["renew", "--force", "urgent"]);
    assert!(
        stdout(&out).contains("renewed   urgent"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("EMERGENCY"), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("fleet-emergency urgent")
    );
    let alone = fleet.served_serial(1, "urgent.example.com").unwrap();
    assert_ne!(alone, shared);
    assert_eq!(fleet.finalized_orders(), 2);

    // etcd back: node 1 shares what it ordered alone, and node 2 converges on it.
    fleet.write_node_config_text(1, &cut);
    fleet.start_daemon(2);
    fleet.start_daemon(1);
    wait_serial(&fleet, &[1, 2], "urgent.example.com", &alone, CONVERGE);
}
