//! A 3-member etcd cluster on loopback, as plain processes (Debian's `etcd-server`, 3.4 on bookworm): free ports, a
//! data directory per member under the test's temp dir, every member killed on drop. Ready once every member reports
//! healthy (polled, ~0.4–1.3 s). Elections are shortened (`--heartbeat-interval=50 --election-timeout=500`) so that
//! a killed leader is replaced within about a second.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::free_port;
use super::tools::{FindIn, find};

const HINT: &str = "install it with `apt-get install etcd-server etcd-client` (or `bash scripts/lib/tools.sh ensure_etcd` \
                    from the repository root; scripts/test does it)";
const POLL: Duration = Duration::from_millis(50);
const READY_WITHIN: Duration = Duration::from_secs(20);

fn etcd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| find("etcd", Some("HAPCERT_ETCD"), &[], FindIn::EnvPathThenDirs, HINT))
}

fn etcdctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| find("etcdctl", Some("HAPCERT_ETCDCTL"), &[], FindIn::EnvPathThenDirs, HINT))
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts 3 members and returns once all are healthy.
    pub fn start() -> EtcdCluster {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("hapcert-etcd-")
            .tempdir()
            .expect("create temp dir");
        let members: Vec<Member> = (1..=3)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            dir,
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        cluster.wait_healthy(&[0, 1, 2]);
        eprintln!(
            "etcd cluster {} ready in {:?}",
            cluster.dir.path().display(),
            started.elapsed()
        );
        cluster
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://127.0.0.1:<client port>` of every member, in order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn endpoint(&self, member: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[member].client_port)
    }

    fn spawn(&mut self, i: usize) {
        let member = &self.members[i];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let log_path = self.dir.path().join(format!("{}.log", member.name));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let mut cmd = Command::new(etcd_bin());
        cmd.args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&member.name))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args([
                "--initial-cluster",
                &self.initial_cluster,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--initial-cluster-token", "hapcert-test"])
            .args(["--heartbeat-interval=50", "--election-timeout=500"])
            .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
            .env_remove("ETCDCTL_ENDPOINTS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} for member {}: {e}", etcd_bin().display(), member.name));
        self.members[i].child = Some(child);
    }

    /// Kills member `i` (SIGKILL: instant; SIGTERM can take seconds).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills member `i`, then waits until the others are healthy again (a new leader elected if it led): for tests of
    /// the client's failover rather than of etcd's election.
    pub fn stop_and_settle(&mut self, i: usize) {
        self.stop(i);
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&m| self.members[m].child.is_some())
            .collect();
        self.wait_healthy(&running);
    }

    /// Restarts member `i` with its data and waits until it is healthy (when a quorum runs).
    pub fn start_member(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} already runs");
        self.spawn(i);
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&m| self.members[m].child.is_some())
            .collect();
        if running.len() * 2 > self.members.len() {
            self.wait_healthy(&running);
        }
    }

    /// Stops two members: the cluster has no quorum and no write or linearizable read can succeed.
    pub fn stop_two(&mut self, keep: usize) {
        for i in 0..self.members.len() {
            if i != keep {
                self.stop(i);
            }
        }
    }

    /// Runs `etcdctl` against the running members with `args`; panics, with its output, unless it succeeds.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let output = self.etcdctl_output(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn etcdctl_output(&self, args: &[&str]) -> Output {
        let endpoints = (0..self.members.len())
            .filter(|&m| self.members[m].child.is_some())
            .map(|m| format!("127.0.0.1:{}", self.members[m].client_port))
            .collect::<Vec<_>>()
            .join(",");
        Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg(format!("--endpoints={endpoints}"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", etcdctl_bin().display()))
    }

    /// `etcdctl get --prefix <prefix>`: (key, value) pairs, as etcdctl prints them (a key line, then a value line).
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let text = self.etcdctl(&["get", "--prefix", prefix]);
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .map(|pair| (pair[0].to_owned(), pair.get(1).copied().unwrap_or("").to_owned()))
            .collect()
    }

    /// `etcdctl compact <revision>`.
    pub fn compact(&self, revision: i64) {
        let out = self.etcdctl(&["compact", &revision.to_string()]);
        assert!(out.contains("compacted revision"), "etcdctl compact {revision}: {out}");
    }

    /// The members' log (zap, warnings and up), for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let path = self.dir.path().join(format!("{}.log", m.name));
                format!("--- {}\n{}", m.name, fs::read_to_string(&path).unwrap_or_default())
            })
            .collect()
    }

    fn wait_healthy(&mut self, members: &[usize]) {
        let deadline = Instant::now() + READY_WITHIN;
        let endpoints = members
            .iter()
            .map(|&m| format!("127.0.0.1:{}", self.members[m].client_port))
            .collect::<Vec<_>>()
            .join(",");
        loop {
            for &m in members {
                if let Some(status) = self.members[m].child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    panic!("etcd member m{} exited ({status}):\n{}", m + 1, self.logs());
                }
            }
            let output = Command::new(etcdctl_bin())
                .env("ETCDCTL_API", "3")
                .env_remove("ETCDCTL_ENDPOINTS")
                .arg(format!("--endpoints={endpoints}"))
                .args(["endpoint", "health", "--command-timeout=2s"])
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", etcdctl_bin().display()));
            if output.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd members {endpoints} not healthy within {READY_WITHIN:?}: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.logs()
            );
            sleep(POLL);
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
        if std::env::var_os("HAPCERT_KEEP_SANDBOX").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("HAPCERT_KEEP_SANDBOX: kept {}", self.dir.path().display());
        }
    }
}

