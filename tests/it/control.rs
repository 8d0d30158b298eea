//! The daemon's control socket against a real Pebble and HAProxy: `hapcert renew --force NAME` by hand while the
//! daemon runs in side-port mode (and holds the side port) is run by the daemon, with the same stdout, exit code and
//! log lines as without it; a user other than root is refused; a socket file left by a killed daemon is ignored.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{HapcertDaemon, Sandbox, assert_exit, leaf_der_from_pem_file, serial_hex, stderr, stdout};

const CONFIG_TAIL: &str =
    "\n[daemon]\njitter = \"0s\"\n\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n";

fn disk_serial(sandbox: &Sandbox) -> Option<String> {
    let path = sandbox.cert_dir().join("site.pem");
    path.exists().then(|| serial_hex(&leaf_der_from_pem_file(&path)))
}

fn served_serial(sandbox: &Sandbox) -> String {
    serial_hex(&sandbox.served_leaf_unverified("a.example.com"))
}

/// A sandbox whose daemon has issued and serves `site`, its first pass over.
fn daemon_serving(sandbox: &Sandbox) -> HapcertDaemon {
    sandbox.write_config_text(&(sandbox.base_config() + CONFIG_TAIL));
    let mut daemon = sandbox.start_daemon(&[]);
    daemon.wait_for("the first certificate served", Duration::from_secs(60), |_| {
        disk_serial(sandbox).is_some_and(|disk| served_serial(sandbox) == disk)
    });
    daemon.wait_for_log("next renewal pass", Duration::from_secs(30));
    daemon
}

/// stdout of `renew` with what changes from one renewal to the next (serial, expiry) cut out.
fn renewed_line_shape(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("renewed   site: "))
        .unwrap_or_else(|| panic!("no renewed line: {out}"));
    let after_expiry = line.split_once(" UTC, ").map_or(line, |(_, rest)| rest);
    format!("renewed   site: serial _, expires _, {after_expiry}")
}

/// The messages of the INFO and WARN lines of a renewal, without the time, level, span or fields: what a person
/// reading the log sees, whichever process wrote it. The control socket's own lines are left out.
fn messages(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" INFO ").or_else(|| line.split_once(" WARN "))?;
            // The daemon's text log puts the request's span first; the forwarded line has none.
            let rest = rest
                .strip_prefix("control{")
                .and_then(|r| r.split_once("}: "))
                .map_or(rest, |(_, r)| r);
            let words: Vec<&str> = rest.split(' ').take_while(|w| !is_field(w)).collect();
            let message = words.join(" ");
            (!message.starts_with("control socket")).then_some(message)
        })
        .collect()
}

fn is_field(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(key, _)| !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

#[test]
fn a_forced_renewal_by_hand_is_run_by_the_daemon_and_haproxy_serves_it() {
    let sandbox = Sandbox::start();
    let mut daemon = daemon_serving(&sandbox);
    let first = disk_serial(&sandbox).unwrap();
    assert!(sandbox.control_socket().exists());

    let by_daemon = sandbox.hapcert(&["renew", "--force", "site"]);
    assert_exit(&by_daemon, 0);
    let renewed = disk_serial(&sandbox).unwrap();
    assert_ne!(renewed, first, "a new certificate is on disk");
    assert_eq!(served_serial(&sandbox), renewed, "HAProxy serves the new certificate");
    let out = stdout(&by_daemon);
    assert!(
        out.to_lowercase()
            .contains(&format!("serial {}", renewed.to_lowercase())),
        "{out}"
    );
    let log = daemon.log();
    assert!(log.contains("control socket: renew site --force asked"), "{log}");
    assert!(
        log.contains("control socket: renew site --force done uid=0 exit_code=0"),
        "{log}"
    );
    // The request's log lines came back to the client, and the daemon kept them in its own log too.
    let client_log = stderr(&by_daemon);
    assert!(client_log.contains("renewal forced"), "{client_log}");
    assert!(!messages(&client_log).is_empty(), "{client_log}");
    for message in messages(&client_log) {
        assert!(log.contains(&message), "the daemon's log has {message:?} too:\n{log}");
    }

    // status through the daemon: what the run just recorded.
    let status = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&status, 0);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["last_result"]["outcome"], "renewed", "{rows:#}");

    // A usage error ends the same way through the daemon as without it: exit 2, the message on stderr.
    let unknown = sandbox.hapcert(&["renew", "--force", "nosuch"]);
    assert_exit(&unknown, 2);
    let refusal = "hapcert: no certificate named 'nosuch'";
    assert!(stderr(&unknown).contains(refusal), "{}", stderr(&unknown));

    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        daemon.log()
    );
    assert!(
        !sandbox.control_socket().exists(),
        "a stopped daemon removes its socket"
    );

    // The same command without a daemon: the same stdout (but for the serial and expiry), the same exit code, the
    // same log messages.
    let here = sandbox.hapcert(&["renew", "--force", "site"]);
    assert_exit(&here, 0);
    assert_eq!(renewed_line_shape(&stdout(&here)), renewed_line_shape(&out));
    assert_eq!(
        stdout(&here).lines().count(),
        out.lines().count(),
        "{}\n{out}",
        stdout(&here)
    );
    let local = messages(&stderr(&here));
    for message in messages(&client_log) {
        assert!(
            local.contains(&message),
            "{message:?} is logged without a daemon too: {local:#?}"
        );
    }
    assert_eq!(served_serial(&sandbox), disk_serial(&sandbox).unwrap());
    let unknown_here = sandbox.hapcert(&["renew", "--force", "nosuch"]);
    assert_exit(&unknown_here, 2);
    assert!(stderr(&unknown_here).contains(refusal), "{}", stderr(&unknown_here));
}

