//! Finds the external programs the sandbox runs. A missing tool is a hard failure, never a skip: a test
//! suite that silently skips its integration tests proves nothing.

use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
        let pebble_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/pebble-2.6/usr/bin");
        Tools {
            pebble: find("pebble", Some("HAPCERT_PEBBLE"), &[&pebble_dir], INSTALL_HINT),
            challtestsrv: find(
                "pebble-challtestsrv",
                Some("HAPCERT_CHALLTESTSRV"),
                &[&pebble_dir],
                INSTALL_HINT,
            ),
            // Debian puts haproxy in /usr/sbin, which is not on every user's PATH.
            haproxy: find(
                "haproxy",
                Some("HAPCERT_HAPROXY"),
                &[Path::new("/usr/sbin")],
                INSTALL_HINT,
            ),
            socat: find("socat", None, &[], "install it with `apt-get install socat`"),
        }
    })
}

/// `$env_var` if set (it must then exist), else the first executable `name` on PATH, else in `extra_dirs`.
pub fn find(name: &str, env_var: Option<&str>, extra_dirs: &[&Path], hint: &str) -> PathBuf {
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
    let path_dirs = env::var_os("PATH").map(|p| env::split_paths(&p).collect::<Vec<_>>());
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
    let looked_at = env_var.map(|v| format!("${v}, ")).unwrap_or_default();
    panic!("the integration tests need `{name}`, which was not found ({looked_at}PATH, {extra_dirs:?}); {hint}");
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
