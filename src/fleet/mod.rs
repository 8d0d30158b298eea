//! Fleets: several load balancers sharing their certificates through etcd (issue 13). For now, `hapcert fleet keygen`,
//! and the refusal of the commands that would order certificates: the fleet engine (locks, convergence) is not built
//! yet, and a `[fleet]` table accepted but ignored would let every node order the same certificates.

use std::path::Path;

use anyhow::Context;

use crate::core::config::{Config, FileOwner};
use crate::core::seal::FleetKey;
use crate::edge::store::write_atomic_new;
use crate::error::UsageError;

/// What `run`, `renew` and `daemon` say to a config with `[fleet]`.
pub const NOT_YET: &str =
    "[fleet] is configured, but this hapcert does not run fleets yet; remove [fleet] to run as a single node";

/// Refuses a config with `[fleet]` for a command that orders or deploys.
pub fn refuse_fleet(config: &Config) -> Result<(), UsageError> {
    match &config.fleet {
        Some(_) => Err(UsageError(format!("{}: {NOT_YET}", config.path.display()))),
        None => Ok(()),
    }
}

/// `hapcert fleet keygen --out PATH`: a new random fleet key, mode 0600, never over an existing file. Returns the line
/// to print, which names the key's id and not the key.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    let shown = out.display();
    let text = FleetKey::generate_encoded().map_err(|_| anyhow::anyhow!("the system's randomness failed"))?;
    let id = FleetKey::decode(&text)
        .context("a new fleet key decodes")?
        .id()
        .to_owned();
    match write_atomic_new(out, text.as_bytes(), 0o600, FileOwner::default()) {
        Ok(()) => Ok(format!(
            "wrote a new fleet key to {shown} (mode 0600, id {id}); copy it to every node of the fleet (mode 0600) and \
             name it in [fleet] key_file"
        )),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(UsageError(format!(
            "{shown} already exists; a fleet key is never overwritten (the fleet's sealed secrets would be lost): \
             give another --out path, or remove the file if it is not in use"
        ))
        .into()),
        Err(err) => Err(anyhow::Error::new(err).context(format!("cannot write {shown}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_key_at_0600_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.key");
        let line = keygen(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let key = FleetKey::decode(&text).unwrap();
        assert!(line.contains(key.id()) && !line.contains(text.trim()), "{line}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        let err = keygen(&path).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "left alone");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file left behind");
    }
}
