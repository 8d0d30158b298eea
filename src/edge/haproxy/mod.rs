//! HAProxy. The only module that talks to it: the Runtime API (`runtime`, hot updates without closing a connection),
//! and the operator's check and reload commands (run by `crate::edge::shell`), which are the fallback.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod inventory;
mod names;
pub(crate) mod reply;
pub mod runtime;
pub mod service;
mod snippet;
pub mod version;

pub use snippet::challenge_snippet;

use inventory::Inventory;
use names::Loaded;
use runtime::{Endpoint, RuntimeApi, RuntimeError};

use crate::core::config::HaproxyConfig;
use crate::core::pem::{Bundle, sha1_hex};
use crate::core::verify::Verified;
use crate::edge::shell::run_shell;

/// Long enough for `haproxy -c` on a config with thousands of certificates, short enough that a hung `systemctl` is noticed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Haproxy {
    check_command: String,
    reload_command: String,
    /// `[haproxy] reload_timeout`.
    reload_timeout: Duration,
    /// For hot updates and `show ssl cert`: the admin socket, or the master socket routing to the worker.
    api: Option<RuntimeApi>,
    /// For `reload` and `show proc`.
    master: Option<RuntimeApi>,
    crt_list: String,
}

/// A PEM that is already on disk at `path` and must now be served. Only whole, matching PEMs become one: a certificate
/// that passed `verify_issued`, or bytes checked here.
pub struct Update {
    path: PathBuf,
    pem: String,
    /// SHA-1s of the leaves HAProxy may be serving from this file now: the new one (in case it already is), and what the
    /// file held before. HAProxy 3.0 names a crt-store alias without its file, and this is how the alias is known.
    held: Vec<String>,
}

impl Update {
    /// A certificate hapcert just issued and verified: its key matches its leaf by construction.
    pub fn verified(path: PathBuf, certificate: &Verified) -> Update {
        Update {
            path,
            pem: certificate.pem().to_owned(),
            held: vec![certificate.sha1().to_owned()],
        }
    }

    /// The leaf (by its SHA-1) that HAProxy served from this file before: see `held`.
    pub fn replacing(mut self, sha1: &str) -> Update {
        self.held.push(sha1.to_owned());
        self
    }

    /// Any other PEM (a previous file put back): parsed and checked here, so nothing broken is ever sent.
    pub fn checked(path: PathBuf, pem: String) -> Result<Update, HaproxyError> {
        let invalid = |reason: String| HaproxyError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let facts = Bundle::parse(pem.as_bytes())
            .and_then(|b| b.facts())
            .map_err(|e| invalid(format!("the PEM {e}")))?;
        if !facts.key_matches {
            return Err(invalid("the private key does not belong to the certificate".into()));
        }
        let leaf = Bundle::parse(pem.as_bytes()).map(|b| sha1_hex(&b.certs[0]));
        Ok(Update {
            path,
            pem,
            held: leaf.into_iter().collect(),
        })
    }
}

/// How the new files reached the running HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Swapped in memory through the Runtime API: no connection closed, same worker.
    HotUpdated,
    /// A checked reload: a new worker reads the files from disk.
    Reloaded,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Applied::HotUpdated => "hot update",
            Applied::Reloaded => "reload",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("refusing to send {path} to HAProxy: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "the Runtime API has an open transaction for {open}; someone else is changing certificates. Finish it, or abort it with `abort ssl cert {open}`, then run hapcert again"
    )]
    OtherTransaction { open: String },
    #[error(
        "HAProxy has not loaded {path}, and no crt-list it has holds a file of that directory ({crt_list} is not one); point the certificate's `file` at the path haproxy.cfg uses (HAProxy has: {loaded})"
    )]
    NotLoaded {
        path: String,
        crt_list: String,
        loaded: String,
    },
    #[error(
        "{path} is new to HAProxy, and more than one crt-list holds files of its directory ({}); set `[haproxy] crt_list` to the one it belongs in", .lists.join(", ")
    )]
    WhichCrtList { path: String, lists: Vec<String> },
    /// HAProxy 3.0 has crt-store aliases that do not say which file they hold: only a reload can be sure to serve it.
    #[error(
        "HAProxy does not serve {path} under its own name, and its crt-store aliases ({}) do not say which file they hold (HAProxy 3.0)", .aliases.join(", ")
    )]
    UnsureAlias { path: String, aliases: Vec<String> },
    #[error("the HAProxy config check failed: `{command}` {outcome}")]
    CheckFailed { command: String, outcome: String },
    #[error("the HAProxy reload failed: {0}")]
    ReloadFailed(String),
    #[error("cannot read what HAProxy has loaded: {0}")]
    Inventory(RuntimeError),
}

