//! Finds the external programs the sandbox runs. A missing tool is a hard failure, never a skip: a test
//! suite that silently skips its integration tests proves nothing.

use std::env;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::pebble::PebbleVersion;

const INSTALL_HINT: &str =
    "run scripts/test, which installs haproxy from apt and pebble 2.6 from Debian trixie into target/tools";

pub struct Tools {
    pub pebble: PathBuf,
    pub challtestsrv: PathBuf,
    pub haproxy: PathBuf,
    /// Used by the default reload command to talk to HAProxy's master socket.
    pub socat: PathBuf,
}

/// The tools, looked up once per test binary.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let tools = look_up_tools();
        log_haproxy_version(&tools.haproxy);
        tools
    })
}

/// Says once per test binary which HAProxy the tests run against (`scripts/test --all-haproxy` runs them against
/// several). Written to stderr directly, not through `eprintln!`, which the test runner would capture and show only
/// for a failed test.
fn log_haproxy_version(haproxy: &Path) {
    let _ = writeln!(
        io::stderr(),
        "harness: HAProxy {}: {}",
        haproxy.display(),
        version_line(haproxy)
    );
}

fn version_line(haproxy: &Path) -> String {
    match Command::new(haproxy).arg("-v").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        Err(e) => format!("`-v` failed: {e}"),
    }
}

/// The (major, minor) version of the HAProxy the tests run against, from `haproxy -v`'s first line ("HAProxy version
/// 3.2.26-1 2025/...").
pub fn haproxy_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let line = version_line(&tools().haproxy);
        let number = line.strip_prefix("HAProxy version ").unwrap_or_default();
        let mut parts = number.split(['.', '-', ' ']).map(str::parse::<u32>);
        match (parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
            _ => panic!("cannot read HAProxy's version from `haproxy -v`: {line:?}"),
        }
    })
}

fn look_up_tools() -> Tools {
    {
        let pebble_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/pebble-2.6/usr/bin");
        Tools {
            pebble: find(
                "pebble",
                Some("HAPCERT_PEBBLE"),
                &[&pebble_dir],
                FindIn::EnvPathThenDirs,
                INSTALL_HINT,
            ),
            challtestsrv: find(
                "pebble-challtestsrv",
                Some("HAPCERT_CHALLTESTSRV"),
                &[&pebble_dir],
                FindIn::EnvPathThenDirs,
                INSTALL_HINT,
            ),
            // Debian puts haproxy in /usr/sbin, which is not on every user's PATH.
            haproxy: find(
                "haproxy",
                Some("HAPCERT_HAPROXY"),
                &[Path::new("/usr/sbin")],
                FindIn::EnvPathThenDirs,
                INSTALL_HINT,
            ),
            socat: find(
                "socat",
                None,
                &[],
                FindIn::EnvPathThenDirs,
                "install it with `apt-get install socat`",
            ),
        }
    }
}

/// The `pebble` binary of `version`. 2.6 is the one every test used before there was a choice; 2.4 and the latest come
/// only from their env var or their directory under target/tools (never PATH, whose `pebble` may be any version), and
/// are looked up only when a test asks for them, so a checkout without them still runs every other test.
pub fn pebble(version: PebbleVersion) -> &'static Path {
    static PEBBLE_2_4: OnceLock<PathBuf> = OnceLock::new();
    static PEBBLE_LATEST: OnceLock<PathBuf> = OnceLock::new();
    let (cell, env_var, dir, step) = match version {
        PebbleVersion::V2_6 => return &tools().pebble,
        PebbleVersion::V2_4 => (&PEBBLE_2_4, "HAPCERT_PEBBLE_2_4", "pebble-2.4", "ensure_pebble_2_4"),
        PebbleVersion::Latest => (
            &PEBBLE_LATEST,
            "HAPCERT_PEBBLE_LATEST",
            "pebble-latest",
            "ensure_pebble_latest",
        ),
    };
    cell.get_or_init(|| {
        let hint = format!(
            "this test runs Pebble {label}: run scripts/test, or `bash scripts/lib/tools.sh {step}` from the \
             repository root, which fetches it from Debian {suite} into target/tools/{dir}",
            label = version.label(),
            suite = version.debian_suite()
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tools")
            .join(dir)
            .join("usr/bin");
        find("pebble", Some(env_var), &[&dir], FindIn::EnvThenDirs, &hint)
    })
}

/// BIND 9's programs, for the DNS lab of the DNS-01 tests (bind.rs).
pub struct BindTools {
    pub named: PathBuf,
    pub nsupdate: PathBuf,
    pub dig: PathBuf,
    pub rndc: PathBuf,
    pub rndc_confgen: PathBuf,
}

/// BIND's tools, looked up only when a test starts a DNS lab, so that a host without BIND still runs every other test.
/// Debian puts named, rndc and rndc-confgen in /usr/sbin, which is not on every user's PATH.
pub fn bind_tools() -> &'static BindTools {
    static BIND: OnceLock<BindTools> = OnceLock::new();
    BIND.get_or_init(|| {
        let hint = "this test runs a BIND 9 lab: run scripts/test, or `bash scripts/lib/tools.sh ensure_bind9` from the \
                    repository root (it runs `apt-get install bind9 bind9-dnsutils`)";
        let sbin: &[&Path] = &[Path::new("/usr/sbin")];
        let find_bind = |name: &str| find(name, None, sbin, FindIn::EnvPathThenDirs, hint);
        BindTools {
            named: find_bind("named"),
            nsupdate: find_bind("nsupdate"),
            dig: find_bind("dig"),
            rndc: find_bind("rndc"),
            rndc_confgen: find_bind("rndc-confgen"),
        }
    })
}

/// Where [`find`] looks after the env var.
#[derive(PartialEq)]
pub enum FindIn {
    /// PATH, then the extra directories.
    EnvPathThenDirs,
    /// Only the extra directories: for tools of a particular version, which PATH could hold in another.
    EnvThenDirs,
}

/// `$env_var` if set (it must then exist), else the first executable `name` on PATH (unless `FindIn::EnvThenDirs`), else
/// in `extra_dirs`.
pub fn find(name: &str, env_var: Option<&str>, extra_dirs: &[&Path], order: FindIn, hint: &str) -> PathBuf {
    if let Some(var) = env_var
        && let Some(value) = env::var_os(var)
    {
        let path = PathBuf::from(value);
        assert!(
            is_executable(&path),
            "{var}={} is not an executable file; {hint}",
            path.display()
        );
        // HAProxy re-executes itself from argv[0] on reload, so hand out absolute paths.
        return path.canonicalize().unwrap_or(path);
    }
    let path_dirs = env::var_os("PATH")
        .filter(|_| order == FindIn::EnvPathThenDirs)
        .map(|p| env::split_paths(&p).collect::<Vec<_>>());
    let candidates = path_dirs
        .iter()
        .flatten()
        .map(PathBuf::as_path)
        .chain(extra_dirs.iter().copied())
        .map(|dir| dir.join(name));
    for candidate in candidates {
        if is_executable(&candidate) {
            return candidate.canonicalize().unwrap_or(candidate);
        }
    }
    let env_part = env_var.map(|v| format!("${v}, ")).unwrap_or_default();
    let path_part = if order == FindIn::EnvPathThenDirs { "PATH, " } else { "" };
    panic!("the integration tests need `{name}`, which was not found ({env_part}{path_part}{extra_dirs:?}); {hint}");
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
