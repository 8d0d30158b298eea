//! Debian's stock haproxy.cfg, as the haproxy package installs it on bookworm (2.6, this host's) and trixie (3.0, the
//! tree of `scripts/lib/tools.sh ensure_haproxy_tree 3.0 trixie`): with deploy/haproxy-debian.cfg appended it passes
//! `haproxy -c` with that suite's HAProxy and keeps Debian's one `defaults`, and `hapcert haproxy-config --check` says
//! what the stock file lacks, what appending haproxy-snippet.cfg doubles, and that the additions leave nothing out.
//! Issuing through it end to end, in a trixie tree, is scripts/walkthrough's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const HAPCERT: &str = env!("CARGO_BIN_EXE_hapcert");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stock haproxy.cfg of `suite`, and the HAProxy that suite ships.
fn stock(suite: &str) -> (String, PathBuf) {
    match suite {
        "bookworm" => {
            let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
            assert!(
                os.contains("VERSION_CODENAME=bookworm"),
                "this host is not bookworm:\n{os}"
            );
            let cfg = fs::read_to_string("/etc/haproxy/haproxy.cfg")
                .expect("/etc/haproxy/haproxy.cfg, from Debian's haproxy package: apt-get install haproxy");
            (cfg, PathBuf::from("/usr/sbin/haproxy"))
        }
        _ => {
            let out = Command::new("bash")
                .args(["scripts/lib/tools.sh", "ensure_haproxy_tree", "3.0", "trixie"])
                .current_dir(REPO)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cannot build the trixie tree:\n{}",
                text(&out.stderr)
            );
            let dir = Path::new(REPO).join("target/tools/haproxy-3.0");
            (
                fs::read_to_string(dir.join("root/etc/haproxy/haproxy.cfg")).unwrap(),
                dir.join("haproxy"),
            )
        }
    }
}

fn check(file: &Path) -> Output {
    Command::new(HAPCERT)
        .args(["--config", "/nonexistent/hapcert.toml", "haproxy-config", "--check"])
        .arg(file)
        .output()
        .unwrap()
}

fn debian(suite: &str) {
    let (stock, haproxy) = stock(suite);
    let additions = fs::read_to_string(Path::new(REPO).join("deploy/haproxy-debian.cfg")).unwrap();
    let snippet = fs::read_to_string(Path::new(REPO).join("deploy/haproxy-snippet.cfg")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let path = dir.path().join(name);
        fs::write(&path, body).unwrap();
        path
    };

    // The stock file lacks the route, its backend and the default certificate; its admin socket is runtime_api's.
    let out = check(&write("stock.cfg", &stock));
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}{}", text(&out.stderr));
    for line in [
        "MISSING  challenge route",
        "MISSING  challenge backend",
        "MISSING  default cert",
    ] {
        assert!(said.contains(line), "{suite}: no `{line}`:\n{said}");
    }
    assert!(said.contains("OK       admin socket"), "{said}");

    // The snippet appended: HAProxy takes it, and it doubles the socket and the defaults, with their lines.
    let appended = format!("{stock}{snippet}");
    let out = check(&write("appended.cfg", &appended));
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    // The second line that starts with `needle`, indented or not: the one the snippet added.
    let line_of = |needle: &str| {
        appended
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with(needle))
            .nth(1)
            .map(|(i, _)| i + 1)
            .unwrap()
    };
    let socket = format!(
        "DOUBLED  admin socket       {}:{}:",
        dir.path().join("appended.cfg").display(),
        line_of("stats socket")
    );
    let defaults = format!(
        "DOUBLED  defaults           {}:{}:",
        dir.path().join("appended.cfg").display(),
        line_of("defaults")
    );
    assert!(
        said.contains(&socket) && said.contains(&defaults),
        "{suite}: want `{socket}` and `{defaults}`:\n{said}"
    );
    assert!(
        said.contains("option httplog") && said.contains("errorfile 503"),
        "{said}"
    );

    // The additions: nothing left to report.
    let fixed = format!("{stock}{additions}");
    let out = check(&write("fixed.cfg", &fixed));
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{suite}:\n{said}{}", text(&out.stderr));
    assert!(
        !said.contains("MISSING") && !said.contains("DOUBLED") && !said.contains("WRONG"),
        "{said}"
    );
    assert_eq!(
        fixed.lines().filter(|l| l.starts_with("defaults")).count(),
        1,
        "Debian's defaults is the only one"
    );

    // And HAProxy of that suite takes it, with the certificate paths moved into the scratch directory (under /tmp,
    // which the trixie wrapper shares with its tree).
    fs::create_dir(dir.path().join("certs")).unwrap();
    let placeholder = Command::new("sh")
        .arg("-c")
        .arg(r#"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=default.invalid -keyout "$1/k" -out "$1/c" 2>/dev/null && cat "$1/c" "$1/k" > "$1/default.pem""#)
        .arg("sh")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(placeholder.success());
    let local = fixed
        .replace(
            "/etc/haproxy/default.pem",
            &dir.path().join("default.pem").display().to_string(),
        )
        .replace(
            "/etc/haproxy/certs/",
            &format!("{}/", dir.path().join("certs").display()),
        );
    let cfg = write("haproxy.cfg", &local);
    let out = Command::new(&haproxy).arg("-c").arg("-f").arg(&cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{suite}'s haproxy -c refuses stock + haproxy-debian.cfg:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn bookworm_stock_config_with_the_debian_additions() {
    debian("bookworm");
}

#[test]
fn trixie_stock_config_with_the_debian_additions() {
    debian("trixie");
}
