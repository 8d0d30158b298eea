//! The daemon's side of the control socket: bind it, accept on it until the daemon's shutdown, check who is asking
//! (SO_PEERCRED), read the one request and hand it to the daemon's loop as a [`Job`], then relay the job's replies
//! until its exit code. The loop runs one job at a time between its own passes; this side never runs a command.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::wire::{self, MAX_REQUEST, Reply, Request};
use crate::edge::http_server::Shutdown;
use crate::error::{EXIT_FAILED, EXIT_USAGE};

/// How long a client has to send its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request for the daemon's loop, and where its replies go.
pub struct Job {
    pub request: Request,
    pub replies: Replies,
    /// The uid that asked, for the daemon's log.
    pub uid: u32,
}

/// Where a job's replies go. Sending never fails: a client that went away simply reads nothing more, and the job
/// runs to its end all the same.
#[derive(Clone)]
pub struct Replies(mpsc::UnboundedSender<Reply>);

impl Replies {
    pub fn send(&self, reply: Reply) {
        let _ = self.0.send(reply);
    }
}

/// Who may ask: root, and the user the daemon runs as. That user can already do all the daemon does (its files,
/// its state, its sockets), so asking grants it nothing; an operator who runs the daemon under a dedicated user
/// expects to renew by hand as that user.
pub fn may_ask(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

/// Binds the socket at `path`, mode 0600. A socket file that nobody accepts on (a daemon that was killed) is removed
/// and bound anew; one that answers belongs to another daemon, and this one does not start.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let fix = "([daemon] control)";
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        // Under systemd, RuntimeDirectory= made it; by hand, make it as the unit would, for this user alone.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| anyhow::anyhow!("cannot create {} for the control socket {fix}: {err}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => anyhow::bail!(
            "{} is there and is not a socket; hapcert will not remove it: move it, or set another path {fix}",
            path.display()
        ),
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => anyhow::bail!(
                "another hapcert daemon answers on {}; stop it first, or give this one another socket {fix}",
                path.display()
            ),
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing a stale control socket that nobody accepts on");
                std::fs::remove_file(path)
                    .map_err(|err| anyhow::anyhow!("cannot remove the stale socket {}: {err}", path.display()))?;
            }
            Err(err) => anyhow::bail!("cannot tell whether a daemon answers on {}: {err}", path.display()),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => anyhow::bail!("cannot look at {}: {err}", path.display()),
    }
    let listener =
        UnixListener::bind(path).map_err(|err| anyhow::anyhow!("cannot listen on {} {fix}: {err}", path.display()))?;
    // The directory (0700) already keeps others out; the mode says the same on the socket itself.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|err| anyhow::anyhow!("cannot set the mode of {}: {err}", path.display()))?;
    Ok(listener)
}

/// Accepts until `shutdown`, each connection on a task of its own; jobs go to the daemon's loop through `jobs`.
pub async fn serve(listener: UnixListener, jobs: mpsc::Sender<Job>, shutdown: Shutdown) {
    let own_uid = nix::unistd::geteuid().as_raw();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, jobs.clone(), own_uid));
                }
                Err(err) => {
                    tracing::warn!("control socket: cannot accept: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn connection(stream: UnixStream, jobs: mpsc::Sender<Job>, own_uid: u32) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(err) => {
            tracing::warn!("control socket: cannot tell who connected ({err}); refused");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let mut send = async |reply: Reply| write.write_all(wire::encode(&reply).as_bytes()).await;
    if !may_ask(uid, own_uid) {
        tracing::warn!(uid, "control socket: refused a request from a user other than root");
        let _ = send(Reply::Error(format!(
            "hapcert: the daemon refused: only root may ask it (this is uid {uid})"
        )))
        .await;
        let _ = send(Reply::Exit(EXIT_FAILED)).await;
        return;
    }
    let request = match read_request(read).await {
        Ok(request) => request,
        Err(why) => {
            tracing::warn!(uid, "control socket: {why}");
            let _ = send(Reply::Error(format!("hapcert: the daemon refused the request: {why}"))).await;
            let _ = send(Reply::Exit(EXIT_USAGE)).await;
            return;
        }
    };
    let (replies, mut receiving) = mpsc::unbounded_channel();
    let job = Job {
        request,
        replies: Replies(replies),
        uid,
    };
    if jobs.send(job).await.is_err() {
        let _ = send(Reply::Error("hapcert: the daemon is stopping; try again".into())).await;
        let _ = send(Reply::Exit(EXIT_FAILED)).await;
        return;
    }
    while let Some(reply) = receiving.recv().await {
        let last = matches!(reply, Reply::Exit(_));
        if let Err(err) = send(reply).await {
            tracing::info!(
                uid,
                "control socket: the client went away ({err}); its request runs to its end"
            );
            return;
        }
        if last {
            return;
        }
    }
}

/// The one request line, within [`MAX_REQUEST`] bytes and [`REQUEST_TIMEOUT`].
async fn read_request(read: impl tokio::io::AsyncRead + Unpin) -> Result<Request, String> {
    let mut line = String::new();
    let mut limited = BufReader::new(read.take(MAX_REQUEST as u64));
    match tokio::time::timeout(REQUEST_TIMEOUT, limited.read_line(&mut line)).await {
        Err(_) => return Err("no request came in time".into()),
        Ok(Err(err)) => return Err(format!("cannot read the request: {err}")),
        Ok(Ok(_)) if !line.ends_with('\n') => return Err("the request is not one whole line".into()),
        Ok(Ok(_)) => {}
    }
    wire::decode(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_daemons_own_user_may_ask_and_nobody_else() {
        assert!(may_ask(0, 0));
        assert!(may_ask(0, 998));
        assert!(may_ask(998, 998));
        assert!(!may_ask(65534, 0));
        assert!(!may_ask(1000, 998));
    }

    #[tokio::test]
    async fn a_request_must_be_one_whole_line() {
        let line = wire::encode(&Request {
            config: "/c".into(),
            staging: false,
            lock_timeout_ms: 1,
            command: wire::Command::Status {
                json: false,
                long: false,
                colour: false,
            },
        });
        assert!(read_request(line.as_bytes()).await.is_ok());
        let cut = &line[..line.len() - 1];
        assert_eq!(
            read_request(cut.as_bytes()).await.unwrap_err(),
            "the request is not one whole line"
        );
    }
}
