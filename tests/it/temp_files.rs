//! A crash between the atomic writer's write and its rename leaves a temp file holding a whole PEM, key included. The
//! next run removes hapcert's own, and nothing else.

use std::fs;

use crate::harness::{Sandbox, assert_exit, stderr};

#[test]
fn a_run_removes_its_own_leftover_temp_files_and_nothing_else() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[("site", &["a.example.com"])]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);

    let backup_dir = sandbox.state_dir().join("backup");
    fs::create_dir_all(&backup_dir).unwrap();
    let leftovers = [
        sandbox.cert_dir().join(".site.pem.Ab12Cd.tmp"),
        sandbox.cert_dir().join(".site.pem.x9Y8z7W6.tmp"),
        backup_dir.join(".site.pem.Zz99Yy.tmp"),
        sandbox.state_dir().join(".state.json.Qq11Ww.tmp"),
        sandbox.state_dir().join(".monitor.json.Pp22Oo.tmp"),
    ];
    let look_alikes = [
        // Another program's dot-files, a certificate hapcert does not manage, and names short of the pattern.
        sandbox.cert_dir().join(".editor.swp"),
        sandbox.cert_dir().join(".other.pem.Ab12Cd.tmp"),
        sandbox.cert_dir().join(".site.pem.tmp"),
        sandbox.cert_dir().join(".site.pem.Ab1.tmp"),
        backup_dir.join(".site.pem.Ab12Cd.tmp.keep"),
        sandbox.state_dir().join(".notes.json.Ab12Cd.tmp"),
    ];
    for path in leftovers.iter().chain(&look_alikes) {
        fs::write(path, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    }

    let run = sandbox.hapcert(&["run"]);
    assert_exit(&run, 0);
    for path in &leftovers {
        assert!(!path.exists(), "{} is still there", path.display());
        assert!(
            stderr(&run).contains(&path.display().to_string()),
            "the removal of {} is logged:\n{}",
            path.display(),
            stderr(&run)
        );
    }
    for path in &look_alikes {
        assert!(path.exists(), "{} was removed", path.display());
    }
}
