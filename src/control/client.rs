//! The client side: `renew`, `revoke` and `status` ask a running daemon first. No daemon (no socket file, or a stale
//! one nobody accepts on) is the ordinary case of a host on the timer: the command runs here, as it always did.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::wire::{self, Command, Reply, Request};
use crate::output::out;

/// What asking came to.
pub enum Asked {
    /// No daemon: run the command here.
    NoDaemon,
    /// The daemon ran it; this is its exit code.
    Done(u8),
}

/// Asks the daemon on `socket` to run `command`, relaying its stdout text to stdout and its log lines to stderr.
pub async fn ask(
    socket: &Path,
    config: &Path,
    staging: bool,
    lock_timeout: Duration,
    command: Command,
) -> anyhow::Result<Asked> {
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(err) if no_daemon(&err) => {
            tracing::debug!(socket = %socket.display(), "no daemon answers ({err}); running here");
            return Ok(Asked::NoDaemon);
        }
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => anyhow::bail!(
            "a daemon listens on {} and only root may ask it ({err}); run this command as root",
            socket.display()
        ),
        Err(err) => anyhow::bail!("cannot reach the daemon on {}: {err}", socket.display()),
    };
    tracing::debug!(socket = %socket.display(), "a daemon answers; it runs the command");
    let request = Request {
        config: std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf()),
        staging,
        lock_timeout_ms: u64::try_from(lock_timeout.as_millis()).unwrap_or(u64::MAX),
        command,
    };
    let (read, mut write) = stream.into_split();
    // A daemon that refuses this user says so and closes without reading: its answer is still there to read.
    let sent = write.write_all(wire::encode(&request).as_bytes()).await;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        match wire::decode::<Reply>(&line).map_err(|why| anyhow::anyhow!("the daemon answered oddly: {why}"))? {
            Reply::Log(text) | Reply::Error(text) => eprintln_relayed(&text),
            Reply::Out(text) => out!("{text}"),
            Reply::Exit(code) => return Ok(Asked::Done(code)),
        }
    }
    sent.map_err(|err| anyhow::anyhow!("cannot send the request to the daemon on {}: {err}", socket.display()))?;
    anyhow::bail!(
        "the daemon on {} closed the connection before the command ended; its log says why",
        socket.display()
    )
}

/// The daemon's lines are already formatted: they go to stderr as they are, beside this process's own logs.
fn eprintln_relayed(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Nobody listens: no socket file, or one a stopped daemon left behind.
fn no_daemon(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused)
}
