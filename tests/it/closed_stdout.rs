//! A reader that goes away (`hapcert status | head -0`) ends a command quietly: no panic, and the exit code is the one
//! the command has with a reader.

use crate::harness::{Sandbox, assert_exit};

#[test]
fn every_command_ends_with_its_own_exit_code_when_stdout_is_closed() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[("site", &["a.example.com"])]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);

    let bind = format!("127.0.0.1:{}", sandbox.http_port());
    let commands: [&[&str]; 7] = [
        &["status"],
        &["status", "--json"],
        &["status", "--long"],
        &["check"],
        &["check", "--json"],
        &["haproxy-config", "--bind", &bind],
        &["renew"],
    ];
    for args in commands {
        let with_a_reader = sandbox.hapcert(args);
        if args[0] != "check" {
            // A healthy sandbox; check's code is the plugin's, whatever it judged.
            assert_exit(&with_a_reader, 0);
        }
        assert!(!with_a_reader.stdout.is_empty(), "{args:?} prints something to lose");
        let (status, stderr) = sandbox.hapcert_to_closed_pipe(args);
        assert_eq!(
            status.code(),
            with_a_reader.status.code(),
            "{args:?}: the exit code with a reader, and without one; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}:\n{stderr}");
    }
}
