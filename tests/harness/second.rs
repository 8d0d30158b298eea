//! A second HAProxy that hapcert knows nothing about, for tests where one of several servers still
//! serves the old certificate (e.g. a verify step that must notice it).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::haproxy::{Haproxy, Layout};
use super::haproxy_cfg::{defaults_section, global_section, https_frontend_section};
use super::process::children_of;
use super::{Sandbox, ports, tls};

/// Runs until dropped; drop stops it the way the sandbox stops its own HAProxy (SIGTERM to the master,
/// SIGKILL to whatever is left). Its files and log (`haproxy.log`) are in [`SecondHaproxy::dir`].
pub struct SecondHaproxy {
    pub https_port: u16,
    haproxy: Haproxy,
}

impl Sandbox {
    /// Starts another HAProxy in `<dir>/haproxy-second-<n>/`, with its own https port and only a TLS
    /// frontend (no plain frontend, no admin socket). It loads copies of the sandbox's default.pem and
    /// of the cert dir's files as they are now, so later changes by hapcert do not reach it.
    pub fn start_second_haproxy(&self) -> SecondHaproxy {
        let n = self.second_haproxies.fetch_add(1, Ordering::Relaxed) + 1;
        let layout = Layout {
            root: self.dir().join(format!("haproxy-second-{n}")),
        };
        fs::create_dir_all(layout.cert_dir()).expect("create second haproxy cert dir");
        let default_pem = layout.default_pem();
        copy(&self.haproxy.layout.default_pem(), &default_pem);
        let certs = fs::read_dir(self.cert_dir()).expect("read the sandbox's cert dir");
        for entry in certs {
            let from = entry.expect("cert dir entry").path();
            // Regular files only (following symlinks), the way `crt <dir>` loads them.
            if from.is_file() {
                copy(&from, &layout.cert_dir().join(from.file_name().expect("a file name")));
            }
        }

        let https_port = ports::free_port();
        let config = [
            global_section(None),
            defaults_section(true),
            https_frontend_section(https_port, &default_pem, &layout.cert_dir()),
        ]
        .join("\n");
        // Its log goes into its own directory: several second HAProxies must not share a log file.
        let logs = layout.root.clone();
        let mut haproxy = Haproxy::spawn_with_config(layout, &config, &logs, "haproxy");
        haproxy.wait_ready(https_port);
        SecondHaproxy { https_port, haproxy }
    }
}

impl SecondHaproxy {
    /// Leaf certificate this HAProxy serves for `sni`, without any verification.
    pub fn served_leaf_unverified(&self, sni: &str) -> Vec<u8> {
        tls::leaf_unverified(self.https_port, sni)
    }

    pub fn dir(&self) -> &Path {
        &self.haproxy.layout.root
    }

    /// Its copy of the cert dir.
    pub fn cert_dir(&self) -> PathBuf {
        self.haproxy.layout.cert_dir()
    }

    /// Its master and the master's children, to check that drop stopped them.
    pub fn process_ids(&self) -> Vec<u32> {
        let master = self.haproxy.master_pid();
        let mut pids = vec![master];
        pids.extend(children_of(master));
        pids
    }
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
