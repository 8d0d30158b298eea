//! systemd's view of hapcert's own units, through `systemctl is-enabled`: for `doctor`, which says whether renewals
//! are scheduled. A host without systemctl is not an error; there is just nothing to ask.

use std::time::Duration;

use tokio::process::Command;

const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(10);

/// What `systemctl is-enabled` says of each of `units` (`enabled`, `disabled`, `not-found`, ...), in order; `None`
/// when this host has no systemctl. One call per unit: older systemd prints nothing on stdout for a unit it does not
/// know, which would shift the answers of the units after it.
pub async fn is_enabled(units: &[&str]) -> Option<Vec<(String, String)>> {
    let mut states = Vec::new();
    for unit in units {
        let run = Command::new("systemctl")
            .args(["is-enabled", unit])
            .kill_on_drop(true)
            .output();
        let state = match tokio::time::timeout(SYSTEMCTL_TIMEOUT, run).await {
            Ok(Ok(output)) => {
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                match (stdout.lines().next(), stderr.lines().next()) {
                    (Some(word), _) if !word.trim().is_empty() => word.trim().to_owned(),
                    (_, Some(why)) if why.contains("No such file") || why.contains("not found") => "not-found".into(),
                    (_, Some(why)) => format!("unknown ({})", why.trim()),
                    _ => "unknown".into(),
                }
            }
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Ok(Err(err)) => format!("unknown (systemctl: {err})"),
            Err(_) => format!(
                "unknown (systemctl did not answer within {}s)",
                SYSTEMCTL_TIMEOUT.as_secs()
            ),
        };
        states.push(((*unit).to_owned(), state));
    }
    Some(states)
}
