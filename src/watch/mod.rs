//! `hapcert watch suggest`: a `[[watch]]` entry for every backend server HAProxy reaches over TLS, for the operator
//! to review and paste. This module reads the files; `haproxy_cfg.rs` parses them and `suggest.rs` decides and
//! writes the entries, both pure.

pub mod haproxy_cfg;
pub mod suggest;

use std::path::{Path, PathBuf};

use crate::core::config::Config;
use crate::edge::haproxy::service;
use crate::error::UsageError;
use crate::output::out;

/// Prints the suggestions for the files named by `--file` (`files`), else by the `-f` options of `[haproxy]
/// check_command`, else by the haproxy.service unit. `config` is `None` only when `--file` was given and the config
/// could not be read; with it, endpoints it already watches are not proposed again.
pub fn suggest_command(config: Option<&Config>, files: &[PathBuf]) -> anyhow::Result<()> {
    let (named, source) = match (files.is_empty(), config) {
        (false, _) => (
            files.iter().map(|f| f.display().to_string()).collect(),
            "--file".to_owned(),
        ),
        (true, Some(config)) => named_by_config(config)?,
        (true, None) => {
            return Err(UsageError(
                "no config to take [haproxy] check_command from; name HAProxy's configuration with --file".into(),
            )
            .into());
        }
    };
    let mut read = Vec::new();
    for name in &named {
        load(name, &source, &mut read)?;
    }
    let parsed = haproxy_cfg::parse(&read, &|name| std::env::var(name).ok());
    let existing: Vec<suggest::Existing> = config
        .map(|c| {
            c.watch
                .iter()
                .map(|w| suggest::Existing {
                    name: w.name.clone(),
                    endpoint: w.endpoint.clone(),
                    sni: w.sni.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let items = suggest::suggest(&parsed, &existing);
    let files: Vec<String> = read.into_iter().map(|(name, _)| name).collect();
    let watches = items
        .iter()
        .filter(|i| matches!(i, suggest::Item::Watch { .. }))
        .count();
    if items.is_empty() {
        tracing::info!("no backend server uses ssl in {}; nothing to watch", files.join(", "));
        return Ok(());
    }
    if watches == 0 {
        tracing::info!("no backend server over TLS can be watched as written; see the comments for why");
    }
    out!("{}", suggest::render(&files, &source, &items));
    Ok(())
}

/// The files `check_command` names with `-f`, else those the haproxy.service unit loads, and which it was.
pub(crate) fn named_by_config(config: &Config) -> anyhow::Result<(Vec<String>, String)> {
    let command = &config.haproxy.check_command;
    let named = service::check_command_files(command);
    if !named.is_empty() {
        return Ok((named, "the -f files of [haproxy] check_command".to_owned()));
    }
    if let Some(loaded) = service::loaded_by_service() {
        return Ok((loaded, "the -f files of the haproxy.service unit".to_owned()));
    }
    Err(UsageError(format!(
        "[haproxy] check_command ({command}) names no -f file, and no haproxy.service unit names one; name HAProxy's \
         configuration with --file, like hapcert watch suggest --file /etc/haproxy/haproxy.cfg"
    ))
    .into())
}

/// Reads `name` into `read`: a file, or a directory's `*.cfg` files in the order HAProxy loads them (by name, dot
/// files left out).
pub(crate) fn load(name: &str, source: &str, read: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    let path = Path::new(name);
    let unreadable = |err: std::io::Error| {
        UsageError(format!(
            "cannot read {name} (named by {source}): {err}; run as a user who can read HAProxy's configuration \
             (root), or name the files with --file"
        ))
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                let file_name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                file_name.ends_with(".cfg") && !file_name.starts_with('.') && p.is_file()
            })
            .collect();
        entries.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
        for entry in entries {
            load(&entry.display().to_string(), source, read)?;
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    read.push((name.to_owned(), text));
    Ok(())
}
