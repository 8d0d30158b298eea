//! The Runtime API client (`hapcert::edge::haproxy::runtime`) against a real HAProxy 2.6: hot replacement and its refusals,
//! adding a new certificate, the master socket with `show proc` and `reload`, and unreachable endpoints. These tests use
//! the library directly, not the hapcert binary. Their certificates come from a small CA made here, not from Pebble.

use std::future::Future;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use hapcert::edge::haproxy::runtime::{CertStatus, Endpoint, RuntimeApi, RuntimeError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};

use crate::harness::{Sandbox, serial_hex};

const RT: &str = "rt.example.com";
const OTHER: &str = "other.example.com";
const NEW: &str = "new.example.com";

/// A throwaway CA. Each certificate gets a serial chosen by the test, with the high bit set so that its DER has a sign
/// byte, which HAProxy and openssl leave out.
struct TestCa {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

struct Issued {
    /// Leaf, CA, key: the layout HAProxy reads.
    pem: String,
    cert_pem: String,
    key_pem: String,
    leaf_der: Vec<u8>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "hapcert runtime API test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, name: &str, serial: u8) -> Issued {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from_slice(&[0xf0, 0x0d, serial]));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        Issued {
            pem: [&cert_pem, &self.ca_pem, &key_pem]
                .map(|block| block.trim_end())
                .join("\n")
                + "\n",
            cert_pem,
            key_pem,
            leaf_der: cert.der().to_vec(),
        }
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn reload(sb: &Sandbox) {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.reload_command())
        .output()
        .unwrap();
    assert!(out.status.success(), "reload failed: {out:?}");
}

/// Writes each (name, certificate) into the cert dir as `<name>.pem` and reloads, so HAProxy serves them.
fn load(sb: &Sandbox, certs: &[(&str, &Issued)]) {
    for (name, issued) in certs {
        std::fs::write(pem_path(sb, name), &issued.pem).unwrap();
    }
    reload(sb);
    for (name, issued) in certs {
        assert_eq!(
            served_serial(sb, name),
            serial_hex(&issued.leaf_der),
            "{name} after the reload"
        );
    }
}

fn pem_path(sb: &Sandbox, name: &str) -> String {
    sb.cert_dir().join(format!("{name}.pem")).display().to_string()
}

fn served_serial(sb: &Sandbox, sni: &str) -> String {
    serial_hex(&sb.served_leaf_unverified(sni))
}