impl Haproxy {
    pub fn new(config: &HaproxyConfig) -> Haproxy {
        let endpoint = |text: &str| Endpoint::parse(text).expect("checked when the config was parsed");
        let master = config
            .master_socket
            .as_ref()
            .map(|s| RuntimeApi::master(endpoint(&s.value)));
        let api = match &config.runtime_api {
            Some(admin) => Some(RuntimeApi::admin(endpoint(&admin.value))),
            None => master.clone(),
        };
        Haproxy {
            check_command: config.check_command.clone(),
            reload_command: config.reload_command.clone(),
            reload_timeout: config.reload_timeout,
            api,
            master,
            crt_list: config.crt_list.clone(),
        }
    }

    /// Makes HAProxy serve `updates`, whose files are already written (each one whole and matching: see [`Update`]). With a Runtime API: a hot update per file (`set` + `commit`, or `new` + `add ssl crt-list`
    /// for a file HAProxy has never loaded). Without one, or when it is unreachable or refuses: the config check, then one
    /// reload for the batch. On error the caller puts the previous files back.
    pub async fn apply(&self, updates: &[Update]) -> Result<Applied, HaproxyError> {
        if let Some(api) = &self.api {
            match self.hot_update(api, updates).await {
                Ok(()) => return Ok(Applied::HotUpdated),
                Err(
                    err @ (HaproxyError::OtherTransaction { .. }
                    | HaproxyError::NotLoaded { .. }
                    | HaproxyError::WhichCrtList { .. }),
                ) => return Err(err),
                Err(err) => tracing::warn!(
                    "the Runtime API at {} failed: {err}; falling back to a checked reload",
                    api.endpoint()
                ),
            }
        }
        self.checked_reload().await?;
        Ok(Applied::Reloaded)
    }

    /// A transaction left open on a file hapcert manages can only be one of its own runs that died between `set` and
    /// `commit` (nobody else writes those files): it would make every later hot update refuse to start, so it is aborted
    /// and logged. HAProxy keeps serving what was committed before. A transaction on any other file is left alone, and
    /// [`Self::apply`] refuses to start beside it, as before. Nothing is done without a Runtime API, or when it cannot be
    /// asked (the hot update then fails over to the reload on its own).
    pub async fn abort_interrupted_transaction(&self, managed: &[&Path]) {
        let Some(api) = &self.api else { return };
        let open = match api.loaded_certs().await {
            Ok(list) => list.transaction,
            Err(err) => {
                tracing::debug!("cannot look for an interrupted transaction: {err}");
                return;
            }
        };
        let Some(open) = open else { return };
        if !managed.iter().any(|path| path.as_os_str() == open.as_str()) {
            return;
        }
        match api.abort_transaction(&open).await {
            Ok(()) => tracing::warn!(
                path = %open,
                endpoint = %api.endpoint(),
                "aborted an open transaction on a file hapcert manages: an earlier hapcert was stopped between `set ssl \
                 cert` and `commit ssl cert`; HAProxy still serves what it had committed before"
            ),
            Err(err) => tracing::warn!(path = %open, "cannot abort the interrupted transaction: {err}"),
        }
    }

