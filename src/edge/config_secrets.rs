//! The secrets a config names or holds, checked by the host check: the External Account Binding HMAC key read from
//! `acme.eab_hmac_key_file`, and a warning when the config file itself holds the key (`acme.eab_hmac_key`) and every
//! user on the host can read it; with `[fleet]`, the fleet key read from `fleet.key_file`, `fleet.password_file` and
//! `fleet.client_key` checked, and the node's name taken from the host name when not written. No secret is printed.
//!
//! A secret's file must not be readable by other users (mode 0600, or 0640 for a group that should read it); one that
//! is, is refused, since hapcert would otherwise go on using a secret that may already have leaked. The config file is
//! only warned about: it is usually 0644 and holds nothing else secret, and refusing it would stop a working setup.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use std::sync::Arc;

use base64::Engine;

use crate::core::config::{
    Config, ConfigError, ConfigErrors, DnsProviderKind, EAB_KEY_FORM, ExternalAccountBinding, Located, is_eab_key,
    validate_node,
};
use crate::core::seal::FleetKey;

/// Checks the EAB HMAC key file, if the config names one, and warns when the config file holds the key and is
/// world-readable. Part of the host check (check-config, run, renew, the daemon); `check` and `status`, which a
/// monitoring user may run without access to the key, never read it.
pub fn check(config: &Config) -> Result<(), ConfigErrors> {
    let mut problems = Vec::new();
    let mut fail = |file: &Located<std::path::PathBuf>, message: String| {
        problems.push(ConfigError {
            file: config.path.clone(),
            at: Some(file.at),
            key: file.key.clone(),
            message,
        })
    };
    if let Some(eab) = &config.acme.eab
        && let Some(file) = &eab.hmac_key_file
        && let Err(message) = read_key_file(&file.value)
    {
        fail(file, message);
    }
    for provider in &config.dns_providers {
        if let DnsProviderKind::Rfc2136(rfc) = &provider.kind
            && let Err(message) = tsig_secret(&rfc.secret_file.value)
        {
            fail(&rfc.secret_file, message);
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    if let Some(eab) = &config.acme.eab
        && eab.hmac_key_file.is_none()
        && let Ok(metadata) = std::fs::metadata(&config.path)
        && let Some(warning) = inline_key_warning(&config.path, metadata.permissions().mode())
    {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// `[fleet]`, when the config is loaded: the node's name (the host name when not written), the fleet key, and the files
/// that hold secrets; every problem at once.
pub fn load(config: &mut Config) -> Result<(), ConfigErrors> {
    let path = config.path.clone();
    let Some(fleet) = config.fleet.as_mut() else {
        return Ok(());
    };
    let mut problems = Vec::new();
    let mut fail = |at: &Located<std::path::PathBuf>, message: String| {
        problems.push(ConfigError {
            file: path.clone(),
            at: (at.at.line > 0).then_some(at.at),
            key: at.key.clone(),
            message,
        })
    };
    match read_secret_file(&fleet.key_file.value).and_then(|text| {
        FleetKey::decode(&text).map_err(|why| {
            let shown = fleet.key_file.value.display();
            format!(
                "{shown} {why}; make one with `hapcert fleet keygen --out {shown}` on one node and copy it to the others"
            )
        })
    }) {
        Ok(key) => fleet.key = Some(Arc::new(key)),
        Err(message) => fail(&fleet.key_file, message),
    }
    if let Some(auth) = &fleet.auth {
        match read_secret_file(&auth.password_file.value) {
            Ok(text) if text.lines().next().unwrap_or_default().is_empty() => fail(
                &auth.password_file,
                format!(
                    "{} is empty; put the etcd user's password on its first line",
                    auth.password_file.value.display()
                ),
            ),
            Ok(_) => {}
            Err(message) => fail(&auth.password_file, message),
        }
    }
    if let Some(identity) = &fleet.client_identity
        && let Err(message) = read_secret_file(&identity.key.value)
    {
        fail(&identity.key, message);
    }
    if fleet.node.value.is_empty() {
        let host = nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        match validate_node(&host) {
            Ok(()) => fleet.node.value = host,
            Err(why) => problems.push(ConfigError {
                file: path.clone(),
                at: None,
                key: "fleet.node".into(),
                message: format!(
                    "is not set, and the host name cannot stand in for it: {why}; set [fleet] node = \"lb1\" (unique in the fleet)"
                ),
            }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(problems))
    }
}

/// The text of a file that holds a secret, refused when other users can read it.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|err| format!("cannot read {shown}: {err}"))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "{shown} holds a secret and other users can read it (mode {mode:04o}): chmod 600 {shown}, and replace the \
             secret if this host has users you do not trust"
        ));
    }
    std::fs::read_to_string(path).map_err(|err| format!("cannot read {shown}: {err}"))
}

/// A TSIG key's secret: the base64 text alone in its file, which other users must not be able to read.
pub fn tsig_secret(path: &Path) -> Result<Vec<u8>, String> {
    let text = read_secret_file(path)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|err| {
            format!(
                "{} does not hold a base64 TSIG secret ({err}); put the `secret` of the key's tsig-keygen output in \
                 it, alone, without the quotes",
                path.display()
            )
        })
}

