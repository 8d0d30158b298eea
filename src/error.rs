//! How a command ends: the exit codes an operator scripts against, and which errors are the operator's to fix.
//!
//! - 0: success; nothing due counts as success.
//! - 1: something failed (a certificate, a hook, a lock held too long): the served certificates are untouched.
//! - 2: usage or configuration: the message names the file, line, column and key, and the fix.
//!
//! `hapcert check` follows the monitoring-plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN): it
//! returns its code as a success, and says UNKNOWN itself when it cannot run.

use std::fmt;

use crate::core::config::ConfigErrors;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// An error that is the user's to fix in how hapcert was called or configured: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code of a command that returned `err`.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ConfigErrors>().is_some() || err.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// The message for stderr, printed once: the whole chain of causes on one line, or a config's problems one per line.
pub fn describe(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ConfigErrors>() {
        Some(problems) => format!("hapcert: the config has problems:\n{problems}"),
        None => format!("hapcert: {err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_config_errors_exit_2_and_the_rest_1_with_the_whole_chain() {
        let usage = anyhow::Error::from(UsageError("pass --yes".into()));
        assert_eq!(
            (exit_code(&usage), describe(&usage).as_str()),
            (2, "hapcert: pass --yes")
        );
        let failed = anyhow::anyhow!("the CA said no").context("the run stopped");
        assert_eq!(
            (exit_code(&failed), describe(&failed).as_str()),
            (1, "hapcert: the run stopped: the CA said no")
        );
    }
}