/// One etcd member with TLS on its client port (`--client-cert-auth`: a client certificate signed by the test CA is
/// required) and authentication enabled: users `root` and `agent1` (password `agent1pw`), whose role `fleet` may only
/// read and write under `/hapcert/`. The client certificate has no common name: the gateway refuses one that has one
/// when auth is on.
pub struct EtcdTlsMember {
    child: Option<Child>,
    port: u16,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    dir: TempDir,
}

impl EtcdTlsMember {
    pub fn start() -> EtcdTlsMember {
        use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::Builder::new()
            .prefix("hapcert-etcd-tls-")
            .tempdir()
            .expect("create temp dir");
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hapcert test etcd CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = write("ca.crt", ca_params.self_signed(&ca_key).expect("self-sign CA").pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("server names");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = write(
            "server.crt",
            server_params
                .signed_by(&server_key, &issuer)
                .expect("sign server")
                .pem(),
        );
        let server_key = write("server.key", server_key.serialize_pem());
        let mut client_params = CertificateParams::default();
        client_params.distinguished_name = DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::OrganizationName, "hapcert-gw");
        let client_key_pair = KeyPair::generate().expect("client key");
        let client_cert = write(
            "client.crt",
            client_params
                .signed_by(&client_key_pair, &issuer)
                .expect("sign client")
                .pem(),
        );
        let client_key = write("client.key", client_key_pair.serialize_pem());

        let port = free_port();
        let peer = format!("http://127.0.0.1:{}", free_port());
        let client_url = format!("https://127.0.0.1:{port}");
        let log_path = dir.path().join("t1.log");
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let child = Command::new(etcd_bin())
            .args(["--name", "t1"])
            .arg("--data-dir")
            .arg(dir.path().join("t1"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .arg(format!("--initial-cluster=t1={peer}"))
            .args(["--initial-cluster-state", "new", "--client-cert-auth"])
            .arg("--cert-file")
            .arg(&server_cert)
            .arg("--key-file")
            .arg(&server_key)
            .arg("--trusted-ca-file")
            .arg(&ca)
            .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
            .env_remove("ETCDCTL_ENDPOINTS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", etcd_bin().display()));
        let member = EtcdTlsMember {
            child: Some(child),
            port,
            ca,
            client_cert,
            client_key,
            dir,
        };
        let deadline = Instant::now() + READY_WITHIN;
        while !member
            .etcdctl(&["endpoint", "health", "--command-timeout=2s"])
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "the TLS etcd member is not healthy: {}",
                member.log()
            );
            sleep(POLL);
        }
        for args in [
            &["user", "add", "root", "--new-user-password=rootpw"][..],
            &["user", "add", "agent1", "--new-user-password=agent1pw"],
            &["role", "add", "fleet"],
            &[
                "role",
                "grant-permission",
                "fleet",
                "--prefix=true",
                "readwrite",
                "/hapcert/",
            ],
            &["user", "grant-role", "agent1", "fleet"],
            &["auth", "enable"],
        ] {
            let output = member.etcdctl(args);
            assert!(
                output.status.success(),
                "etcdctl {args:?}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        member
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg(format!("--cacert={}", self.ca.display()))
            .arg(format!("--cert={}", self.client_cert.display()))
            .arg(format!("--key={}", self.client_key.display()))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", etcdctl_bin().display()))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("t1.log")).unwrap_or_default()
    }
}

impl Drop for EtcdTlsMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
