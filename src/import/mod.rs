//! `hapcert import certbot`: take over the certificates certbot manages. This file is the edge: it reads certbot's tree
//! into plain data, and writes what `certbot::plan` decided (the adopted PEMs through `store::write_atomic`, the config).
//! Every decision is in the pure modules: `configobj` (the renewal conf syntax) and `certbot` (what it all means).

pub mod certbot;
pub mod configobj;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use time::OffsetDateTime;

use crate::core::config::FileOwner;
use crate::edge::store;
use crate::error::UsageError;
use crate::output::out;
use certbot::{
    Account, Adoption, CertbotTree, CredentialsFile, DnsInputs, Existing, HookScript, LineageFiles, LineagePlan,
    PlanOptions, ProviderPlan, ReadFile, SecretWrite,
};

/// The options of `hapcert import certbot`.
#[derive(Debug, clap::Args)]
pub struct CertbotImport {
    /// certbot's configuration directory (its --config-dir).
    #[arg(long, value_name = "DIR", default_value = "/etc/letsencrypt")]
    pub config_dir: PathBuf,
    /// Write the config to this file (atomically) instead of printing it on stdout.
    #[arg(long, value_name = "PATH")]
    pub write_config: Option<PathBuf>,
    /// Replace the file --write-config names if it exists.
    #[arg(long, requires = "write_config")]
    pub force: bool,
    /// Where HAProxy loads certificates from: each lineage's certificate is adopted there as <lineage>.pem.
    #[arg(long, value_name = "DIR", default_value = "/etc/haproxy/certs")]
    pub cert_dir: PathBuf,
    /// Read everything and report, but write nothing: the config goes to stdout and no PEM is adopted.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the import; `Ok(false)` (exit 1) when some lineage was skipped or its certificate not adopted.
pub fn certbot_command(args: &CertbotImport) -> anyhow::Result<bool> {
    let config_dir = std::path::absolute(&args.config_dir)?;
    let cert_dir = std::path::absolute(&args.cert_dir)?;
    if !config_dir.join("renewal").is_dir() {
        return Err(UsageError(format!(
            "{} has no renewal/ directory; pass certbot's config directory with --config-dir (default /etc/letsencrypt)",
            config_dir.display()
        ))
        .into());
    }
    if !args.dry_run && !cert_dir.is_dir() {
        return Err(UsageError(format!(
            "the cert dir {} does not exist; create it (install -d -m 0700 {}) or pass --cert-dir",
            cert_dir.display(),
            cert_dir.display()
        ))
        .into());
    }
    if let Some(path) = &args.write_config
        && !args.dry_run
    {
        check_config_target(path, args.force)?;
    }

    let tree = read_tree(&config_dir)?;
    let credentials = read_credentials_files(&tree);
    if tree.lineages.is_empty() {
        return Err(UsageError(format!(
            "{} holds no *.conf: certbot manages no certificate here",
            config_dir.join("renewal").display()
        ))
        .into());
    }
    let named = std::path::absolute(
        args.write_config
            .clone()
            .unwrap_or_else(|| PathBuf::from("hapcert.toml")),
    )?;
    // A TSIG secret goes next to the config that names it, so the two are moved and backed up together.
    let secret_dir = named.parent().map_or_else(|| PathBuf::from("/"), Path::to_owned);
    let plan = certbot::plan_with_dns(
        &tree,
        &PlanOptions {
            cert_dir,
            now: OffsetDateTime::now_utc(),
        },
        &DnsInputs {
            credentials,
            secret_dir,
        },
    );
    certbot::validate_generated(&plan, &named).map_err(anyhow::Error::msg)?;

    let secrets: Vec<SecretWrite> = plan
        .providers
        .iter()
        .map(|p| write_secret(p, args.dry_run, args.force))
        .collect();
    let adoptions: Vec<Adoption> = plan.lineages.iter().map(|l| adopt(l, args.dry_run)).collect();
    let config_target = match (&plan.config_toml, &args.write_config) {
        (None, _) => String::new(),
        (Some(_), Some(path)) if args.dry_run => format!("printed on stdout; {} not written (dry run)", path.display()),
        (Some(text), Some(path)) => {
            store::write_atomic(path, text.as_bytes(), 0o644, FileOwner::default())
                .with_context(|| format!("cannot write the config {}", path.display()))?;
            format!("written to {}", path.display())
        }
        (Some(text), None) => {
            out!("{text}");
            "printed on stdout (--write-config PATH writes it to a file)".to_owned()
        }
    };
    eprint!(
        "{}",
        certbot::render_report_with_secrets(&tree, &plan, &adoptions, &secrets, &config_target)
    );
    Ok(plan.config_toml.is_some()
        && plan.skipped.is_empty()
        && adoptions.iter().all(Adoption::ok)
        && secrets.iter().all(SecretWrite::ok))
}

/// Refuses to replace a config without --force, and finds a missing directory before any certificate is adopted.
fn check_config_target(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.symlink_metadata().is_ok() && !force {
        return Err(UsageError(format!(
            "{} exists; pass --force to replace it, or write elsewhere with --write-config",
            path.display()
        ))
        .into());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(UsageError(format!(
            "cannot write {}: the directory {} does not exist; create it (install -d {})",
            path.display(),
            parent.display(),
            parent.display()
        ))
        .into());
    }
    Ok(())
}

/// Writes a lineage's PEM unless the file already holds its certificate. A file holding anything else is left alone:
/// HAProxy may be serving it, and replacing it on disk would not change what HAProxy serves until a reload anyway.
fn adopt(lineage: &LineagePlan, dry_run: bool) -> Adoption {
    let file = &lineage.file;
    let existing = match fs::read(file) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Adoption::NotAdopted(format!("cannot read {}: {err}", file.display())),
    };
    match certbot::judge_existing(existing.as_deref(), lineage) {
        Existing::Missing if dry_run => Adoption::WouldWrite,
        Existing::Missing => match store::write_atomic(file, lineage.pem.0.as_bytes(), 0o600, FileOwner::default()) {
            Ok(()) => Adoption::Written,
            Err(err) => Adoption::NotAdopted(format!("cannot write {}: {err}", file.display())),
        },
        Existing::Other(what) => Adoption::NotAdopted(format!(
            "{} holds {what}, not this lineage's certificate; left as it is. If the lineage's certificate should \
             replace it, move that file out of the cert dir, run the import again, then reload HAProxy",
            file.display()
        )),
        same => Adoption::AlreadyThere(same),
    }
}

