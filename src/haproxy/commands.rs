//! The operator's check and reload commands, run through `sh -c` with a timeout.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Long enough for `haproxy -c` on a config with thousands of certificates, short enough that a hung `systemctl` is noticed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The tail of a failing command's output that goes into the error message.
const OUTPUT_TAIL: usize = 2000;

/// Runs an operator's command line with `sh -c`, so it may use pipes and quotes as it would in a shell. Returns a
/// description of what went wrong: exit status and the tail of its output.
pub async fn run(command: &str) -> Result<(), String> {
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("could not be started: {err}"))?;
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("could not be waited for: {err}")),
        Err(_) => {
            return Err(format!(
                "did not finish within {}s and was killed",
                COMMAND_TIMEOUT.as_secs()
            ));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let text = text.trim();
    let tail = match text.char_indices().rev().nth(OUTPUT_TAIL) {
        Some((cut, _)) => format!("...{}", &text[cut..]),
        None => text.to_owned(),
    };
    let status = match output.status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(if tail.is_empty() {
        status
    } else {
        format!("{status}: {tail}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_status_and_output_of_a_failing_command() {
        assert_eq!(run("true").await, Ok(()));
        let err = run("echo '[ALERT] bad cert' >&2; exit 3").await.unwrap_err();
        assert_eq!(err, "exited with status 3: [ALERT] bad cert");
        assert_eq!(run("exit 1").await.unwrap_err(), "exited with status 1");
    }
}
