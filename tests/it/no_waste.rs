//! Issue 15: an issued certificate is a resource. A run that could not prove a new certificate served orders nothing.

use crate::harness::{Sandbox, assert_exit, show, stdout};

#[test]
fn with_a_verify_endpoint_nothing_answers_on_no_order_is_sent_and_check_config_says_so() {
    let sandbox = Sandbox::start();
    // A port nothing listens on: HAProxy's TLS frontend binds another.
    let silent = format!("127.0.0.1:{}", crate::harness::free_port());
    let config = sandbox.base_config()
        + &format!("\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\nverify = [{silent:?}]\n");
    sandbox.write_config_text(&config);

    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    let said = show(&out);
    assert!(
        said.contains(&format!(
            "preflight failed, nothing was ordered: HAProxy is not listening on {silent}; if it binds another address, \
             set `verify` in [[certificate]] \"www\"; a new certificate must be proven served there"
        )),
        "{said}"
    );
    assert!(
        !sandbox.pebble_log().contains("Added order"),
        "the CA saw an order:\n{}",
        sandbox.pebble_log()
    );
    assert!(!sandbox.cert_dir().join("www.pem").exists());

    let check = sandbox.hapcert(&["check-config"]);
    assert_exit(&check, 0);
    assert!(
        stdout(&check).contains(&format!(
            "verify:      WARNING: HAProxy is not listening on {silent}; if it binds another address, set `verify` in \
             [[certificate]] \"www\""
        )),
        "{}",
        show(&check)
    );

    // The endpoint HAProxy does bind: the same run orders, deploys and proves it there.
    sandbox.write_config(&[("www", &["www.example.com"])]);
    let check = sandbox.hapcert(&["check-config"]);
    assert!(
        stdout(&check).contains(&format!("verify:      127.0.0.1:{} answers TLS", sandbox.https_port())),
        "{}",
        show(&check)
    );
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert!(sandbox.pebble_log().contains("Added order"));
}

#[test]
fn a_certificate_whose_deploy_failed_is_kept_and_deployed_by_the_next_run_without_a_new_order() {
    let sandbox = Sandbox::start();
    let good = sandbox.base_config() + "\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n";
    let reload = toml_string(&sandbox.reload_command());
    assert!(
        good.contains(&reload),
        "the base config names the sandbox's reload command"
    );
    sandbox.write_config_text(&good.replace(&reload, &toml_string("echo 'reload refused' >&2; exit 3")));
    let finalized = || sandbox.pebble_log().matches("POST /finalize-order/").count();

    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    assert_eq!(finalized(), 1, "{}", show(&out));
    let kept = sandbox.state_dir().join("issued/www.pem");
    assert_eq!(crate::harness::file_mode(&kept), 0o600);
    assert!(
        !sandbox.cert_dir().join("www.pem").exists(),
        "a failed first deploy leaves no file"
    );
    let kept_serial = crate::harness::serial_hex(&crate::harness::leaf_der_from_pem_file(&kept));
    let status = sandbox.hapcert(&["status", "--long"]);
    assert!(
        stdout(&status).contains(&format!("issued, waiting to deploy: serial {kept_serial}"))
            && stdout(&status).contains("its deploy failed"),
        "{}",
        show(&status)
    );

    // The reload works again: the kept certificate is deployed, and the CA is not asked for another.
    sandbox.write_config_text(&good);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert!(show(&out).contains("nothing is ordered"), "{}", show(&out));
    assert_eq!(
        finalized(),
        1,
        "a second certificate was ordered:\n{}",
        sandbox.pebble_log()
    );
    assert_eq!(
        crate::harness::serial_hex(&sandbox.served_leaf("www.example.com")),
        kept_serial
    );
    assert!(!kept.exists(), "the kept certificate is removed once deployed");
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}