/// Writes a provider's TSIG secret file (0600, atomically, like the PEMs), unless it already holds that secret.
fn write_secret(provider: &ProviderPlan, dry_run: bool, force: bool) -> SecretWrite {
    let file = &provider.secret_file;
    let existing = match fs::read(file) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return SecretWrite::NotWritten(format!("cannot read {}: {err}", file.display())),
    };
    if let Some(judged) = certbot::judge_secret(existing.as_deref(), provider, force) {
        return judged;
    }
    if dry_run {
        return SecretWrite::WouldWrite;
    }
    let text = certbot::secret_file_text(provider);
    match store::write_atomic(file, text.as_bytes(), 0o600, FileOwner::default()) {
        Ok(()) => SecretWrite::Written,
        // The error names the file and the cause; it never holds the bytes written.
        Err(err) => SecretWrite::NotWritten(format!("cannot write {}: {err}", file.display())),
    }
}

/// Reads certbot's tree into data. Problems with one lineage's files are kept with that lineage (it is skipped and
/// reported); only an unreadable `renewal/` directory stops the import.
pub fn read_tree(config_dir: &Path) -> anyhow::Result<CertbotTree> {
    let renewal = config_dir.join("renewal");
    let mut confs: Vec<PathBuf> = fs::read_dir(&renewal)
        .with_context(|| format!("cannot list {}", renewal.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "conf") && path.is_file())
        .collect();
    confs.sort();
    let canonical_dir = config_dir.canonicalize().unwrap_or_else(|_| config_dir.to_owned());
    let lineages: Vec<LineageFiles> = confs
        .into_iter()
        .map(|conf_path| {
            let name = conf_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let live = config_dir.join("live").join(&name);
            LineageFiles {
                conf_text: fs::read_to_string(&conf_path)
                    .map_err(|err| format!("cannot read {}: {err}", conf_path.display())),
                fullchain: read_live(&live.join("fullchain.pem"), &canonical_dir),
                privkey: read_live(&live.join("privkey.pem"), &canonical_dir),
                name,
                conf_path,
            }
        })
        .collect();
    Ok(CertbotTree {
        config_dir: config_dir.to_owned(),
        lineages,
        hook_scripts: hook_scripts(config_dir),
        accounts: accounts(config_dir),
    })
}

