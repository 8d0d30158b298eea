//! The daemon's end of the control socket (`crate::control`): the server that takes requests for the daemon's life,
//! and the running of each request in the loop, one at a time, between the daemon's own passes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::{Flow, Signals, systemd};
use crate::control::server::{self, Job};
use crate::control::wire::{Command, Reply};
use crate::core::config::Config;
use crate::edge::http_server::Running;
use crate::error::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::logging::forward::Route;
use crate::renew::RunContext;

/// Requests waiting for the loop beyond this many make their clients wait to be heard.
const QUEUE: usize = 16;

pub(super) struct Control {
    path: PathBuf,
    server: Running,
    jobs: mpsc::Receiver<Job>,
}

impl Control {
    /// Binds the socket (a stale one is replaced, a live one stops the start) and accepts on it.
    pub(super) async fn start(path: &Path) -> anyhow::Result<Control> {
        let listener = server::bind(path).await?;
        let (sender, jobs) = mpsc::channel(QUEUE);
        let server = Running::spawn(|shutdown| server::serve(listener, sender, shutdown));
        tracing::info!(socket = %path.display(), "control socket: renew, revoke and status by hand are run here");
        Ok(Control {
            path: path.to_owned(),
            server,
            jobs,
        })
    }

    /// The next request; never, once the server has stopped.
    pub(super) async fn next(&mut self) -> Job {
        match self.jobs.recv().await {
            Some(job) => job,
            None => std::future::pending().await,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting and removes the socket file, so that the next command runs by itself at once.
    pub(super) async fn stop(self) {
        self.server.stop().await;
        if let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), "cannot remove the control socket: {err}");
        }
    }
}

/// Runs one request as the command line would, with what the daemon lends (`context`), its log lines and stdout sent
/// to the client. A stop signal meanwhile abandons its orders and lets a started deploy finish, as for a pass.
pub(super) async fn run_job(
    job: Job,
    config: &Config,
    config_path: &Path,
    lock_timeout_default: Duration,
    context: RunContext,
    signals: &mut Signals,
) -> Flow {
    let Job { request, replies, uid } = job;
    if !same_file(&request.config, config_path) {
        replies.send(Reply::Error(format!(
            "hapcert: the daemon on this socket runs with {}, not {}; pass --config {0}, or stop the daemon to run \
             with another config",
            config_path.display(),
            request.config.display()
        )));
        replies.send(Reply::Exit(EXIT_USAGE));
        return Flow::Continue;
    }
    let logs = replies.clone();
    let route = Route::open(move |line| logs.send(Reply::Log(line)));
    let span = route.span();
    span.in_scope(|| tracing::info!(uid, "control socket: {} asked", describe(&request.command)));
    let (abandon, abandoned) = watch::channel(false);
    let context = RunContext {
        abandon: Some(abandoned),
        ..context
    };
    let lock_timeout = match request.lock_timeout_ms {
        0 => lock_timeout_default,
        ms => Duration::from_millis(ms),
    };
    let out = replies.clone();
    let work = crate::control::commands::execute(
        config.clone(),
        &request.command,
        request.staging,
        lock_timeout,
        Some(context),
    )
    .instrument(span.clone());
    let work = crate::output::redirect(move |text| out.send(Reply::Out(text)), work);
    tokio::pin!(work);
    let mut flow = Flow::Continue;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            signal = signals.stop(), if flow == Flow::Continue => {
                span.in_scope(|| tracing::info!(
                    "{signal}: stopping; the request's orders are abandoned, a deploy that has started is finished"
                ));
                systemd::notify("STOPPING=1");
                abandon.send_replace(true);
                flow = Flow::Stop;
            }
        }
    };
    let code = match outcome {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(err) => {
            replies.send(Reply::Error(crate::error::describe(&err)));
            crate::error::exit_code(&err)
        }
    };
    span.in_scope(|| {
        tracing::info!(
            uid,
            exit_code = code,
            "control socket: {} done",
            describe(&request.command)
        )
    });
    drop(route);
    replies.send(Reply::Exit(code));
    flow
}

/// The command as the journal names it.
fn describe(command: &Command) -> String {
    match command {
        Command::Renew { names, force, .. } => {
            format!("renew {}{}", names.join(" "), if *force { " --force" } else { "" })
        }
        Command::Revoke { names, .. } => format!("revoke {}", names.join(" ")),
        Command::Status { .. } => "status".into(),
    }
}

/// Whether two paths name one file, through symlinks; as written, when either cannot be resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    resolve(a) == resolve(b)
}
