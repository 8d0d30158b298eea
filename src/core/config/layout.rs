//! Where hapcert's files may lie relative to each other: the state directory, the cert directory, each certificate's
//! file and the config file must not overlap (pure: paths compared as written).

use std::path::{Component, Path, PathBuf};

use super::Config;
use super::errors::Errors;

/// hapcert overwrites every certificate `file` and keeps its account key and backups in the state directory: paths
/// that overlap would have it overwrite its own config or state, or HAProxy load the account key as a certificate.
/// Compared as written (lexically): a symlink can still hide an overlap.
pub(super) fn validate_layout(config: &Config, errors: &mut Errors) {
    let config_file = lexical(&config.path);
    let state = &config.state.dir;
    let state_dir = lexical(&state.value);
    let cert_dir = &config.haproxy.cert_dir;
    let certs = lexical(&cert_dir.value);
    const OWN_STATE: &str = "give the state a directory of its own, like /var/lib/hapcert";

    // A directory whose overlap with the state is reported once, not again for every file in it.
    let mut reported = Vec::new();
    if let Some(how) = relation(&state_dir, &certs) {
        errors.at_located(
            state,
            format!(
                "{} {how} the cert directory {}; HAProxy would load hapcert's account key and backups as certificates; {OWN_STATE}",
                state.value.display(),
                cert_dir.value.display()
            ),
        );
        reported.push(certs.clone());
    } else if relation(&certs, &state_dir).is_some() {
        errors.at_located(
            cert_dir,
            format!(
                "{} is inside the state directory {}, which holds the account key; keep the certificates outside it",
                cert_dir.value.display(),
                state.value.display()
            ),
        );
        reported.push(certs.clone());
    }
    if relation(&config_file, &certs).is_some() {
        errors.at_located(
            cert_dir,
            format!(
                "{} holds the config file {}; HAProxy would try to load it as a certificate; keep the config elsewhere, like /etc/hapcert/hapcert.toml",
                cert_dir.value.display(),
                config.path.display()
            ),
        );
    }
    if relation(&config_file, &state_dir).is_some() {
        errors.at_located(
            state,
            format!(
                "{} holds the config file {}; the state directory is hapcert's own; keep the config elsewhere, like /etc/hapcert/hapcert.toml",
                state.value.display(),
                config.path.display()
            ),
        );
    }

    // The fleet's secrets in a crt directory would be loaded by HAProxy as certificates, and fail its config check.
    if let Some(fleet) = &config.fleet {
        let secrets = [
            Some(&fleet.key_file),
            fleet.auth.as_ref().map(|a| &a.password_file),
            fleet.client_identity.as_ref().map(|c| &c.key),
        ];
        for secret in secrets.into_iter().flatten() {
            if relation(&lexical(&secret.value), &certs).is_some() {
                errors.at_located(
                    secret,
                    format!(
                        "{} is inside the cert directory {}, which HAProxy loads whole; keep it elsewhere, like /etc/hapcert/",
                        secret.value.display(),
                        cert_dir.value.display()
                    ),
                );
            }
        }
    }

    // Each directory other than the cert directory is looked at once, under the first certificate that writes there.
    let mut dirs_seen = vec![certs.clone()];
    for cert in &config.certificates {
        let file = lexical(&cert.file.value);
        let dir = file.parent().map(Path::to_owned).unwrap_or_default();
        if !dirs_seen.contains(&dir) {
            if let Some(how) = relation(&state_dir, &dir) {
                errors.at_located(
                    state,
                    format!(
                        "{} {how} {}, where {} writes its certificate; {OWN_STATE}",
                        state.value.display(),
                        dir.display(),
                        cert.file.key
                    ),
                );
                reported.push(dir.clone());
            }
            dirs_seen.push(dir.clone());
        }
        if file == config_file {
            errors.at_located(
                &cert.file,
                "is the config file itself, which a renewal would overwrite with a certificate; point `file` at the PEM HAProxy loads",
            );
        } else if !reported.contains(&dir) && relation(&file, &state_dir).is_some() {
            errors.at_located(
                &cert.file,
                format!(
                    "{} is inside the state directory {}; point `file` at the PEM HAProxy loads, outside the state directory",
                    cert.file.value.display(),
                    state.value.display()
                ),
            );
        }
    }
}

/// Whether `inner` "is" `outer` or "is inside" it, comparing whole components.
fn relation(inner: &Path, outer: &Path) -> Option<&'static str> {
    if inner == outer {
        Some("is")
    } else if inner.starts_with(outer) {
        Some("is inside")
    } else {
        None
    }
}

/// `path` with `.` dropped and each `..` taking away the component before it, as written: no symlink is followed.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