/// Each credentials INI the renewal confs name, read once however many lineages share it.
pub fn read_credentials_files(tree: &CertbotTree) -> BTreeMap<PathBuf, Result<CredentialsFile, String>> {
    let mut credentials = BTreeMap::new();
    for lineage in &tree.lineages {
        let Ok(text) = &lineage.conf_text else { continue };
        if let Some(ini) = certbot::credentials_path(text, &lineage.conf_path) {
            credentials.entry(ini.clone()).or_insert_with(|| read_credentials(&ini));
        }
    }
    credentials
}

/// A credentials INI and its mode. Its text is a secret: errors name the file, never the content.
fn read_credentials(path: &Path) -> Result<CredentialsFile, String> {
    let metadata = fs::metadata(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let text = fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Ok(CredentialsFile {
        mode: metadata.permissions().mode() & 0o7777,
        text,
    })
}

/// A `live/` file through its symlink into `archive/`, naming the archive file it led to.
fn read_live(path: &Path, canonical_dir: &Path) -> Result<ReadFile, String> {
    let bytes = fs::read(path).map_err(|err| match fs::read_link(path) {
        Ok(target) if err.kind() == io::ErrorKind::NotFound => format!(
            "{} points to {}, which does not exist",
            path.display(),
            target.display()
        ),
        _ => format!("cannot read {}: {err}", path.display()),
    })?;
    let resolved = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let source = resolved
        .strip_prefix(canonical_dir)
        .map(Path::to_owned)
        .unwrap_or(resolved);
    Ok(ReadFile { bytes, source })
}

/// `renewal-hooks/{pre,deploy,post}/*`: certbot runs the executable ones around every renewal, for every lineage.
fn hook_scripts(config_dir: &Path) -> Vec<HookScript> {
    let mut scripts = Vec::new();
    for phase in ["pre", "deploy", "post"] {
        let dir = config_dir.join("renewal-hooks").join(phase);
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        let mut found: Vec<HookScript> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let meta = fs::metadata(entry.path()).ok().filter(|m| m.is_file())?;
                Some(HookScript {
                    phase: phase.to_owned(),
                    path: Path::new("renewal-hooks").join(phase).join(entry.file_name()),
                    executable: meta.permissions().mode() & 0o111 != 0,
                })
            })
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        scripts.extend(found);
    }
    scripts
}

/// Every `accounts/<host>/<path>/<id>/` that holds a `private_key.json`. Only the key's kind is kept from that file.
fn accounts(config_dir: &Path) -> Vec<Account> {
    let root = config_dir.join("accounts");
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if !path.join("private_key.json").is_file() {
                // certbot nests accounts under the directory URL's host and path: a few levels at most.
                if path.strip_prefix(&root).map_or(0, |p| p.components().count()) < 8 {
                    pending.push(path);
                }
                continue;
            }
            let server_path = dir.strip_prefix(&root).unwrap_or(&dir);
            let server = format!("https://{}", server_path.display());
            found.push(Account {
                id: entry.file_name().to_string_lossy().into_owned(),
                server,
                key_kind: key_kind(&path.join("private_key.json")),
                contact: contacts(&path.join("regr.json")),
            });
        }
    }
    found.sort_by(|a, b| (&a.server, &a.id).cmp(&(&b.server, &b.id)));
    found
}

/// The JWK's `kty`. The parsed key is dropped at once, and serde_json's errors carry positions, never content.
fn key_kind(path: &Path) -> Result<String, String> {
    let bytes = fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let jwk: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|err| format!("{} is not JSON: {err}", path.display()))?;
    jwk.get("kty")
        .and_then(|k| k.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} has no kty", path.display()))
}

/// The account's e-mail addresses, as certbot recorded them in `regr.json` (`body.contact`), if it did.
fn contacts(path: &Path) -> Vec<String> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let Ok(regr) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    regr.pointer("/body/contact")
        .and_then(|c| c.as_array())
        .map(|list| list.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