fn sha1_hex(der: &[u8]) -> String {
    digest(&SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn admin(sb: &Sandbox) -> RuntimeApi {
    RuntimeApi::admin(Endpoint::Unix(sb.haproxy_admin_sock()))
}

#[test]
fn replace_cert_swaps_the_served_certificate_without_a_reload() {
    let sb = Sandbox::start();
    let ca = TestCa::new();
    load(&sb, &[(RT, &ca.issue(RT, 1))]);
    let workers = sb.haproxy_worker_pids();
    let api = admin(&sb);
    let path = pem_path(&sb, RT);

    // CRLF and blank lines between the blocks, which the client must remove: a blank line would end the payload.
    let second = ca.issue(RT, 2);
    let messy = second
        .pem
        .replace("-----\n-----", "-----\n\n-----")
        .replace('\n', "\r\n");
    block_on(api.replace_cert(&path, &messy)).unwrap();

    assert_eq!(served_serial(&sb, RT), serial_hex(&second.leaf_der));
    assert_eq!(sb.haproxy_worker_pids(), workers, "no reload");
    let info = block_on(api.cert_info(&path)).unwrap();
    assert_eq!(info.filename, path);
    assert_eq!(info.status, CertStatus::Used);
    assert_eq!(info.sha1_fingerprint, Some(sha1_hex(&second.leaf_der)));
    assert_eq!(info.serial, Some(serial_hex(&second.leaf_der)));
    assert_eq!(info.sans, [RT]);
    assert_eq!(info.algorithm.as_deref(), Some("EC256"));
    assert_eq!(block_on(api.loaded_certs()).unwrap().transaction, None);
}

#[test]
fn a_key_that_does_not_match_is_refused_at_commit_and_aborted() {
    let sb = Sandbox::start();
    let ca = TestCa::new();
    let first = ca.issue(RT, 1);
    load(&sb, &[(RT, &first)]);
    let api = admin(&sb);
    let path = pem_path(&sb, RT);

    let (cert, stranger) = (ca.issue(RT, 2), ca.issue(RT, 3));
    let mismatched = format!("{}{}", cert.cert_pem, stranger.key_pem);
    match block_on(api.replace_cert(&path, &mismatched)) {
        Err(RuntimeError::Refused {
            command,
            reply,
            aborted,
        }) => {
            assert_eq!(command, format!("commit ssl cert {path}"));
            assert!(
                reply.contains("inconsistencies between private key and certificate"),
                "{reply}"
            );
            assert!(aborted, "the failed commit left a transaction, which must be aborted");
        }
        other => panic!("expected a refused commit, got {other:?}"),
    }
    assert_eq!(served_serial(&sb, RT), serial_hex(&first.leaf_der));
    assert_eq!(block_on(api.loaded_certs()).unwrap().transaction, None);
}

#[test]
fn garbage_and_unknown_paths_change_nothing() {
    let sb = Sandbox::start();
    let ca = TestCa::new();
    let first = ca.issue(RT, 1);
    load(&sb, &[(RT, &first)]);
    let api = admin(&sb);
    let path = pem_path(&sb, RT);

    match block_on(api.replace_cert(&path, "hello\nthis is not a PEM\n")) {
        Err(RuntimeError::Refused { command, reply, .. }) => {
            assert_eq!(command, format!("set ssl cert {path} <<"));
            assert!(reply.contains("unable to load certificate"), "{reply}");
        }
        other => panic!("expected a refused set, got {other:?}"),
    }
    assert_eq!(served_serial(&sb, RT), serial_hex(&first.leaf_der));
    assert_eq!(block_on(api.loaded_certs()).unwrap().transaction, None);

    let unknown = pem_path(&sb, "rt.example.org");
    match block_on(api.replace_cert(&unknown, &ca.issue(RT, 2).pem)) {
        Err(error @ RuntimeError::NotLoaded { .. }) => {
            let RuntimeError::NotLoaded { path: named, loaded } = &error else {
                unreachable!()
            };
            assert_eq!(named, &unknown);
            assert_eq!(loaded.first(), Some(&path), "closest name first: {error}");
        }
        other => panic!("expected NotLoaded, got {other:?}"),
    }
    assert!(matches!(
        block_on(api.cert_info(&unknown)),
        Err(RuntimeError::NotLoaded { .. })
    ));
    assert_eq!(served_serial(&sb, RT), serial_hex(&first.leaf_der));
}

#[test]
fn another_paths_open_transaction_stops_replace_before_it_sends_anything() {
    let sb = Sandbox::start();
    let ca = TestCa::new();
    let (first, other_first) = (ca.issue(RT, 1), ca.issue(OTHER, 2));
    load(&sb, &[(RT, &first), (OTHER, &other_first)]);
    let api = admin(&sb);
    let (path, other_path) = (pem_path(&sb, RT), pem_path(&sb, OTHER));

    // Someone else's transaction, opened by hand.
    let other_next = ca.issue(OTHER, 3);
    let reply = block_on(api.command(&format!("set ssl cert {other_path} <<\n{}\n", other_next.pem))).unwrap();
    assert_eq!(reply, format!("Transaction created for certificate {other_path}!\n\n"));

    match block_on(api.replace_cert(&path, &ca.issue(RT, 4).pem)) {
        Err(RuntimeError::OtherTransaction { open, wanted }) => assert_eq!((open, wanted), (other_path.clone(), path)),
        other => panic!("expected OtherTransaction, got {other:?}"),
    }
    // The other transaction is untouched: still open, still holding its own certificate and not ours.
    assert_eq!(
        block_on(api.loaded_certs()).unwrap().transaction,
        Some(other_path.clone())
    );
    let pending = block_on(api.command(&format!("show ssl cert *{other_path}"))).unwrap();
    let wanted_serial = format!("Serial: {}\n", serial_hex(&other_next.leaf_der).to_uppercase());
    assert!(pending.contains(&wanted_serial), "{pending}");
    assert_eq!(served_serial(&sb, RT), serial_hex(&first.leaf_der));

    let reply = block_on(api.command(&format!("abort ssl cert {other_path}"))).unwrap();
    assert_eq!(
        reply,
        format!("Transaction aborted for certificate '{other_path}'!\n\n")
    );
    assert_eq!(served_serial(&sb, OTHER), serial_hex(&other_first.leaf_der));
}

#[test]
fn add_cert_serves_a_new_certificate_without_a_reload() {
    let sb = Sandbox::start();
    let ca = TestCa::new();
    load(&sb, &[(RT, &ca.issue(RT, 1))]);
    let workers = sb.haproxy_worker_pids();
    let api = admin(&sb);
    let path = pem_path(&sb, NEW);
    let new = ca.issue(NEW, 2);
    // As hapcert does: the file first (a reload would otherwise drop the certificate), then the runtime update.
    std::fs::write(&path, &new.pem).unwrap();

    // A crt-list HAProxy does not have is caught before anything is created.
    match block_on(api.add_cert(&path, &new.pem, "/nonexistent/certs")) {
        Err(RuntimeError::NotLoaded { path, loaded }) => {
            assert_eq!(path, "/nonexistent/certs");
            assert_eq!(loaded, [sb.cert_dir().display().to_string()]);
        }
        other => panic!("expected NotLoaded for the crt-list, got {other:?}"),
    }
    assert!(!block_on(api.loaded_certs()).unwrap().files.contains(&path));

    // HAProxy names the crt-list of `crt <dir>/` after the directory, without the slash.
    let crt_list = sb.cert_dir().display().to_string();
    block_on(api.add_cert(&path, &new.pem, &crt_list)).unwrap();

    assert_eq!(served_serial(&sb, NEW), serial_hex(&new.leaf_der));
    assert_eq!(sb.haproxy_worker_pids(), workers, "no reload");
    let info = block_on(api.cert_info(&path)).unwrap();
    assert_eq!(info.status, CertStatus::Used);
    assert_eq!(info.sha1_fingerprint, Some(sha1_hex(&new.leaf_der)));
}

#[test]
fn master_socket_replaces_shows_proc_and_reloads() {
    let sb = Sandbox::start();
    let ca = TestCa::new();
    load(&sb, &[(RT, &ca.issue(RT, 1))]);
    let master = RuntimeApi::master(Endpoint::Unix(sb.haproxy_master_sock()));
    let path = pem_path(&sb, RT);

    let before = block_on(master.show_proc()).unwrap();
    let workers_before = sb.haproxy_worker_pids();
    assert_eq!(before.failed, 0);

    let second = ca.issue(RT, 2);
    block_on(master.replace_cert(&path, &second.pem)).unwrap();
    assert_eq!(served_serial(&sb, RT), serial_hex(&second.leaf_der));
    assert_eq!(sb.haproxy_worker_pids(), workers_before, "no reload");
    assert_eq!(
        block_on(master.cert_info(&path)).unwrap().sha1_fingerprint,
        Some(sha1_hex(&second.leaf_der))
    );

    // reload() only sends the command; the new worker shows up in show_proc a moment later.
    block_on(master.reload()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        // While the master re-executes itself, a connection can be reset; production code retries too.
        let after = match block_on(master.show_proc()) {
            Ok(after) => after,
            Err(e) if Instant::now() < deadline => {
                eprintln!("show proc during the reload: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => panic!("show proc after the reload: {e}"),
        };
        if after.reloads > before.reloads || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(after.reloads, before.reloads + 1, "{after:?}");
    assert_eq!(after.failed, 0, "{after:?}");
    // hapcert reads only the master line; the harness reads the worker list its own way.
    let workers_after = sb.haproxy_worker_pids();
    assert_eq!(workers_after.len(), 1, "{workers_after:?}");
    assert!(
        !workers_before.contains(&workers_after[0]),
        "{workers_before:?} -> {workers_after:?}"
    );

    // Master-only commands are refused on the admin socket before anything is sent.
    assert!(matches!(block_on(admin(&sb).show_proc()), Err(RuntimeError::NotMaster)));
}

#[test]
fn unreachable_endpoints_are_connect_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("admin.sock");
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let cases = [
        RuntimeApi::admin(Endpoint::Unix(missing.clone())),
        RuntimeApi::admin(Endpoint::Tcp(closed_port)),
        // The master client retries refused connections for a second (a reload in progress), then gives up.
        RuntimeApi::master(Endpoint::Unix(missing)),
    ];
    for api in cases {
        // Giving up at all is the behaviour under test; how fast is the benchmarks' business.
        let result = block_on(api.loaded_certs());
        match result {
            Err(error @ RuntimeError::Connect { .. }) => {
                assert!(error.to_string().contains(&api.endpoint().to_string()), "{error}")
            }
            other => panic!("{}: expected a Connect error, got {other:?}", api.endpoint()),
        }
    }
}
