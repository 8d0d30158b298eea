//! What HAProxy 3.x changes, each against the real version. `scripts/test --all-haproxy` runs `since_3_0` on 3.0, and
//! the whole module on 3.2 and 3.4; the default run, on Debian bookworm's 2.6, leaves the module out and says so. Run
//! against an older HAProxy, a test fails and names the command that runs it against the right one.
//!
//! The other 3.x changes are covered by the version runs of the existing modules: `show ssl cert`'s `Status:
//! Uncommitted` by crash_points (a transaction left open), `# old workers` by smoke (a failed reload), and the reply
//! texts by the captured fixtures in `src/edge/haproxy/reply.rs`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use hapcert::edge::haproxy::runtime::{Endpoint, RuntimeApi};

use crate::harness::tools::haproxy_version;
use crate::harness::{Sandbox, assert_exit, leaf_der_from_pem_file, serial_hex, show, stderr, stdout};

const SITE: &str = "[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n";

/// A sandbox, once the HAProxy under test is known to be `min` or newer.
fn sandbox_since(min: (u32, u32)) -> Sandbox {
    let running = haproxy_version();
    assert!(
        running >= min,
        "this test needs HAProxy {}.{} or newer, and runs against {}.{}: run `scripts/test --all-haproxy`, or set \
         HAPCERT_HAPROXY to a newer haproxy (scripts/lib/tools.sh builds 3.0, 3.2 and 3.4 under target/tools)",
        min.0,
        min.1,
        running.0,
        running.1
    );
    Sandbox::start()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// hapcert.toml for the reload path through the master socket: a Runtime API socket that is gone makes hapcert fall
/// back to the config check (`check_command`), then `reload` on the master.
fn reload_path_config(sb: &Sandbox, check_command: &str) -> String {
    let sockets = format!(
        "[haproxy]\nruntime_api = \"{}\"\nmaster_socket = \"{}\"\n",
        sb.dir().join("no-such-admin.sock").display(),
        sb.haproxy_master_sock().display()
    );
    let config = format!("{}\n{SITE}", sb.base_config())
        .replacen("[haproxy]\n", &sockets, 1)
        .replace(
            &format!("check_command = \"{}\"", sb.check_command()),
            &format!("check_command = \"{check_command}\""),
        );
    assert!(config.contains(check_command), "{config}");
    config
}

fn admin(sb: &Sandbox) -> RuntimeApi {
    RuntimeApi::admin(Endpoint::Unix(sb.haproxy_admin_sock()))
}

fn disk_serial(sb: &Sandbox) -> String {
    serial_hex(&leaf_der_from_pem_file(&sb.cert_dir().join("site.pem")))
}

/// The sandbox's https bind loads the cert directory as a crt-list (`crt <dir>/`); `replacement` takes its place.
fn rebind_certs(sb: &Sandbox, replacement: &str, before_frontend: &str) {
    let cfg = sb.haproxy_cfg_text();
    let dir_list = format!(" crt {}/", sb.cert_dir().display());
    assert!(cfg.contains(&dir_list), "the sandbox's haproxy.cfg changed:\n{cfg}");
    let cfg = cfg.replace(&dir_list, replacement).replacen(
        "frontend https\n",
        &format!("{before_frontend}frontend https\n"),
        1,
    );
    sb.set_haproxy_cfg(&cfg);
}

/// Issues `site` into the cert directory, where the sandbox's HAProxy loads it by its path.
fn issue_site(sb: &Sandbox) {
    sb.write_config_text(&sb.runtime_config(SITE));
    assert_exit(&sb.hapcert(&["run"]), 0);
}

/// `reload` on the master socket, and its answer: 3.x gives it once the new worker has loaded, which takes a while here.
fn reload_and_wait(sock: &Path) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(sock).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    stream.write_all(b"reload\n").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

mod since_3_0 {
    use super::*;

    /// 3.0's crt-store names a certificate `@<store>/<alias>` on the CLI, not by its file. The alias is found from `show
    /// ssl cert` (on 3.0 by the leaf it serves, on 3.2+ by its `Crt filename`), and updated in place.
    #[test]
    fn a_certificate_loaded_from_a_crt_store_is_hot_updated_under_its_alias() {
        let sb = sandbox_since((3, 0));
        issue_site(&sb);
        let store = format!(
            "crt-store web\n    crt-base {}\n    load crt \"site.pem\" alias \"site\"\n\n",
            sb.cert_dir().display()
        );
        rebind_certs(&sb, " crt \"@web/site\"", &store);
        let loaded = block_on(admin(&sb).loaded_certs()).unwrap();
        assert!(loaded.files.contains(&"@web/site".to_owned()), "{loaded:?}");
        let site_path = sb.cert_dir().join("site.pem").display().to_string();
        assert!(
            !loaded.files.contains(&site_path),
            "loaded only under its alias: {loaded:?}"
        );

        let old = disk_serial(&sb);
        let forced = sb.hapcert(&["renew", "--force", "site"]);
        assert_exit(&forced, 0);
        let new = disk_serial(&sb);
        assert_ne!(new, old);
        assert!(stdout(&forced).contains("served after hot update"), "{}", show(&forced));
        assert!(
            stderr(&forced).contains("@web/site"),
            "the log names the alias:\n{}",
            show(&forced)
        );
        assert_eq!(
            serial_hex(&sb.served_leaf("a.example.com")),
            new,
            "the handshake proves it"
        );
        assert_eq!(sb.reload_count(), 0, "no reload");
        let info = block_on(admin(&sb).cert_info("@web/site")).unwrap();
        assert_eq!(info.serial.as_deref(), Some(new.as_str()));
    }

    /// 3.0+ answers `reload` with the new worker's startup log once it has failed; the error puts its `[ALERT]` lines,
    /// which hold the cause, before the `[NOTICE]` lines that come first in the log. The old worker keeps serving.
    #[test]
    fn a_failed_reload_is_reported_with_haproxys_alerts_first() {
        let sb = sandbox_since((3, 0));
        let config = reload_path_config(&sb, "true");
        sb.write_config_text(&config);
        // Broken behind the check's back: only the reload finds it.
        let missing = sb.dir().join("missing.pem");
        let broken = format!(
            "{}\nfrontend broken\n    bind 127.0.0.1:{} ssl crt {}\n",
            sb.haproxy_cfg_text(),
            crate::harness::free_port(),
            missing.display()
        );
        fs::write(sb.haproxy_cfg(), broken).unwrap();
        let workers = sb.haproxy_worker_pids();

        let out = sb.hapcert(&["run"]);
        assert!(!out.status.success(), "{}", show(&out));
        let cause = format!("unable to stat SSL certificate from file '{}'", missing.display());
        let line = stderr(&out)
            .lines()
            .find(|l| l.contains("HAProxy refused `reload`"))
            .unwrap_or_else(|| panic!("no reload error:\n{}", show(&out)))
            .to_owned();
        let (alert, notice) = (line.find(&cause), line.find("[NOTICE]"));
        assert!(alert.is_some(), "the cause is in the error:\n{line}");
        assert!(
            notice.is_none_or(|n| alert < Some(n)),
            "[ALERT] before [NOTICE]:\n{line}"
        );
        assert_eq!(sb.haproxy_worker_pids(), workers, "the old worker keeps serving");
    }
}

mod since_3_2 {
    use super::*;

    /// 3.2's `ssl-f-use` lines load certificates by their path into an implicit crt-list named `@<frontend>`. A renewal
    /// is a plain hot update; a new certificate goes into `@https`, since its directory is no crt-list, and the log says
    /// that haproxy.cfg must name it before the next reload.
    #[test]
    fn ssl_f_use_certificates_are_hot_updated_and_a_new_one_joins_the_frontends_list() {
        let sb = sandbox_since((3, 2));
        issue_site(&sb);
        let cfg = sb.haproxy_cfg_text();
        let bind = cfg
            .lines()
            .find(|l| l.contains(" ssl crt "))
            .expect("the sandbox's https bind")
            .to_owned();
        let (address, _) = bind.split_once(" ssl crt ").unwrap();
        let uses = format!(
            "{address} ssl\n    ssl-f-use crt {}\n    ssl-f-use crt {}",
            sb.dir().join("haproxy/default.pem").display(),
            sb.cert_dir().join("site.pem").display()
        );
        sb.set_haproxy_cfg(&cfg.replace(&bind, &uses));
        let lists = block_on(admin(&sb).crt_lists()).unwrap();
        assert_eq!(lists, ["@https"]);

        let old = disk_serial(&sb);
        let forced = sb.hapcert(&["renew", "--force", "site"]);
        assert_exit(&forced, 0);
        assert_ne!(disk_serial(&sb), old);
        assert_eq!(serial_hex(&sb.served_leaf("a.example.com")), disk_serial(&sb));

        let other = "[[certificate]]\nname = \"other\"\ndomains = [\"b.example.com\"]\n";
        sb.write_config_text(&sb.runtime_config(&format!("{SITE}\n{other}")));
        let added = sb.hapcert(&["run"]);
        assert_exit(&added, 0);
        assert!(stdout(&added).contains("served after hot update"), "{}", show(&added));
        let other_pem = sb.cert_dir().join("other.pem");
        assert_eq!(
            serial_hex(&sb.served_leaf("b.example.com")),
            serial_hex(&leaf_der_from_pem_file(&other_pem))
        );
        let files = block_on(admin(&sb).crt_list_files("@https")).unwrap();
        assert!(files.contains(&other_pem.display().to_string()), "{files:?}");
        assert!(
            stderr(&added).contains("the next reload drops it unless haproxy.cfg names the file"),
            "{}",
            show(&added)
        );
        assert_eq!(sb.reload_count(), 0);
    }

    /// 3.1+ turns a reload away while another is still loading ("Another reload is still in progress"). hapcert asks
    /// again, saying for how long it will, and succeeds once the other reload is done. The other reload is sent by the
    /// test the moment hapcert's config check runs, with enough certificates loaded to take a while.
    #[test]
    fn a_reload_turned_away_while_another_loads_is_asked_again() {
        let sb = sandbox_since((3, 2));
        let bulk = sb.dir().join("bulk");
        fs::create_dir(&bulk).unwrap();
        let default_pem = fs::read(sb.dir().join("haproxy/default.pem")).unwrap();
        for i in 0..1500 {
            fs::write(bulk.join(format!("{i:04}.pem")), &default_pem).unwrap();
        }
        let cfg = sb.haproxy_cfg_text();
        let dir_list = format!(" crt {}/", sb.cert_dir().display());
        sb.set_haproxy_cfg(&cfg.replace(&dir_list, &format!("{dir_list} crt {}/", bulk.display())));

        let marker = sb.dir().join("check-ran");
        let check = format!("touch {} && sleep 0.3", marker.display());
        let config = reload_path_config(&sb, &check);
        sb.write_config_text(&config);

        let sock = sb.haproxy_master_sock();
        let other = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !marker.exists() {
                assert!(Instant::now() < deadline, "hapcert never ran its config check");
                std::thread::sleep(Duration::from_millis(5));
            }
            reload_and_wait(&sock)
        });
        let out = sb.hapcert(&["run"]);
        let reply = other.join().unwrap();
        assert!(reply.starts_with("Success=1"), "the test's own reload: {reply}");
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("another reload is still in progress; asking again every 0.5 s for up to 30 s"),
            "{}",
            show(&out)
        );
        assert_eq!(serial_hex(&sb.served_leaf("a.example.com")), disk_serial(&sb));
    }
}
