//! The config file read from disk, and the checks a config can only pass on the host it runs on: directories that
//! exist and can be written, a CA bundle that can be read, users and groups that exist. Kept apart from `Config::parse`, which does no I/O.

use std::path::Path;

use nix::unistd::{AccessFlags, Gid, Group, Uid, User, access};

use crate::core::config::{Config, ConfigError, ConfigErrors, FileOwner, Located, Position};
use crate::core::pem::{Bundle, PemError};
use crate::error::UsageError;

/// The environment variable that names the control socket when `[daemon] control` is not written.
pub const CONTROL_ENV: &str = "HAPCERT_CONTROL";

/// Reads and validates the config file; shared by every command and the daemon's SIGHUP.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        UsageError(format!(
            "cannot read the config file {}: {err}; pass --config PATH or set HAPCERT_CONFIG",
            path.display()
        ))
    })?;
    let mut config = Config::parse(&text, path)?;
    crate::edge::config_secrets::load(&mut config)?;
    // Several daemons on one host (each with its own config) need a socket each; the environment can move the default
    // without a line in every config. What the config says wins.
    if config.daemon.control.is_none()
        && let Some(socket) = std::env::var_os(CONTROL_ENV).filter(|v| !v.is_empty())
    {
        config.daemon.control = Some(Located {
            value: socket.into(),
            at: Position::default(),
            key: format!("daemon.control (from ${CONTROL_ENV})"),
        });
    }
    Ok(config)
}

/// Checks `config` against this host and resolves the PEM owner and group.
pub fn host_check(config: &Config) -> Result<FileOwner, ConfigErrors> {
    crate::edge::config_secrets::check(config)?;
    let mut problems = Problems {
        file: &config.path,
        list: Vec::new(),
    };
    let mut fail = |item: &dyn Locatable, message: String| problems.add(item, message);

    check_writable_dir(&config.haproxy.cert_dir, &mut fail);
    for cert in &config.certificates {
        let parent = cert.file.value.parent().unwrap_or(Path::new("/"));
        if parent != config.haproxy.cert_dir.value {
            let parent = Located {
                value: parent.to_owned(),
                at: cert.file.at,
                key: cert.file.key.clone(),
            };
            check_writable_dir(&parent, &mut fail);
        }
    }

    // The state directory is made on first use, so only its parent has to be there.
    let state = &config.state.dir;
    if state.value.exists() {
        check_writable_dir(state, &mut fail);
    } else if let Some(parent) = state.value.parent().filter(|p| !p.exists()) {
        fail(
            state,
            format!(
                "{} does not exist, and neither does its parent {}; create it (mode 0700)",
                state.value.display(),
                parent.display()
            ),
        );
    }

    if let Some(bundle) = &config.acme.ca_bundle
        && let Err(err) = std::fs::read(&bundle.value)
    {
        fail(bundle, format!("cannot read {}: {err}", bundle.value.display()));
    }
    if let Some(roots) = &config.acme.trust_roots {
        check_certificates_file(roots, "the PEM file of your CA's root certificates", &mut fail);
    }
    if let Some(fleet) = &config.fleet {
        if let Some(bundle) = &fleet.ca_bundle {
            check_certificates_file(
                bundle,
                "the PEM file of the roots etcd's server certificates lead to",
                &mut fail,
            );
        }
        if let Some(identity) = &fleet.client_identity {
            check_certificates_file(&identity.cert, "the PEM client certificate etcd trusts", &mut fail);
        }
    }

    let mut owner = FileOwner::default();
    if let Some(user) = &config.haproxy.owner {
        match User::from_name(&user.value) {
            Ok(Some(found)) => owner.uid = Some(found.uid.as_raw()),
            Ok(None) => fail(user, format!("there is no user '{}' on this host", user.value)),
            Err(err) => fail(user, format!("cannot look up user '{}': {err}", user.value)),
        }
    }
    if let Some(group) = &config.haproxy.group {
        match Group::from_name(&group.value) {
            Ok(Some(found)) => owner.gid = Some(found.gid.as_raw()),
            Ok(None) => fail(group, format!("there is no group '{}' on this host", group.value)),
            Err(err) => fail(group, format!("cannot look up group '{}': {err}", group.value)),
        }
    }
    let changes_owner = owner.uid.is_some_and(|u| Uid::from_raw(u) != Uid::effective())
        || owner.gid.is_some_and(|g| Gid::from_raw(g) != Gid::effective());
    if changes_owner && !Uid::effective().is_root() {
        let item = config
            .haproxy
            .owner
            .as_ref()
            .or(config.haproxy.group.as_ref())
            .expect("set when owner changes");
        fail(
            item,
            "changing a file's owner or group needs root; run hapcert as root or remove owner/group".into(),
        );
    }

    if problems.list.is_empty() {
        Ok(owner)
    } else {
        Err(ConfigErrors(problems.list))
    }
}

struct Problems<'a> {
    file: &'a Path,
    list: Vec<ConfigError>,
}