/// `hapcert renew --force site` as `nobody`, with the daemon's socket named.
fn renew_as_nobody(sandbox: &Sandbox) -> Output {
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_hapcert"))
        .arg("--config")
        .arg(sandbox.config_path())
        .args(["renew", "--force", "site"])
        .env("HAPCERT_CONTROL", sandbox.control_socket())
        .env_remove("HAPCERT_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run setpriv");
    eprintln!(
        "$ (as nobody) hapcert renew --force site\n{}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    output
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_user_other_than_root_is_refused() {
    let sandbox = Sandbox::start();
    let mut daemon = daemon_serving(&sandbox);
    let first = disk_serial(&sandbox).unwrap();
    // nobody may read the config and reach the socket's directory, as on a host where /etc/hapcert is readable.
    set_mode(sandbox.dir(), 0o711);
    set_mode(&sandbox.config_path(), 0o644);

    // The socket's mode 0600 stops nobody at connect.
    let at_connect = renew_as_nobody(&sandbox);
    assert_eq!(at_connect.status.code(), Some(1));
    assert!(
        stderr(&at_connect).contains("only root may ask it"),
        "{}",
        stderr(&at_connect)
    );

    // With the mode opened up, the daemon's own check (SO_PEERCRED) refuses it.
    set_mode(&sandbox.control_socket(), 0o666);
    let by_peer = renew_as_nobody(&sandbox);
    assert_eq!(by_peer.status.code(), Some(1));
    assert!(
        stderr(&by_peer).contains("the daemon refused: only root may ask it (this is uid 65534)"),
        "{}",
        stderr(&by_peer)
    );
    assert!(stdout(&by_peer).is_empty());
    daemon.wait_for_log("refused a request from a user other than root", Duration::from_secs(5));
    assert_eq!(disk_serial(&sandbox).unwrap(), first, "nothing was renewed");
    assert!(!daemon.log().contains("control socket: renew site"), "{}", daemon.log());
}

#[test]
fn a_socket_left_by_a_killed_daemon_is_ignored_and_replaced() {
    let sandbox = Sandbox::start();
    let mut daemon = daemon_serving(&sandbox);
    let first = disk_serial(&sandbox).unwrap();
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    assert!(
        sandbox.control_socket().exists(),
        "a killed daemon leaves its socket file"
    );

    let here = sandbox.hapcert(&["renew", "--force", "site"]);
    assert_exit(&here, 0);
    assert!(stdout(&here).starts_with("renewed   site: "), "{}", stdout(&here));
    let renewed = disk_serial(&sandbox).unwrap();
    assert_ne!(renewed, first);
    assert_eq!(served_serial(&sandbox), renewed);

    // A new daemon replaces the stale file; a second one beside it refuses to start.
    let mut second = sandbox.start_daemon(&[]);
    second.wait_for_log("removing a stale control socket", Duration::from_secs(30));
    second.wait_for_log("next renewal pass", Duration::from_secs(60));
    let mut third = sandbox.start_daemon(&[]);
    let exit = third.wait_exit(Duration::from_secs(30));
    assert_ne!(exit.code(), Some(0));
    assert!(
        third.log().contains("another hapcert daemon answers on"),
        "{}",
        third.log()
    );
    assert!(second.is_running());
    let status = sandbox.hapcert(&["status"]);
    assert_exit(&status, 0);
    assert!(
        second.log().contains("control socket: status asked"),
        "{}",
        second.log()
    );
}

#[test]
fn a_client_that_goes_away_does_not_stop_the_renewal_it_asked_for() {
    let sandbox = Sandbox::start();
    let mut daemon = daemon_serving(&sandbox);
    let first = disk_serial(&sandbox).unwrap();
    let mut client = sandbox.hapcert_cmd(&["renew", "--force", "site"]);
    client
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut client = client.spawn().expect("spawn hapcert renew");
    daemon.wait_for_log("control socket: renew site --force asked", Duration::from_secs(30));
    client.kill().expect("kill the client");
    client.wait().unwrap();

    daemon.wait_for_log(
        "control socket: renew site --force done uid=0 exit_code=0",
        Duration::from_secs(60),
    );
    let log = daemon.log();
    assert!(log.contains("the client went away"), "{log}");
    let renewed = disk_serial(&sandbox).unwrap();
    assert_ne!(renewed, first, "the renewal went on without its client");
    assert_eq!(served_serial(&sandbox), renewed);
}