    /// Each file under every name HAProxy knows it by (see `names`), read once for the batch; a file it has never
    /// loaded is added to the crt-list its directory belongs to.
    async fn hot_update(&self, api: &RuntimeApi, updates: &[Update]) -> Result<(), HaproxyError> {
        let failed = |err: RuntimeError| HaproxyError::ReloadFailed(err.to_string());
        let loaded = api.loaded_certs().await.map_err(failed)?;
        let aliases = api.aliases(&loaded).await.map_err(failed)?;
        let mut lists = None;
        for update in updates {
            let path = update.path.to_string_lossy();
            let names = match names::loaded_as(&update.path, &loaded.files, &aliases, &update.held) {
                Loaded::As(names) => names,
                Loaded::Unsure { aliases } => {
                    return Err(HaproxyError::UnsureAlias {
                        path: path.into_owned(),
                        aliases,
                    });
                }
                Loaded::Not => Vec::new(),
            };
            for name in &names {
                // A store that exists but serves nowhere was left by an add that a crash cut short (after `new ssl
                // cert`, or after its commit and before `add ssl crt-list`): replacing it would commit into a store no
                // bind uses. The add is finished instead, reusing it.
                let unused = *name == path
                    && matches!(api.cert_info(name).await, Ok(info) if info.status != runtime::CertStatus::Used);
                let list = match unused {
                    true => self.crt_list_for(api, &mut lists, update).await?,
                    false => None,
                };
                let result = match &list {
                    Some(list) => api.add_cert(name, &update.pem, list).await,
                    None => api.replace_cert(name, &update.pem).await,
                };
                self.committed(api, name, result)?;
            }
            if names.is_empty() {
                let Some(list) = self.crt_list_for(api, &mut lists, update).await? else {
                    return Err(HaproxyError::NotLoaded {
                        path: path.into_owned(),
                        crt_list: self.crt_list.clone(),
                        loaded: loaded.files.join(", "),
                    });
                };
                let result = api.add_cert(&path, &update.pem, &list).await;
                self.committed(api, &path, result)?;
                if !names::survives_reload(&list, &update.path) {
                    tracing::warn!(
                        file = %path,
                        crt_list = %list,
                        "added to HAProxy's crt-list {list}, which is not a directory: HAProxy serves it now, but the \
                         next reload drops it unless haproxy.cfg names the file (e.g. `ssl-f-use crt {path}` in the \
                         frontend)"
                    );
                }
            }
        }
        Ok(())
    }

    /// The crt-list a new file goes into (`names::crt_list_for`). HAProxy's crt-lists are read once per batch, and their
    /// files only when the configured one is not among them.
    async fn crt_list_for(
        &self,
        api: &RuntimeApi,
        lists: &mut Option<Vec<(String, Vec<String>)>>,
        update: &Update,
    ) -> Result<Option<String>, HaproxyError> {
        let failed = |err: RuntimeError| HaproxyError::ReloadFailed(err.to_string());
        if lists.is_none() {
            let names = api.crt_lists().await.map_err(failed)?;
            let mut read = Vec::new();
            let configured = self.crt_list.trim_end_matches('/');
            for name in names {
                let files = match name == configured {
                    true => Vec::new(),
                    false => api.crt_list_files(&name).await.map_err(failed)?,
                };
                read.push((name, files));
            }
            *lists = Some(read);
        }
        let lists = lists.as_deref().unwrap_or_default();
        names::crt_list_for(&update.path, &self.crt_list, lists).map_err(|lists| HaproxyError::WhichCrtList {
            path: update.path.display().to_string(),
            lists,
        })
    }

