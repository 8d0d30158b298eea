//! `[fleet]` on its own: `hapcert fleet keygen` writes a key (0600, never over a file), `check-config` accepts a fleet
//! and shows it without the key, and with etcd unreachable `run`, `renew` and the daemon order nothing alone (no
//! certificate is within emergency_days of expiry).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{Sandbox, assert_exit, closed_port, file_mode, stderr, stdout};

const UNREACHABLE: &str = "the fleet's store (etcd) cannot be reached";

#[test]
fn fleet_keygen_writes_a_0600_key_once_and_a_fleet_config_is_checked_but_not_run() {
    let sandbox = Sandbox::start();
    let key_file = sandbox.dir().join("fleet.key");
    let key_path = key_file.display().to_string();

    let out = sandbox.hapcert(&["fleet", "keygen", "--out", &key_path]);
    assert_exit(&out, 0);
    let key = fs::read_to_string(&key_file).unwrap();
    assert!(key.starts_with("hapcert-fleet-key-v1:") && key.ends_with('\n'), "{key}");
    assert_eq!(file_mode(&key_file), 0o600);
    let secret = key.trim().strip_prefix("hapcert-fleet-key-v1:").unwrap();
    assert!(
        !stdout(&out).contains(secret) && !stderr(&out).contains(secret),
        "the key is never printed"
    );
    assert!(stdout(&out).contains(&format!("wrote a new fleet key to {key_path} (mode 0600, id ")));

    let again = sandbox.hapcert(&["fleet", "keygen", "--out", &key_path]);
    assert_exit(&again, 2);
    assert!(
        stderr(&again).contains("already exists; a fleet key is never overwritten"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        fs::read_to_string(&key_file).unwrap(),
        key,
        "the first key is left alone"
    );

    let etcd = format!("http://127.0.0.1:{}", closed_port());
    let mut config = sandbox.base_config();
    config += &format!(
        "\n[fleet]\netcd = [\"{etcd}\"]\nprefix = \"/hapcert/it\"\nnode = \"lb1\"\nkey_file = \"{key_path}\"\n\
         advertise = \"127.0.0.1:{}\"\n\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n",
        sandbox.http_port()
    );
    sandbox.write_config_text(&config);

    let checked = sandbox.hapcert(&["check-config"]);
    assert_exit(&checked, 0);
    let summary = stdout(&checked);
    assert!(
        summary.contains(&format!("  fleet:       node lb1 under /hapcert/it on etcd {etcd}\n"))
            && summary.contains(&format!("key {key_path} (id ")),
        "{summary}"
    );
    assert!(!summary.contains(secret), "the key is never shown: {summary}");

    // etcd cannot be reached: nothing is ordered alone, since no certificate is within emergency_days of expiry.
    for args in [&["run"][..], &["renew"], &["renew", "--force", "site"]] {
        let out = sandbox.hapcert(args);
        assert!(
            stderr(&out).contains(UNREACHABLE) && stdout(&out).contains("the fleet's store cannot be reached"),
            "{args:?}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert_ne!(out.status.code(), Some(0), "{args:?}: held back is not a success");
    }
    assert!(
        !sandbox.cert_dir().join("site.pem").exists(),
        "nothing was ordered or deployed"
    );
    assert!(
        !sandbox.pebble_log().contains("finalize"),
        "the CA saw no order:\n{}",
        sandbox.pebble_log()
    );

    // A key other users can read is refused, as is a file that is not a fleet key.
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).unwrap();
    let leaked = sandbox.hapcert(&["check-config"]);
    assert_exit(&leaked, 2);
    assert!(
        stderr(&leaked).contains(&format!(
            "fleet.key_file: {key_path} holds a secret and other users can read it (mode 0644): chmod 600 {key_path}"
        )),
        "{}",
        stderr(&leaked)
    );
    fs::write(&key_file, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = sandbox.hapcert(&["check-config"]);
    assert_exit(&wrong, 2);
    assert!(
        stderr(&wrong).contains("is not a hapcert fleet key (it must be one line starting with hapcert-fleet-key-v1:)"),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn a_running_daemon_takes_a_fleet_config_on_sighup_and_serves_on_while_etcd_is_unreachable() {
    let sandbox = Sandbox::start();
    let single = sandbox.base_config() + "\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n";
    sandbox.write_config_text(&single);
    let mut daemon = sandbox.start_daemon(&[]);
    daemon.wait_for_log("hapcert daemon started", Duration::from_secs(30));

    let key_file = sandbox.dir().join("fleet.key");
    let key_path = key_file.display().to_string();
    assert_exit(&sandbox.hapcert(&["fleet", "keygen", "--out", &key_path]), 0);
    let fleet = format!(
        "{single}\n[fleet]\netcd = [\"http://127.0.0.1:{}\"]\nnode = \"lb1\"\nkey_file = \"{key_path}\"\n",
        closed_port()
    );
    sandbox.write_config_text(&fleet);
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("config reloaded", Duration::from_secs(60));
    daemon.wait_for_log(UNREACHABLE, Duration::from_secs(60));
    assert!(daemon.is_running());

    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        daemon.log()
    );
}
