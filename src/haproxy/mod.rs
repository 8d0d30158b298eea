//! HAProxy. The only module that talks to it: today through the operator's check and reload commands. The Runtime API
//! (hot update over the admin socket) will be a second way in `apply`, tried before the reload.

use std::path::PathBuf;
mod commands;

use commands::run;

use crate::config::HaproxyConfig;

pub struct Haproxy {
    check_command: String,
    reload_command: String,
}

/// How the new files reached the running HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Reloaded,
}

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("the HAProxy config check failed: `{command}` {outcome}")]
    CheckFailed { command: String, outcome: String },
    #[error("the HAProxy reload failed: `{command}` {outcome}")]
    ReloadFailed { command: String, outcome: String },
}

impl Haproxy {
    pub fn new(config: &HaproxyConfig) -> Haproxy {
        Haproxy {
            check_command: config.check_command.clone(),
            reload_command: config.reload_command.clone(),
        }
    }

    /// Makes HAProxy serve the PEMs just written to `files`: the config check, then one reload for the whole batch. On
    /// error nothing more is tried; the caller puts the previous files back.
    pub async fn apply(&self, files: &[PathBuf]) -> Result<Applied, HaproxyError> {
        tracing::debug!(files = files.len(), "handing new certificates to HAProxy");
        run(&self.check_command)
            .await
            .map_err(|outcome| HaproxyError::CheckFailed {
                command: self.check_command.clone(),
                outcome,
            })?;
        run(&self.reload_command)
            .await
            .map_err(|outcome| HaproxyError::ReloadFailed {
                command: self.reload_command.clone(),
                outcome,
            })?;
        tracing::info!(command = %self.reload_command, "HAProxy reloaded");
        Ok(Applied::Reloaded)
    }
}
