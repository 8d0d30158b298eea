//! The trusted roots, read from the host: the system store (or `[check] ca_bundle` in its place), `[acme] trust_roots`,
//! and Let's Encrypt's staging roots while the directory is staging. The one loader behind the one rule
//! (`core::trust::verify_chain`) that both the gate before a deploy and `check` apply.

use std::path::Path;

use crate::core::config::{Config, LETSENCRYPT_STAGING};
use crate::core::trust::{RootSource, RootsKey, TrustRoots, letsencrypt_staging_roots, pem_certificates};

/// Reads every configured source of roots. An error names the file and key to fix, or says that no root was found.
pub fn load(config: &Config) -> Result<TrustRoots, String> {
    let mut sources = Vec::new();
    let mut system_problem = None;
    match &config.check.ca_bundle {
        Some(bundle) => sources.push(from_file(&bundle.value, "ca_bundle", "[check] ca_bundle")?),
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                system_problem = Some(if errors.is_empty() {
                    "no system root certificates are installed".to_owned()
                } else {
                    format!("the system root certificates cannot be read ({})", errors.join("; "))
                });
            }
            sources.push(RootSource {
                label: "the system roots".into(),
                certs: found.certs,
            });
        }
    }
    if let Some(file) = &config.acme.trust_roots {
        sources.push(from_file(&file.value, "trust_roots", "[acme] trust_roots")?);
    }
    if config.acme.directory == LETSENCRYPT_STAGING {
        sources.push(letsencrypt_staging_roots());
    }
    TrustRoots::new(sources).map_err(|why| match system_problem {
        Some(problem) => format!("{problem}; {why}"),
        None => why,
    })
}

/// The roots `check` verifies served chains against: the same as [`load`], with the messages naming `[check]
/// ca_bundle`, the key that trusts another root there.
pub fn load_for_check(config: &Config) -> Result<TrustRoots, String> {
    let key = match &config.check.ca_bundle {
        Some(bundle) => RootsKey::CheckBundleInPlace(bundle.value.display().to_string()),
        None => RootsKey::CheckBundle,
    };
    Ok(load(config)?.advising(key))
}

/// The roots of one bundle alone (a `[[watch]]` entry's `ca_bundle`, for a private CA); `key` names it in errors.
pub fn load_bundle(path: &Path, key: &str) -> Result<TrustRoots, String> {
    Ok(TrustRoots::new(vec![from_file(path, "ca_bundle", key)?])?.advising(RootsKey::Other(key.to_owned())))
}

fn from_file(path: &Path, label: &str, key: &str) -> Result<RootSource, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {key} {shown}: {e}; fix {key}"))?;
    let certs = pem_certificates(&bytes).map_err(|why| format!("{key} {shown}: {why}; fix {key}"))?;
    if certs.is_empty() {
        return Err(format!("{key} {shown} holds no CERTIFICATE block; fix {key}"));
    }
    Ok(RootSource {
        label: format!("{label} {shown}"),
        certs,
    })
}
