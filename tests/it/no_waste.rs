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
        said.contains(&format!("preflight failed, nothing was ordered: nothing answers TLS on {silent}, where a new certificate must be proven served"))
            && said.contains("Connection refused"),
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
        stdout(&check).contains(&format!("verify:      WARNING: nothing answers TLS on {silent}")),
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
