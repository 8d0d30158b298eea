//! Smoke tests of the harness itself: they do not run hapcert, only the sandbox around it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::harness::{
    Sandbox, SandboxOptions, http_get, https_get, leaf_der_from_pem_file, process_alive, san_dns_names, serial_hex,
    validity,
};

#[test]
fn sandbox_serves_default_cert_and_routes_challenges() {
    let sb = Sandbox::start();

    let leaf = sb.served_leaf_unverified("anything.example.com");
    assert_eq!(san_dns_names(&leaf), ["default.invalid"]);

    let root = sb.pebble_root_pem();
    assert!(
        root.starts_with("-----BEGIN CERTIFICATE-----"),
        "not a PEM certificate: {root}"
    );

    let dir = https_get(&sb.acme_directory(), &sb.pebble_listener_ca());
    assert_eq!(dir.status, 200, "{dir:?}");
    let dir: serde_json::Value = serde_json::from_slice(&dir.body).expect("directory is JSON");
    assert!(dir["newOrder"].is_string(), "no newOrder in {dir}");

    // Stand in for hapcert's responder on the side port: HAProxy must forward the challenge path.
    let side = TcpListener::bind(("127.0.0.1", sb.side_port())).expect("bind side port");
    let responder = thread::spawn(move || {
        let (stream, _) = side.accept().expect("accept");
        let mut request_line = String::new();
        let mut reader = BufReader::new(stream);
        reader.read_line(&mut request_line).expect("read request line");
        let mut stream = reader.into_inner();
        let body = "token.from-side-port";
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write response");
        request_line
    });
    let base = format!("http://127.0.0.1:{}", sb.http_port());
    let challenge = http_get(&format!("{base}/.well-known/acme-challenge/x"));
    assert_eq!(challenge.status, 200, "{challenge:?}");
    assert_eq!(challenge.text(), "token.from-side-port");
    let request_line = responder.join().expect("responder thread");
    assert!(
        request_line.starts_with("GET /.well-known/acme-challenge/x "),
        "{request_line:?}"
    );

    let other = http_get(&format!("{base}/other"));
    assert!(matches!(other.status, 301 | 302), "{other:?}");
    assert!(
        other.header("location").is_some_and(|l| l.starts_with("https://")),
        "{other:?}"
    );

    // The layout hapcert will find.
    assert_eq!(std::fs::read_dir(sb.cert_dir()).expect("cert dir").count(), 0);
    assert!(!sb.state_dir().exists());
    let check = Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.check_command())
        .output()
        .expect("run check");
    assert!(check.status.success(), "check command failed: {check:?}");
}

#[test]
fn config_is_valid_toml() {
    let sb = Sandbox::start();
    let path = sb.write_config(&[
        ("site1", &["a.example.com", "www.a.example.com"]),
        ("site2", &["b.example.com"]),
    ]);
    let config: toml::Table = std::fs::read_to_string(path).unwrap().parse().expect("valid TOML");
    assert_eq!(config["acme"]["directory"].as_str(), Some(sb.acme_directory().as_str()));
    assert_eq!(
        config["haproxy"]["reload_command"].as_str(),
        Some(sb.reload_command().as_str())
    );
    let certs = config["certificate"].as_array().expect("[[certificate]] tables");
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0]["name"].as_str(), Some("site1"));
    assert_eq!(certs[0]["domains"].as_array().map(Vec::len), Some(2));
}

#[test]
fn reload_command_starts_a_new_worker() {
    let sb = Sandbox::start();
    let before = sb.haproxy_worker_pids();
    assert!(!before.is_empty());

    let reload = Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.reload_command())
        .output()
        .expect("run reload");
    assert!(reload.status.success(), "reload failed: {reload:?}");

    let after = sb.haproxy_worker_pids();
    assert!(
        !after.is_empty() && after.iter().all(|pid| !before.contains(pid)),
        "{before:?} -> {after:?}"
    );
    assert_eq!(sb.reload_count(), 1);
    sb.served_leaf_unverified("after-reload.example.com");
}

#[test]
fn drop_leaves_no_process_behind() {
    let sb = Sandbox::start();
    // One reload first, so an old worker may be among the processes to clean up.
    let reload = Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.reload_command())
        .status()
        .expect("run reload");
    assert!(reload.success());
    let pids = sb.process_ids();
    assert!(
        pids.len() >= 4,
        "expected pebble, challtestsrv, haproxy master and worker: {pids:?}"
    );
    drop(sb);
    let left: Vec<u32> = pids.into_iter().filter(|&pid| process_alive(pid)).collect();
    assert!(left.is_empty(), "still running after drop: {left:?}");
}