    fn committed(&self, api: &RuntimeApi, name: &str, result: Result<(), RuntimeError>) -> Result<(), HaproxyError> {
        match result {
            Ok(()) => {
                tracing::info!(file = %name, endpoint = %api.endpoint(), "hot update committed");
                Ok(())
            }
            Err(RuntimeError::OtherTransaction { open, .. }) => Err(HaproxyError::OtherTransaction { open }),
            Err(RuntimeError::NotLoaded { path, loaded }) => Err(HaproxyError::NotLoaded {
                path,
                crt_list: self.crt_list.clone(),
                loaded: loaded.join(", "),
            }),
            Err(err) => Err(HaproxyError::ReloadFailed(err.to_string())),
        }
    }

    /// The config check, then a reload: through the master socket, confirmed by `show proc`, when one is configured;
    /// otherwise the reload command.
    async fn checked_reload(&self) -> Result<(), HaproxyError> {
        run_shell(&self.check_command, &[], COMMAND_TIMEOUT)
            .await
            .map_err(|outcome| HaproxyError::CheckFailed {
                command: self.check_command.clone(),
                outcome,
            })?;
        tracing::info!("HAProxy config check passed; reloading");
        match &self.master {
            Some(master) => reload_through_master(master, self.reload_timeout).await?,
            None => run_shell(&self.reload_command, &[], self.reload_timeout)
                .await
                .map_err(|outcome| HaproxyError::ReloadFailed(format!("`{}` {outcome}", self.reload_command)))?,
        }
        tracing::info!("HAProxy reloaded");
        Ok(())
    }

    /// Every certificate, CA file and CRL HAProxy has loaded that is not among `managed` (hapcert's certificate files),
    /// through the socket that hot updates use (the admin socket, else the master's). `None` when neither
    /// `runtime_api` nor `master_socket` is configured. See [`inventory::read`] for what is left out.
    pub async fn inventory(&self, managed: &[&Path]) -> Option<Result<Inventory, HaproxyError>> {
        let api = self.api.as_ref()?;
        Some(inventory::read(api, managed).await.map_err(HaproxyError::Inventory))
    }

    /// Takes `path` out of HAProxy's memory (`del ssl crt-list`, then `del ssl cert`): for a certificate HAProxy had
    /// never loaded before a deploy that is being rolled back, whose file is already gone. Without it HAProxy would
    /// serve the removed certificate until its next reload. `None` when there is no Runtime API to ask.
    pub async fn forget(&self, path: &Path) -> Option<Result<(), String>> {
        let api = self.api.as_ref()?;
        let result = api.remove_cert(&path.to_string_lossy()).await;
        if result.is_ok() {
            tracing::info!(file = %path.display(), endpoint = %api.endpoint(), "removed from HAProxy's memory");
        }
        Some(result.map_err(|err| err.to_string()))
    }

    /// Whether HAProxy has `path` in use with the leaf whose SHA-1 is `sha1`, under its own name or a crt-store alias.
    /// `None` when there is no Runtime API to ask, or it cannot be reached (then only the handshakes can tell).
    pub async fn confirm_loaded(&self, path: &Path, sha1: &str) -> Option<Result<(), String>> {
        let api = self.api.as_ref()?;
        match loaded_with(api, path, sha1).await {
            Ok(verdict) => Some(verdict),
            Err(err @ (RuntimeError::Connect { .. } | RuntimeError::Timeout { .. })) => {
                tracing::warn!("cannot ask the Runtime API what is loaded: {err}");
                None
            }
            Err(err) => Some(Err(err.to_string())),
        }
    }
}

