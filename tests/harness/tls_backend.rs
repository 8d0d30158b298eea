//! A TLS backend that hapcert does not manage: `openssl s_server` on loopback, serving the certificate it was started
//! with (`-www` answers a GET with a status page, so it never reads its stdin). Restarted on the same port to serve
//! another one, as an operator replaces a backend's certificate.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ports::free_port;
use super::process::Daemon;

pub struct OpensslServer {
    daemon: Daemon,
    port: u16,
    dir: PathBuf,
}

impl OpensslServer {
    /// Serves `pem` (certificate and key in one file) on a free port of 127.0.0.1; `dir` holds the file and the log.
    pub fn start(dir: &Path, pem: &str) -> OpensslServer {
        let port = free_port();
        OpensslServer {
            daemon: spawn(dir, port, pem),
            port,
            dir: dir.to_owned(),
        }
    }

    /// Stops the server and starts it again on the same port with `pem`.
    pub fn restart(&mut self, pem: &str) {
        self.daemon.stop(Duration::from_secs(2));
        self.daemon = spawn(&self.dir, self.port, pem);
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn spawn(dir: &Path, port: u16, pem: &str) -> Daemon {
    let openssl = ["/usr/bin/openssl", "/bin/openssl"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| panic!("openssl is not installed: `apt install openssl` (scripts/test installs it)"));
    let file = dir.join("backend.pem");
    fs::write(&file, pem).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let mut cmd = Command::new(openssl);
    cmd.arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&file)
        .arg("-www")
        .arg("-quiet");
    let mut daemon = Daemon::spawn("openssl-s_server", cmd, dir);
    daemon.wait_ready("openssl s_server's port", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    daemon
}
