//! Tests of the harness's extras: editing HAProxy's config, a second HAProxy, and the load generator.
//! Like smoke.rs, they do not run hapcert.

use std::fs;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::Duration;

use crate::harness::{
    LoadOptions, LoadReport, Sandbox, frontend_health_checked, frontend_redirect_shadowing, http_frontend_section,
    http_get, process_alive, san_dns_names, serial_hex,
};

const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/tok123";

/// A self-signed certificate and key for `name` as one PEM, the way HAProxy's cert dir holds them.
fn self_signed_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    format!("{}\n{}\n", cert.pem().trim_end(), key.serialize_pem().trim_end())
}

#[test]
fn config_is_built_from_replaceable_sections() {
    let sb = Sandbox::start();
    let cfg = sb.haproxy_cfg_text();
    let frontend = sb.http_frontend();
    assert_eq!(frontend, http_frontend_section(&sb.ports()));
    assert_eq!(cfg.matches(&frontend).count(), 1, "{cfg}");

    // Writing the same text reloads (a new worker) without counting as one of hapcert's reloads.
    let before = sb.haproxy_worker_pids();
    sb.set_haproxy_cfg(&cfg);
    let after = sb.haproxy_worker_pids();
    assert!(after.iter().all(|pid| !before.contains(pid)), "{before:?} -> {after:?}");
    assert_eq!(sb.reload_count(), 0);
    assert_eq!(sb.haproxy_cfg_text(), cfg);
}

#[test]
#[should_panic(expected = "harness reload failed")]
fn set_haproxy_cfg_panics_on_a_broken_config() {
    let sb = Sandbox::start();
    let cfg = sb.haproxy_cfg_text();
    sb.set_haproxy_cfg(&cfg.replace("mode http", "mode nonsense"));
}

#[test]
fn shadowing_frontend_redirects_the_challenge_path() {
    let sb = Sandbox::start();
    let base = format!("http://127.0.0.1:{}", sb.http_port());
    sb.set_http_frontend(&frontend_redirect_shadowing(&sb.ports()));
    assert_eq!(sb.http_frontend(), frontend_redirect_shadowing(&sb.ports()));

    let challenge = http_get(&format!("{base}{CHALLENGE_PATH}"));
    assert!(matches!(challenge.status, 301 | 302), "{challenge:?}");
    assert!(
        challenge.header("location").is_some_and(|l| l.starts_with("https://")),
        "{challenge:?}"
    );

    // And back: the challenge path is forwarded again, to a side port where nothing listens.
    sb.set_http_frontend(&http_frontend_section(&sb.ports()));
    let challenge = http_get(&format!("{base}{CHALLENGE_PATH}"));
    assert_eq!(challenge.status, 503, "{challenge:?}");
    assert_eq!(sb.reload_count(), 0);
}

#[test]
fn health_checked_backend_goes_down() {
    let sb = Sandbox::start();
    sb.set_http_frontend(&frontend_health_checked(&sb.ports()));
    assert!(sb.haproxy_cfg_text().contains("check inter 10s fall 1 rise 2"));
    sb.wait_challenge_backend_down();
    assert_eq!(sb.reload_count(), 0);
}

#[test]
fn remove_admin_socket_keeps_serving() {
    let sb = Sandbox::start();
    assert!(sb.haproxy_admin_sock().exists());
    sb.remove_admin_socket();
    assert!(!sb.haproxy_admin_sock().exists());
    assert!(!sb.haproxy_cfg_text().contains("stats socket"));
    assert_eq!(
        san_dns_names(&sb.served_leaf_unverified("no-admin.example.com")),
        ["default.invalid"]
    );

    // hapcert's reload command still works without the socket HAProxy passed listeners through.
    let reload = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.reload_command())
        .output()
        .expect("run reload");
    assert!(reload.status.success(), "reload failed: {reload:?}");
    assert_eq!(sb.reload_count(), 1);
    assert!(!sb.haproxy_admin_sock().exists());
    sb.served_leaf_unverified("after-reload.example.com");
}