impl Problems<'_> {
    fn add(&mut self, item: &dyn Locatable, message: String) {
        let (at, key) = item.place();
        // Defaults have no place in the file (line 0): the key alone names them.
        self.list.push(ConfigError {
            file: self.file.to_owned(),
            at: (at.line > 0).then_some(at),
            key: key.to_owned(),
            message,
        });
    }
}

/// Any `Located<T>`, whatever `T` is, so one error sink serves paths and names alike.
trait Locatable {
    fn place(&self) -> (Position, &str);
}

impl<T> Locatable for Located<T> {
    fn place(&self) -> (Position, &str) {
        (self.at, &self.key)
    }
}

/// Refuses every `file` of `files` that exists and is not a PEM certificate. A run overwrites a certificate's file and a
/// rollback writes its bytes back, so a `file` that names something else (haproxy.cfg, /etc/passwd, a private key) would
/// be destroyed. A missing or empty file is one hapcert will write.
///
/// `check-config` asks this of every file. A run asks it only of the files its facts cache could not read as a
/// certificate, so that a run over a thousand unchanged certificates opens none of them.
pub fn check_certificate_files<'a>(
    config: &Config,
    files: impl IntoIterator<Item = &'a Located<std::path::PathBuf>>,
) -> Result<(), ConfigErrors> {
    let mut problems = Problems {
        file: &config.path,
        list: Vec::new(),
    };
    for file in files {
        if let Some(message) = not_a_certificate(&file.value) {
            problems.add(file, message);
        }
    }
    if problems.list.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(problems.list))
    }
}

fn not_a_certificate(path: &Path) -> Option<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            return Some(format!(
                "cannot read {}: {err}; hapcert must read it to put it back if a deploy fails",
                path.display()
            ));
        }
    };
    if bytes.is_empty() {
        return None;
    }
    let problem = match Bundle::holds_certificate(&bytes).err()? {
        PemError::Syntax(detail) => format!("cannot be read as PEM ({detail})"),
        other => other.to_string(),
    };
    Some(format!(
        "{} {problem}: it is not a PEM certificate; point `file` at the PEM HAProxy loads, or remove the file if it is a leftover",
        path.display()
    ))
}

/// A file that must hold PEM certificates (`what`, for the fix).
fn check_certificates_file(
    file: &Located<std::path::PathBuf>,
    what: &str,
    fail: &mut impl FnMut(&dyn Locatable, String),
) {
    let shown = file.value.display();
    match std::fs::read(&file.value).map(|bytes| crate::core::trust::pem_certificates(&bytes)) {
        Err(err) => fail(file, format!("cannot read {shown}: {err}")),
        Ok(Ok(certs)) if !certs.is_empty() => {}
        Ok(Err(why)) => fail(file, format!("{shown}: {why}; give {what}")),
        Ok(Ok(_)) => fail(file, format!("{shown} holds no CERTIFICATE block; give {what}")),
    }
}

fn check_writable_dir(dir: &Located<std::path::PathBuf>, fail: &mut impl FnMut(&dyn Locatable, String)) {
    if let Err(problem) = writable_dir(&dir.value) {
        fail(dir, problem);
    }
}