#[test]
fn reload_command_fails_on_a_broken_config() {
    let sb = Sandbox::start();
    let before = sb.haproxy_worker_pids();
    let cfg = std::fs::read_to_string(sb.haproxy_cfg()).unwrap();
    std::fs::write(sb.haproxy_cfg(), cfg.replace("mode http", "mode nonsense")).unwrap();

    let started = std::time::Instant::now();
    let reload = Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.reload_command())
        .output()
        .expect("run reload");
    eprintln!("failed reload took {:?}: {reload:?}", started.elapsed());
    assert!(
        !reload.status.success(),
        "reload of a broken config succeeded: {reload:?}"
    );
    // The old worker keeps serving.
    assert_eq!(sb.haproxy_worker_pids(), before);
    sb.served_leaf_unverified("still-served.example.com");
}

/// The whole route the sandbox promises, with instant-acme standing in for hapcert: Pebble resolves the
/// name to 127.0.0.1 through challtestsrv, validates HTTP-01 through HAProxy's plain frontend to the side
/// port, issues; HAProxy then serves the certificate from the cert dir after a reload, and `served_leaf`
/// verifies it against Pebble's root.
#[test]
fn pebble_validates_through_haproxy_and_issued_cert_verifies() {
    let sb = Sandbox::start_with(SandboxOptions {
        cert_validity_secs: Some(3600),
        ..SandboxOptions::default()
    });
    let name = "smoke.example.com";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (chain_pem, key_pem) = runtime.block_on(issue_with_instant_acme(&sb, name));

    let pem_path = sb.cert_dir().join(format!("{name}.pem"));
    std::fs::write(&pem_path, format!("{}\n{}\n", chain_pem.trim_end(), key_pem.trim_end())).unwrap();
    let reload = Command::new("/bin/sh")
        .arg("-c")
        .arg(sb.reload_command())
        .output()
        .expect("run reload");
    assert!(reload.status.success(), "reload failed: {reload:?}");

    let served = sb.served_leaf(name);
    assert_eq!(san_dns_names(&served), [name]);
    assert_eq!(serial_hex(&served), serial_hex(&leaf_der_from_pem_file(&pem_path)));
    let (not_before, not_after) = validity(&served);
    assert!(
        (not_after - not_before).whole_seconds().abs_diff(3600) <= 1,
        "{not_before} .. {not_after}"
    );
    // Clients without a known SNI still get the default certificate.
    assert_eq!(
        san_dns_names(&sb.served_leaf_unverified("other.example.com")),
        ["default.invalid"]
    );
}

/// Gets a certificate for `name` from the sandbox's Pebble, answering HTTP-01 on the side port.
/// Returns (certificate chain PEM, private key PEM).
async fn issue_with_instant_acme(sb: &Sandbox, name: &str) -> (String, String) {
    use instant_acme::{Account, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy};

    let (account, _) = Account::builder_with_root(sb.pebble_listener_ca())
        .unwrap()
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            sb.acme_directory(),
            None,
        )
        .await
        .expect("create ACME account");
    let identifiers = [Identifier::Dns(name.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .expect("new order");

    let side = tokio::net::TcpListener::bind(("127.0.0.1", sb.side_port()))
        .await
        .expect("bind side port");
    let mut authorizations = order.authorizations();
    let mut authz = authorizations
        .next()
        .await
        .expect("one authorization")
        .expect("fetch authorization");
    let mut challenge = authz.challenge(ChallengeType::Http01).expect("an http-01 challenge");
    let path = format!("/.well-known/acme-challenge/{}", challenge.token);
    let key_auth = challenge.key_authorization().as_str().to_owned();
    let responder = tokio::spawn(serve_one_token(side, path, key_auth));
    challenge.set_ready().await.expect("challenge ready");

    let retry = RetryPolicy::new().initial_delay(Duration::from_millis(50)).backoff(1.5);
    let status = order.poll_ready(&retry).await.expect("poll order");
    assert_eq!(
        status,
        OrderStatus::Ready,
        "validation through HAProxy failed: {:?}",
        order.state()
    );
    responder.abort();

    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    order.finalize_csr(csr.der()).await.expect("finalize");
    let chain = order.poll_certificate(&retry).await.expect("certificate");
    (chain, key.serialize_pem())
}

/// Answers every GET for `path` with `body` (Pebble may fetch more than once), 404 for anything else.
async fn serve_one_token(listener: tokio::net::TcpListener, path: String, body: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0; 4096];
        let n = stream.read(&mut buf).await.unwrap_or(0);
        let request = String::from_utf8_lossy(&buf[..n]);
        let found = request.starts_with(&format!("GET {path} "));
        let (status, body) = if found {
            ("200 OK", body.as_str())
        } else {
            ("404 Not Found", "")
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
    }
}

#[test]
#[should_panic(expected = "does not verify against Pebble's root")]
fn served_leaf_rejects_the_self_signed_default() {
    Sandbox::start().served_leaf("default.invalid");
}
