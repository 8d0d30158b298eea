//! Another Pebble beside the sandbox's, for a switch of ACME directory: a CA of its own (its own issuing root and
//! listener certificate), validating through the same HAProxy as the first.

use std::fs;
use std::path::PathBuf;

use super::pebble::Pebble;
use super::{Sandbox, SandboxOptions, certs, tls};

/// Runs until dropped. Its files and logs are in `<sandbox>/pebble-second/`.
pub struct SecondPebble {
    pebble: Pebble,
    dir: PathBuf,
}

impl Sandbox {
    /// Starts a second Pebble, sending its HTTP-01 validations to the sandbox's HAProxy like the first.
    pub fn start_second_pebble(&self) -> SecondPebble {
        let dir = self.dir().join("pebble-second");
        let logs = dir.join("logs");
        fs::create_dir_all(&logs).expect("create the second Pebble's directory");
        let mut pebble = Pebble::spawn(&dir, &logs, self.http_port(), &SandboxOptions::default());
        pebble.wait_ready();
        let second = SecondPebble { pebble, dir };
        fs::write(second.roots_file(), second.root_pem()).expect("write the second Pebble's root");
        second
    }
}

impl SecondPebble {
    pub fn directory_url(&self) -> String {
        self.pebble.directory_url()
    }

    /// Its issuing root, new at its start: what its certificates lead to.
    pub fn root_pem(&self) -> &str {
        &self.pebble.root_pem
    }

    /// Its issuing root as a file, for `[acme] trust_roots`.
    pub fn roots_file(&self) -> PathBuf {
        self.dir.join("roots.pem")
    }

    /// The CA of its HTTPS listener, for `[acme] ca_bundle`.
    pub fn listener_ca(&self) -> PathBuf {
        self.pebble.listener_ca.clone()
    }

    /// The serial of the leaf HAProxy serves for `sni`, when the chain it sends verifies against this Pebble's root
    /// alone; None otherwise.
    pub fn served_serial(&self, sandbox: &Sandbox, sni: &str) -> Option<String> {
        let config = tls::verifying_config(self.root_pem());
        let chain = tls::handshake(sandbox.https_port(), tls::server_name(sni), config).ok()?;
        chain.first().map(|leaf| certs::serial_hex(leaf))
    }

    pub fn log(&self) -> String {
        self.pebble.log()
    }
}

impl Drop for SecondPebble {
    fn drop(&mut self) {
        self.pebble.stop();
    }
}
