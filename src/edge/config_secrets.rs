//! The secrets a config names or holds, checked by the host check: the External Account Binding HMAC key read from
//! `acme.eab_hmac_key_file`, and a warning when the config file itself holds the key (`acme.eab_hmac_key`) and every
//! user on the host can read it. The key is never printed.
//!
//! The key file must not be readable by other users (mode 0600, or 0640 for a group that should read it); one that
//! is, is refused, since hapcert would otherwise go on using a secret that may already have leaked. The config file is
//! only warned about: it is usually 0644 and holds nothing else secret, and refusing it would stop a working setup.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::core::config::{Config, ConfigError, ConfigErrors, EAB_KEY_FORM, ExternalAccountBinding, is_eab_key};

/// Checks the EAB HMAC key file, if the config names one, and warns when the config file holds the key and is
/// world-readable. Part of the host check (check-config, run, renew, the daemon); `check` and `status`, which a
/// monitoring user may run without access to the key, never read it.
pub fn check(config: &Config) -> Result<(), ConfigErrors> {
    if let Some(eab) = &config.acme.eab
        && let Some(file) = &eab.hmac_key_file
        && let Err(message) = read_key_file(&file.value)
    {
        return Err(ConfigErrors(vec![ConfigError {
            file: config.path.clone(),
            at: Some(file.at),
            key: file.key.clone(),
            message,
        }]));
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
