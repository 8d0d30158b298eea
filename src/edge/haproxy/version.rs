//! Which HAProxy this host runs: `haproxy -v` of the binary `[haproxy] check_command` runs (the one a reload loads),
//! or, when that command names no haproxy binary, `show info` on the Runtime API. For `doctor`.

use std::time::Duration;

use tokio::process::Command;

use super::runtime::RuntimeApi;

const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A version and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub version: String,
    /// `` `/usr/sbin/haproxy -v` `` or `show info on <socket>`.
    pub from: String,
}

/// The haproxy binary a check command runs: its first word whose file name is `haproxy` (so `sudo haproxy -c ...` and
/// `/usr/sbin/haproxy -c ...` both work). None when it runs a script, whose binary cannot be known.
pub fn binary_of(check_command: &str) -> Option<&str> {
    check_command
        .split_whitespace()
        .find(|word| word.rsplit('/').next() == Some("haproxy"))
}

/// The version in the first line of `haproxy -v`: `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/`.
pub fn parse_dash_v(output: &str) -> Option<String> {
    let line = output.lines().next()?;
    let rest = line
        .strip_prefix("HAProxy version ")
        .or_else(|| line.strip_prefix("HA-Proxy version "))?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// The `Version:` line of `show info`.
pub fn parse_show_info(reply: &str) -> Option<String> {
    reply
        .lines()
        .find_map(|line| line.strip_prefix("Version:"))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Runs `binary -v`.
pub async fn from_binary(binary: &str) -> Result<Found, String> {
    let from = format!("`{binary} -v`");
    let run = Command::new(binary).arg("-v").kill_on_drop(true).output();
    let output = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("{from} could not be run: {err}")),
        Err(_) => return Err(format!("{from} did not answer within {}s", VERSION_TIMEOUT.as_secs())),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    parse_dash_v(&text)
        .map(|version| Found {
            version,
            from: from.clone(),
        })
        .ok_or_else(|| {
            format!(
                "{from} printed no HAProxy version: {}",
                text.lines().next().unwrap_or("nothing")
            )
        })
}

/// Asks `show info` through `api`.
pub async fn from_runtime_api(api: &RuntimeApi) -> Result<Found, String> {
    let from = format!("`show info` on {}", api.endpoint());
    let reply = api.command("show info").await.map_err(|err| err.to_string())?;
    parse_show_info(&reply)
        .map(|version| Found {
            version,
            from: from.clone(),
        })
        .ok_or_else(|| format!("{from} gave no Version line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_the_check_commands_haproxy_word() {
        assert_eq!(
            binary_of("/usr/sbin/haproxy -c -q -f /etc/haproxy/haproxy.cfg"),
            Some("/usr/sbin/haproxy")
        );
        assert_eq!(binary_of("sudo haproxy -c -f /etc/haproxy"), Some("haproxy"));
        assert_eq!(binary_of("/usr/local/bin/check-haproxy.sh"), None);
    }

    #[test]
    fn versions_are_read_from_dash_v_and_show_info() {
        assert_eq!(
            parse_dash_v(
                "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\nStatus: long-term supported branch\n"
            )
            .as_deref(),
            Some("2.6.12-1+deb12u4")
        );
        assert_eq!(parse_dash_v("sh: haproxy: not found"), None);
        assert_eq!(
            parse_show_info("Name: HAProxy\nVersion: 3.2.4-1\nRelease_date: 2025/08/11\n\n").as_deref(),
            Some("3.2.4-1")
        );
        assert_eq!(parse_show_info("Unknown command\n\n"), None);
    }
}
