//! Operators' command lines: HAProxy's check and reload commands, the certbot-style hooks, and the `exec` notifier. One
//! runner for all of them: `sh -c`, an environment, a timeout that kills the whole process group.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The tail of a failing command's output that goes into the error message.
const OUTPUT_TAIL: usize = 2000;

/// Runs an operator's command line with `sh -c`, so it may use pipes and quotes as it would in a shell, with `env`
/// added to hapcert's environment. On failure, returns what went wrong: exit status and the tail of its output. A
/// command still running after `timeout` is killed with everything it started.
pub async fn run_shell(command: &str, env: &[(String, String)], timeout: Duration) -> Result<(), String> {
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that a timeout kills what the shell started too, not just the shell.
    shell.as_std_mut().process_group(0);
    let child = shell.spawn().map_err(|err| format!("could not be started: {err}"))?;
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(-(pid as i32)));
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("could not be waited for: {err}")),
        Err(_) => {
            if let Some(group) = group {
                nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL).ok();
            }
            return Err(format!(
                "did not finish within {} and was killed",
                humantime::format_duration(timeout)
            ));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let status = match output.status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(with_tail(status, &text, OUTPUT_TAIL))
}

/// `what`, then the end of `output` (its last `limit` characters or so, trimmed) if it said anything: what a failing
/// command or server said, for an error message of one line's worth.
pub fn with_tail(what: String, output: &str, limit: usize) -> String {
    let output = output.trim();
    match output.char_indices().rev().nth(limit) {
        Some((cut, _)) => format!("{what}: ...{}", &output[cut..]),
        None if output.is_empty() => what,
        None => format!("{what}: {output}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn reports_status_and_output_of_a_failing_command() {
        assert_eq!(run_shell("true", &[], SECOND).await, Ok(()));
        let err = run_shell("echo '[ALERT] bad cert' >&2; exit 3", &[], SECOND)
            .await
            .unwrap_err();
        assert_eq!(err, "exited with status 3: [ALERT] bad cert");
        assert_eq!(
            run_shell("exit 1", &[], SECOND).await.unwrap_err(),
            "exited with status 1"
        );
    }

    #[tokio::test]
    async fn passes_the_environment() {
        let env = [("HAPCERT_NAME".to_owned(), "www".to_owned())];
        assert_eq!(run_shell("test \"$HAPCERT_NAME\" = www", &env, SECOND).await, Ok(()));
    }

    #[tokio::test]
    async fn a_timeout_kills_what_the_shell_started() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let command = format!("(sleep 1; touch {}) & sleep 5", marker.display());
        let err = run_shell(&command, &[], Duration::from_millis(200)).await.unwrap_err();
        assert!(err.contains("did not finish within 200ms"), "{err}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the background child outlived the timeout");
    }
}