#[test]
fn second_haproxy_keeps_serving_its_copy_and_stops_on_drop() {
    let sb = Sandbox::start();
    let pem = sb.cert_dir().join("old.example.com.pem");
    fs::write(&pem, self_signed_pem("old.example.com")).unwrap();
    sb.reload_haproxy();
    let old = serial_hex(&sb.served_leaf_unverified("old.example.com"));

    let second = sb.start_second_haproxy();
    assert_ne!(second.https_port, sb.https_port());
    assert_eq!(serial_hex(&second.served_leaf_unverified("old.example.com")), old);
    assert_eq!(
        second.served_leaf_unverified("other.example.com"),
        sb.served_leaf_unverified("other.example.com"),
        "the same default certificate"
    );

    // A renewal that reaches only the sandbox's HAProxy.
    fs::write(&pem, self_signed_pem("old.example.com")).unwrap();
    sb.reload_haproxy();
    let new = serial_hex(&sb.served_leaf_unverified("old.example.com"));
    assert_ne!(new, old);
    assert_eq!(serial_hex(&second.served_leaf_unverified("old.example.com")), old);

    let (port, pids) = (second.https_port, second.process_ids());
    assert!(pids.len() >= 2, "expected a master and a worker: {pids:?}");
    drop(second);
    let left: Vec<u32> = pids.into_iter().filter(|&pid| process_alive(pid)).collect();
    assert!(left.is_empty(), "still running after drop: {left:?}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
    // The sandbox's own HAProxy is untouched.
    assert_eq!(serial_hex(&sb.served_leaf_unverified("old.example.com")), new);
}

/// Load with 3 reloads under way, each once the load has run a moment.
fn load_across_reloads(sb: &Sandbox) -> LoadReport {
    let load = sb.start_load(LoadOptions {
        max_duration: Duration::from_secs(15),
        ..LoadOptions::default()
    });
    sleep(Duration::from_millis(500));
    for _ in 0..3 {
        sb.reload_haproxy();
        sleep(Duration::from_millis(500));
    }
    load.stop()
}

#[test]
fn load_drops_nothing_and_reloads_close_keepalive_connections() {
    let sb = Sandbox::start();
    let default_serial = serial_hex(&sb.served_leaf_unverified("load.invalid"));

    let steady = sb
        .start_load(LoadOptions {
            max_duration: Duration::from_secs(2),
            ..LoadOptions::default()
        })
        .wait();
    eprintln!("steady: {steady}");
    assert_eq!(steady.failed, 0, "{steady}");
    assert_eq!(steady.keepalive_closed_by_server, 0, "{steady}");
    assert_eq!(steady.keepalive_reconnects, 0, "{steady}");
    assert!(steady.requests > 100, "{steady}");
    assert!(steady.new_connections > 0, "{steady}");
    assert_eq!(
        steady.serials_seen.iter().collect::<Vec<_>>(),
        [&default_serial],
        "{steady}"
    );

    // Without the option a reload closes idle keep-alive connections at once, and a request sent on one
    // at that moment gets no answer (the notes measured this with Python). Recorded, not asserted.
    sb.set_idle_close_on_response(false);
    assert!(!sb.haproxy_cfg_text().contains("idle-close-on-response"));
    let without = load_across_reloads(&sb);
    eprintln!("3 reloads without idle-close-on-response: {without}");
    assert!(without.requests > 100, "{without}");

    // With it, the old worker answers one more request with `Connection: close`: nothing fails.
    sb.set_idle_close_on_response(true);
    let with = load_across_reloads(&sb);
    eprintln!("3 reloads with idle-close-on-response: {with}");
    assert_eq!(with.failed, 0, "{with}");
    assert!(
        with.keepalive_closed_by_server > 0,
        "reloads closed no keep-alive connection: {with}"
    );
    assert!(with.requests > 100, "{with}");
    assert_eq!(sb.reload_count(), 0, "the harness's reloads are not counted");
}