/// Whether this user can make files in `path`; the problem, with what to do, when not.
pub fn writable_dir(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("directory {} does not exist; create it", path.display()))
        }
        Err(err) => Err(format!("cannot inspect {}: {err}", path.display())),
        Ok(meta) if !meta.is_dir() => Err(format!("{} is not a directory", path.display())),
        Ok(_) => access(path, AccessFlags::W_OK | AccessFlags::X_OK)
            .map_err(|err| format!("directory {} cannot be written by this user: {err}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_finds_missing_directories_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[acme]\ndirectory = \"letsencrypt\"\nca_bundle = \"{d}/missing.pem\"\n[haproxy]\ncert_dir = \"{d}/nope\"\nowner = \"no-such-user-hapcert\"\n[state]\ndir = \"{d}/a/b/state\"\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n",
            d = dir.path().display()
        );
        let config = Config::parse(&text, &dir.path().join("hapcert.toml")).unwrap();
        let problems: Vec<String> = host_check(&config)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect();
        let d = dir.path().display();
        let file = dir.path().join("hapcert.toml");
        let file = file.display();
        assert_eq!(
            problems,
            [
                format!("{file}:5:12: haproxy.cert_dir: directory {d}/nope does not exist; create it"),
                format!(
                    "{file}:8:7: state.dir: {d}/a/b/state does not exist, and neither does its parent {d}/a/b; create it (mode 0700)"
                ),
                format!(
                    "{file}:3:13: acme.ca_bundle: cannot read {d}/missing.pem: No such file or directory (os error 2)"
                ),
                format!("{file}:6:9: haproxy.owner: there is no user 'no-such-user-hapcert' on this host"),
            ]
        );
    }

    #[test]
    fn trust_roots_must_be_a_readable_pem_of_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        let file = dir.path().join("hapcert.toml");
        let problems = |roots: &str| -> Vec<String> {
            let text = format!(
                "[acme]\ndirectory = \"letsencrypt\"\ntrust_roots = \"{roots}\"\n[haproxy]\ncert_dir = \"{d}/certs\"\n\
                 [state]\ndir = \"{d}/state\"\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n"
            );
            let config = Config::parse(&text, &file).unwrap();
            match host_check(&config) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.0.iter().map(|e| e.to_string()).collect(),
            }
        };
        let shown = file.display();
        assert_eq!(
            problems(&format!("{d}/missing.pem")),
            [format!(
                "{shown}:3:15: acme.trust_roots: cannot read {d}/missing.pem: No such file or directory (os error 2)"
            )]
        );
        let pem = crate::testing::TestCa::new().issue(&["a.example.com"], crate::core::config::KeyType::EcdsaP256, 90);
        let (_, _, key) = crate::testing::leaf_pem_parts(&pem);
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        assert_eq!(
            problems(&format!("{d}/key.pem")),
            [format!(
                "{shown}:3:15: acme.trust_roots: {d}/key.pem holds no CERTIFICATE block; give the PEM file of your \
                 CA's root certificates"
            )]
        );
        std::fs::write(dir.path().join("roots.pem"), crate::testing::TestCa::new().root_pem()).unwrap();
        assert_eq!(problems(&format!("{d}/roots.pem")), Vec::<String>::new());
    }

    #[test]
    fn the_fleets_ca_bundle_and_client_certificate_must_be_readable_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        let file = dir.path().join("hapcert.toml");
        let text = format!(
            "[acme]\ndirectory = \"letsencrypt\"\n[haproxy]\ncert_dir = \"{d}/certs\"\n[state]\ndir = \"{d}/state\"\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n[fleet]\netcd = [\"https://127.0.0.1:2379\"]\n\
             key_file = \"fleet.key\"\nca_bundle = \"etcd-ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"\n"
        );
        let config = Config::parse(&text, &file).unwrap();
        let problems = || match host_check(&config) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        };
        let shown = file.display();
        std::fs::write(dir.path().join("client.pem"), "not a certificate").unwrap();
        assert_eq!(
            problems(),
            [
                format!(
                    "{shown}:13:13: fleet.ca_bundle: cannot read {d}/etcd-ca.pem: No such file or directory (os error 2)"
                ),
                format!(
                    "{shown}:14:15: fleet.client_cert: {d}/client.pem holds no CERTIFICATE block; give the PEM client \
                     certificate etcd trusts"
                ),
            ]
        );
        let ca = crate::testing::TestCa::new();
        std::fs::write(dir.path().join("etcd-ca.pem"), ca.root_pem()).unwrap();
        std::fs::write(
            dir.path().join("client.pem"),
            ca.issue(&["client.example.com"], crate::core::config::KeyType::EcdsaP256, 90),
        )
        .unwrap();
        assert_eq!(problems(), Vec::<String>::new());
    }

    #[test]
    fn an_existing_certificate_file_must_be_a_pem_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let config_file = dir.path().join("hapcert.toml");
        let text = format!(
            "[acme]\ndirectory = \"letsencrypt\"\n[haproxy]\ncert_dir = \"{d}/certs\"\n[state]\ndir = \"{d}/state\"\n\
             [[certificate]]\nname = \"passwd\"\ndomains = [\"a.example.com\"]\n\
             [[certificate]]\nname = \"key\"\ndomains = [\"b.example.com\"]\n\
             [[certificate]]\nname = \"pem\"\ndomains = [\"c.example.com\"]\n\
             [[certificate]]\nname = \"empty\"\ndomains = [\"d.example.com\"]\n\
             [[certificate]]\nname = \"missing\"\ndomains = [\"e.example.com\"]\n\
             [[certificate]]\nname = \"damaged\"\ndomains = [\"f.example.com\"]\n"
        );
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        std::fs::write(certs.join("passwd.pem"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let pem = crate::testing::TestCa::new().issue(&["c.example.com"], crate::core::config::KeyType::EcdsaP256, 90);
        let (_, _, key) = crate::testing::leaf_pem_parts(&pem);
        std::fs::write(certs.join("key.pem"), key).unwrap();
        std::fs::write(certs.join("pem.pem"), &pem).unwrap();
        std::fs::write(certs.join("empty.pem"), "").unwrap();
        // A certificate block that does not decode is a renewal's to replace, not a file of another kind.
        std::fs::write(certs.join("damaged.pem"), pem.replacen("MII", "MIX", 1)).unwrap();

        let config = Config::parse(&text, &config_file).unwrap();
        let problems: Vec<String> = check_certificate_files(&config, config.certificates.iter().map(|c| &c.file))
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect();
        let fix = "it is not a PEM certificate; point `file` at the PEM HAProxy loads, or remove the file if it is a leftover";
        let c = config_file.display();
        assert_eq!(
            problems,
            [
                format!("{c}:8:8: certificate[0].file: {d}/certs/passwd.pem holds no certificate: {fix}"),
                format!("{c}:11:8: certificate[1].file: {d}/certs/key.pem holds no certificate: {fix}"),
            ]
        );
    }
}
