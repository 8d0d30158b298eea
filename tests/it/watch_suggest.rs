//! `hapcert watch suggest` against a real HAProxy configuration: the sandbox's, loaded with a `-f` directory of
//! backends that `haproxy -c` accepts, as the config's check_command names them. It proposes the TLS backends and only
//! them, and what it prints, pasted into the config, passes `check-config`.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::harness::{Sandbox, assert_exit, show, stderr, stdout, tools};

/// A TOML basic string (serde_json's escaping is valid TOML for these paths).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The `[[watch]]` tables of `text`, each as (name, endpoint, sni, ca_bundle).
fn watches(text: &str) -> Vec<(String, String, Option<String>, Option<String>)> {
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("not TOML ({e}):\n{text}"));
    let field = |w: &toml::Value, key: &str| w.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    table
        .get("watch")
        .and_then(|w| w.as_array())
        .map(|list| {
            list.iter()
                .map(|w| {
                    (
                        field(w, "name").unwrap_or_default(),
                        field(w, "endpoint").unwrap_or_default(),
                        field(w, "sni"),
                        field(w, "ca_bundle"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn proposes_exactly_the_two_tls_backends_and_the_output_passes_check_config() {
    let sandbox = Sandbox::start();
    let conf_d = sandbox.dir().join("conf.d");
    fs::create_dir(&conf_d).unwrap();
    let ca = sandbox.pebble_roots_file();
    let backends = format!(
        "\
backend api
    server api1 127.0.0.1:9443 ssl verify required ca-file {ca} sni str(api.internal) check

backend legacy
    default-server ssl verify none
    server old1 [::1]:8443

backend static
    server web1 127.0.0.1:8080 check
",
        ca = ca.display()
    );
    fs::write(conf_d.join("20-backends.cfg"), &backends).unwrap();
    // Not loaded by HAProxy (no .cfg), so not read either.
    fs::write(
        conf_d.join("30-old.cfg.bak"),
        "backend old\n    server x 10.9.9.9:443 ssl verify none\n",
    )
    .unwrap();
    let check = format!(
        "{} -c -f {} -f {}",
        tools::tools().haproxy.display(),
        sandbox.haproxy_cfg().display(),
        conf_d.display()
    );
    let checked = Command::new("/bin/sh").arg("-c").arg(&check).output().unwrap();
    assert_exit(&checked, 0);

    let config = sandbox
        .base_config()
        .replace(&quoted(&sandbox.check_command()), &quoted(&check))
        + "\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n";
    assert!(config.contains(&conf_d.display().to_string()), "{config}");
    sandbox.write_config_text(&config);

    let out = sandbox.hapcert(&["watch", "suggest"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for file in [sandbox.haproxy_cfg(), conf_d.join("20-backends.cfg")] {
        assert!(
            text.contains(&format!("#   {}\n", file.display())),
            "{file:?} not named:\n{text}"
        );
    }
    assert!(!text.contains("30-old"), "{text}");
    assert_eq!(
        watches(&text),
        [
            (
                "api-api1".to_owned(),
                "127.0.0.1:9443".to_owned(),
                Some("api.internal".to_owned()),
                Some(ca.display().to_string())
            ),
            ("legacy-old1".to_owned(), "[::1]:8443".to_owned(), None, None),
        ],
        "{text}"
    );
    assert!(
        text.contains("# backend api, server api1: ssl verify required ("),
        "{text}"
    );
    assert!(
        text.contains("# backend legacy, server old1: ssl verify none ("),
        "{text}"
    );
    assert!(text.contains("HAProxy sends no SNI"), "{text}");
    assert!(!text.contains("web1") && !text.contains("hapcert_challenge"), "{text}");

    // Pasted in as printed, the config is accepted, and the entries are no longer proposed.
    sandbox.write_config_text(&format!("{config}\n{text}"));
    let checked = sandbox.hapcert(&["check-config"]);
    assert_exit(&checked, 0);
    let again = sandbox.hapcert(&["watch", "suggest"]);
    assert_exit(&again, 0);
    assert_eq!(watches(&stdout(&again)), [], "{}", show(&again));
    assert!(
        stdout(&again).contains("already watched by [[watch]] \"api-api1\""),
        "{}",
        show(&again)
    );
}

/// `hapcert watch suggest --file <path>`, with no config at all.
fn suggest_files(dir: &Path, files: &[&Path]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapcert"));
    cmd.arg("--config")
        .arg(dir.join("absent.toml"))
        .args(["watch", "suggest"]);
    for file in files {
        cmd.arg("--file").arg(file);
    }
    cmd.env_remove("HAPCERT_CONFIG").output().unwrap()
}

#[test]
fn with_file_no_tls_server_is_said_on_stderr_and_an_unreadable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.cfg");
    fs::write(&plain, "backend web\n    server web1 127.0.0.1:8080\n").unwrap();
    let out = suggest_files(dir.path(), &[&plain]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "", "{}", show(&out));
    assert!(stderr(&out).contains("nothing to watch"), "{}", show(&out));

    let missing = dir.path().join("missing.cfg");
    let out = suggest_files(dir.path(), &[&plain, &missing]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot read {}", missing.display())), "{err}");
    assert!(err.contains("--file"), "{err}");
}