/// The HMAC key, from the config or read from `acme.eab_hmac_key_file` now: only when an account is registered.
pub fn hmac_key(eab: &ExternalAccountBinding) -> anyhow::Result<String> {
    match &eab.hmac_key_file {
        Some(file) => {
            read_key_file(&file.value).map_err(|message| anyhow::anyhow!("acme.eab_hmac_key_file: {message}"))
        }
        None => Ok(eab.hmac_key.clone()),
    }
}

/// The key in `path`, trimmed, or what is wrong with the file.
fn read_key_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|err| format!("cannot read {shown}: {err}"))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "{shown} holds a secret and other users can read it (mode {mode:04o}): chmod 600 {shown}, and get a new \
             key from your CA if this host has users you do not trust"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {shown}: {err}"))?;
    let key = text.trim();
    if !is_eab_key(key) {
        return Err(format!("the key in {shown} {EAB_KEY_FORM}, alone in the file"));
    }
    Ok(key.to_owned())
}

/// The warning for a config file of `mode` that holds `acme.eab_hmac_key`, when every user can read it.
fn inline_key_warning(path: &Path, mode: u32) -> Option<String> {
    let mode = mode & 0o7777;
    (mode & 0o004 != 0).then(|| {
        let shown = path.display();
        format!(
            "{shown} holds acme.eab_hmac_key, a secret, and every user on this host can read it (mode {mode:04o}): \
             chmod 600 {shown}, or move the key into a file of its own (mode 0600) and name it with \
             acme.eab_hmac_key_file"
        )
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1mb3ItZWFi";

    fn config_with(dir: &Path, acme_lines: &str) -> Config {
        let text = format!(
            "[acme]\ndirectory = \"https://ca.example/dir\"\n{acme_lines}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n"
        );
        let path = dir.join("hapcert.toml");
        fs::write(&path, &text).unwrap();
        Config::parse(&text, &path).unwrap()
    }

    fn write_mode(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_key_file_is_read_trimmed_and_must_not_be_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("eab.key");
        let config = config_with(dir.path(), "eab_kid = \"kid-1\"\neab_hmac_key_file = \"eab.key\"");
        assert_eq!(
            config.acme.eab.as_ref().unwrap().hmac_key,
            "",
            "not read by the pure parse"
        );

        write_mode(&key_file, &format!("{KEY}\n"), 0o640);
        check(&config).unwrap();
        assert_eq!(hmac_key(config.acme.eab.as_ref().unwrap()).unwrap(), KEY);

        for (mode, text, wanted) in [
            (0o644, KEY, "other users can read it (mode 0644): chmod 600"),
            (0o600, "not base64!", "must be the base64url key your CA gave you"),
            (0o600, "", "must be the base64url key"),
        ] {
            write_mode(&key_file, text, mode);
            let config = config_with(dir.path(), "eab_kid = \"kid-1\"\neab_hmac_key_file = \"eab.key\"");
            let err = check(&config).unwrap_err().to_string();
            let place = format!(
                "{}:4:21: acme.eab_hmac_key_file: ",
                dir.path().join("hapcert.toml").display()
            );
            assert!(err.starts_with(&place) && err.contains(wanted), "{mode:o}: {err}");
            assert!(!err.contains(KEY), "the key is never shown: {err}");
        }
        fs::remove_file(&key_file).unwrap();
        let config = config_with(dir.path(), "eab_kid = \"kid-1\"\neab_hmac_key_file = \"eab.key\"");
        assert!(check(&config).unwrap_err().to_string().contains("cannot read"));
    }

    #[test]
    fn the_fleet_key_and_secret_files_are_read_at_load_and_refused_when_others_can_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let fleet_config = |fleet_lines: &str| {
            let text = format!(
                "[acme]\ndirectory = \"https://ca.example/dir\"\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\
                 [fleet]\netcd = [\"https://127.0.0.1:2379\"]\nkey_file = \"fleet.key\"\n{fleet_lines}\n"
            );
            Config::parse(&text, &d.join("hapcert.toml")).unwrap()
        };
        let key_text = FleetKey::generate_encoded().unwrap();
        write_mode(&d.join("fleet.key"), &key_text, 0o600);
        write_mode(&d.join("password"), "secret-pw\n", 0o640);
        write_mode(&d.join("client.key"), "-----BEGIN PRIVATE KEY-----\n", 0o600);
        let lines = "node = \"lb1\"\nusername = \"u\"\npassword_file = \"password\"\nclient_cert = \"c.pem\"\nclient_key = \"client.key\"";
        let mut config = fleet_config(lines);
        load(&mut config).unwrap();
        let fleet = config.fleet.as_ref().unwrap();
        assert_eq!(
            fleet.key.as_ref().unwrap().id(),
            FleetKey::decode(&key_text).unwrap().id()
        );
        assert_eq!(fleet.node.value, "lb1");

        // The node's name defaults to the host name.
        let mut config = fleet_config("");
        load(&mut config).unwrap();
        let host = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
        assert_eq!(config.fleet.unwrap().node.value, host);

        let toml = d.join("hapcert.toml");
        let toml = toml.display();
        let dd = d.display();
        for (file, mode, text, wanted) in [
            (
                "fleet.key",
                0o644,
                key_text.as_str(),
                format!(
                    "{toml}:8:12: fleet.key_file: {dd}/fleet.key holds a secret and other users can read it (mode 0644): chmod 600 {dd}/fleet.key"
                ),
            ),
            (
                "fleet.key",
                0o600,
                "hapcert-fleet-key-v1:AAAA",
                format!("{toml}:8:12: fleet.key_file: {dd}/fleet.key holds a damaged fleet key"),
            ),
            (
                "fleet.key",
                0o600,
                "not a key",
                format!("{toml}:8:12: fleet.key_file: {dd}/fleet.key is not a hapcert fleet key"),
            ),
            (
                "password",
                0o604,
                "pw",
                format!(
                    "{toml}:11:17: fleet.password_file: {dd}/password holds a secret and other users can read it (mode 0604)"
                ),
            ),
            (
                "password",
                0o600,
                "\nsecond line",
                format!(
                    "{toml}:11:17: fleet.password_file: {dd}/password is empty; put the etcd user's password on its first line"
                ),
            ),
            (
                "client.key",
                0o644,
                "k",
                format!(
                    "{toml}:13:14: fleet.client_key: {dd}/client.key holds a secret and other users can read it (mode 0644)"
                ),
            ),
        ] {
            let before = fs::read_to_string(d.join(file)).unwrap();
            let before_mode = fs::metadata(d.join(file)).unwrap().permissions().mode();
            write_mode(&d.join(file), text, mode);
            let err = load(&mut fleet_config(lines)).unwrap_err().to_string();
            assert!(err.starts_with(&wanted), "{file} {mode:o}:\n{err}\nwanted: {wanted}");
            assert!(!err.contains(key_text.trim()), "{err}");
            write_mode(&d.join(file), &before, before_mode);
        }
        fs::remove_file(d.join("fleet.key")).unwrap();
        assert!(
            load(&mut fleet_config(lines))
                .unwrap_err()
                .to_string()
                .contains("fleet.key_file: cannot read")
        );
    }

    #[test]
    fn a_tsig_secret_is_base64_alone_in_a_file_others_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsig.secret");
        write_mode(&path, "c2VjcmV0\n", 0o600);
        assert_eq!(tsig_secret(&path).unwrap(), b"secret");
        write_mode(&path, "c2VjcmV0\n", 0o644);
        assert!(
            tsig_secret(&path)
                .unwrap_err()
                .contains("other users can read it (mode 0644): chmod 600")
        );
        write_mode(&path, "secret \"c2VjcmV0\";\n", 0o600);
        let err = tsig_secret(&path).unwrap_err();
        assert!(
            err.contains("does not hold a base64 TSIG secret") && !err.contains("c2VjcmV0"),
            "{err}"
        );
    }

    #[test]
    fn a_world_readable_config_holding_the_key_is_warned_about() {
        let path = Path::new("/etc/hapcert/hapcert.toml");
        let warning = inline_key_warning(path, 0o100644).unwrap();
        assert!(
            warning.starts_with("/etc/hapcert/hapcert.toml holds acme.eab_hmac_key")
                && warning.contains("(mode 0644): chmod 600 /etc/hapcert/hapcert.toml")
                && warning.contains("acme.eab_hmac_key_file"),
            "{warning}"
        );
        assert_eq!(inline_key_warning(path, 0o100600), None);
        assert_eq!(inline_key_warning(path, 0o100640), None);
    }

    #[test]
    fn a_key_given_twice_or_without_its_id_is_refused() {
        let errors = |acme_lines: &str| {
            let text = format!(
                "[acme]\ndirectory = \"https://ca.example/dir\"\n{acme_lines}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n"
            );
            Config::parse(&text, Path::new("/etc/hapcert/hapcert.toml"))
                .unwrap_err()
                .to_string()
        };
        let both = errors(&format!(
            "eab_kid = \"k\"\neab_hmac_key = \"{KEY}\"\neab_hmac_key_file = \"eab.key\""
        ));
        assert!(
            both.contains("acme.eab_hmac_key_file: give the HMAC key once"),
            "{both}"
        );
        assert!(!both.contains(KEY), "{both}");
        let no_kid = errors("eab_hmac_key_file = \"eab.key\"");
        assert!(
            no_kid.contains("acme.eab_hmac_key_file: eab_kid is missing"),
            "{no_kid}"
        );
    }
}