/// Whether HAProxy serves the leaf whose SHA-1 is `sha1` from `path`: under the path itself, or else under each
/// crt-store alias that holds it.
async fn loaded_with(api: &RuntimeApi, path: &Path, sha1: &str) -> Result<Result<(), String>, RuntimeError> {
    let shown = path.to_string_lossy();
    match api.cert_info(&shown).await {
        Ok(info) => return Ok(judge_loaded(&shown, &info, sha1)),
        Err(RuntimeError::NotLoaded { .. }) => {}
        Err(err) => return Err(err),
    }
    let loaded = api.loaded_certs().await?;
    let aliases = api.aliases(&loaded).await?;
    Ok(
        match names::loaded_as(path, &loaded.files, &aliases, &[sha1.to_owned()]) {
            Loaded::As(names) => aliases
                .iter()
                .filter(|alias| names.contains(&alias.filename))
                .try_for_each(|alias| judge_loaded(&alias.filename, alias, sha1)),
            Loaded::Unsure { .. } | Loaded::Not => {
                Err(format!("HAProxy serves {shown} under no name with SHA-1 {sha1}"))
            }
        },
    )
}

/// Whether `show ssl cert <name>` shows the leaf whose SHA-1 is `sha1`, in use.
fn judge_loaded(name: &str, info: &runtime::CertInfo, sha1: &str) -> Result<(), String> {
    if info.status != runtime::CertStatus::Used {
        return Err(format!("`show ssl cert {name}` says {:?}, not Used", info.status));
    }
    if info.sha1_fingerprint.as_deref() == Some(sha1) {
        return Ok(());
    }
    Err(format!(
        "`show ssl cert {name}` has SHA-1 {}, the new leaf is {sha1}",
        info.sha1_fingerprint.as_deref().unwrap_or("none")
    ))
}

/// `reload` on the master, then `show proc` until it shows the reload, all within `timeout` ([haproxy] reload_timeout):
/// 3.0 and later answer `reload` only once the new worker has loaded its configuration.
async fn reload_through_master(master: &RuntimeApi, timeout: Duration) -> Result<(), HaproxyError> {
    let failed = |e: RuntimeError| HaproxyError::ReloadFailed(e.to_string());
    let before = master.show_proc().await.map_err(failed)?;
    let started = tokio::time::Instant::now();
    let reloading = master.clone().with_timeouts(runtime::CONNECT_TIMEOUT, timeout);
    reloading.reload().await.map_err(|err| match err {
        RuntimeError::Timeout { .. } => HaproxyError::ReloadFailed(format!(
            "{err} ([haproxy] reload_timeout is {}s; raise it for a configuration that takes longer to load)",
            timeout.as_secs()
        )),
        err => failed(err),
    })?;
    let deadline = started + timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Ok(now) = master.show_proc().await
            && now.reloads > before.reloads
        {
            return match now.failed {
                0 => Ok(()),
                n => Err(HaproxyError::ReloadFailed(format!(
                    "`show proc` on {} reports the reload failed ([failed: {n}]); the old worker keeps serving",
                    master.endpoint()
                ))),
            };
        }
        if tokio::time::Instant::now() > deadline {
            return Err(HaproxyError::ReloadFailed(format!(
                "`show proc` on {} did not show the reload within {}s ([haproxy] reload_timeout)",
                master.endpoint(),
                timeout.as_secs()
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_or_mismatched_payload_is_refused_before_anything_is_sent() {
        let garbage = Update::checked(
            "/etc/haproxy/certs/a.pem".into(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        );
        let err = garbage.err().unwrap();
        assert!(
            err.to_string()
                .starts_with("refusing to send /etc/haproxy/certs/a.pem to HAProxy: the PEM"),
            "{err}"
        );

        let ca = crate::testing::TestCa::new();
        let one = ca.issue(&["a.example.com"], crate::core::config::KeyType::EcdsaP256, 90);
        let other = ca.issue(&["a.example.com"], crate::core::config::KeyType::EcdsaP256, 90);
        let (leaf, chain, _) = crate::testing::leaf_pem_parts(&one);
        let (_, _, key) = crate::testing::leaf_pem_parts(&other);
        let swapped = Update::checked("/x/a.pem".into(), format!("{leaf}{chain}{key}"));
        assert!(swapped.err().unwrap().to_string().contains("does not belong"));
        assert!(Update::checked("/x/a.pem".into(), one).is_ok());
    }
}
