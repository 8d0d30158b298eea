//! The HAProxy Runtime API client. This is the only code that writes to or reads from HAProxy's admin and master
//! sockets; the replies are read in `reply.rs`.
//!
//! Every command uses its own connection: connect, write the command, half-close, read to EOF. Measured on 2.6.12:
//! - The admin socket closes after one command anyway.
//! - The master socket keeps the connection open until the client half-closes or sends `quit`. Half-closing works the
//!   same way on both sockets, payloads included, so it is the one way used here.
//! - A command without its final newline gets no answer at all.
//!
//! Certificate transactions belong to the HAProxy process, not to the connection, so `set` and `commit` can be sent on
//! separate connections.
//!
//! The payload of `set ssl cert` holds the private key. It is only ever written to the socket: logs and errors show the
//! command line and the path, never the payload.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, sleep, timeout};

use super::reply;
pub use super::reply::{
    CaCertInfo, CaFileEntry, CaFileInfo, CaFileList, CertInfo, CertList, CertStatus, CrlFileInfo, CrlFileList, CrlInfo,
    ProcInfo,
};
pub use crate::core::config::Endpoint;

/// How long a reload that HAProxy turns away because another is still loading (3.1+) is asked again: a reload of a
/// configuration with thousands of certificates takes seconds (3-4 s with 5,000 on 3.x, shared/notes/haproxy-versions.md).
const RELOAD_BUSY_WINDOW: Duration = Duration::from_secs(30);
/// The pause between two such attempts.
const RELOAD_BUSY_PAUSE: Duration = Duration::from_millis(500);

/// Default for connecting, including every retry on the master socket after a reload.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default for writing one command and reading its whole reply. A `commit` does one step per bind line that uses the
/// certificate, so a very large configuration may need more time.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a master client retries a refused connection. During a reload the master re-executes itself, and for a
/// moment nothing listens on its socket: 40 ms measured here, 0.1–0.15 s in the notes.
const RECONNECT_WINDOW: Duration = Duration::from_secs(1);
const RECONNECT_PAUSE: Duration = Duration::from_millis(25);
/// Commands the master runs itself. Every other command sent through the master goes to the current worker as `@1 ...`.
const MASTER_COMMANDS: [&str; 2] = ["show proc", "reload"];
/// How many loaded names a `NotLoaded` error lists.
const CLOSEST_NAMES: usize = 8;

/// Connects to a HAProxy CLI socket.
async fn connect(endpoint: &Endpoint) -> io::Result<Box<dyn Stream>> {
    Ok(match endpoint {
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
        Endpoint::Tcp(addr) => Box::new(TcpStream::connect(addr).await?),
    })
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot connect to HAProxy's runtime API at {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("HAProxy at {endpoint} did not answer `{command}` before the timeout")]
    Timeout { endpoint: String, command: String },
    #[error("lost the connection to HAProxy's runtime API at {endpoint}: {source}")]
    Io { endpoint: String, source: io::Error },
    #[error("HAProxy has not loaded {path}, so it cannot be updated at runtime; loaded, closest first: {}", names(.loaded))]
    NotLoaded { path: String, loaded: Vec<String> },
    #[error(
        "HAProxy has an open transaction for {open}, so nothing was sent for {wanted}: HAProxy 2.6 would put the new \
         certificate into that other transaction. Commit or abort it first (`abort ssl cert {open}`)"
    )]
    OtherTransaction { open: String, wanted: String },
    #[error("HAProxy refused `{command}`: {}{}", one_line(.reply), if *.aborted { "; its transaction was aborted" } else { "" })]
    Refused {
        command: String,
        reply: String,
        aborted: bool,
    },
    #[error("unexpected reply from HAProxy to `{command}`: {}", one_line(.reply))]
    Unexpected { command: String, reply: String },
    #[error("`show proc` and `reload` need HAProxy's master socket, and this client talks to an admin socket")]
    NotMaster,
    /// Not in the brief's list: a path with a line break cannot be written as one CLI argument.
    #[error("`{argument}` cannot be sent to HAProxy's CLI: {reason}")]
    InvalidArgument { argument: String, reason: &'static str },
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "nothing".to_owned()
    } else {
        list.join(", ")
    }
}

/// A reply shown in one line of an error message: its lines joined by " / ", and at most 300 characters. HAProxy's help
/// text after an unknown command runs to a hundred lines.
fn one_line(reply: &str) -> String {
    let text = reply
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    match text.char_indices().nth(300) {
        None if text.is_empty() => "(empty reply)".to_owned(),
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// One command as it goes out.
struct Request {
    /// The command line without the `@1` route or the payload: what logs and error messages show.
    line: String,
    /// Every byte that is written, the payload included. Never logged.
    wire: String,
    /// The master drops the connection when it re-executes itself for a reload. That ends the reply; it is not an error.
    reset_ends_reply: bool,
}

/// A client for one HAProxy CLI socket: either a worker's admin socket, or the master socket.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    endpoint: Endpoint,
    master: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl RuntimeApi {
    /// The worker's admin socket (`stats socket ... level admin`).
    pub fn admin(endpoint: Endpoint) -> RuntimeApi {
        RuntimeApi::new(endpoint, false)
    }

    /// The master socket (`-S`). Worker commands go to the current worker with an `@1 ` prefix; `show proc` and `reload`
    /// go to the master itself.
    pub fn master(endpoint: Endpoint) -> RuntimeApi {
        RuntimeApi::new(endpoint, true)
    }

    fn new(endpoint: Endpoint, master: bool) -> RuntimeApi {
        RuntimeApi {
            endpoint,
            master,
            connect_timeout: CONNECT_TIMEOUT,
            read_timeout: READ_TIMEOUT,
        }
    }

    /// Replaces [`CONNECT_TIMEOUT`] and [`READ_TIMEOUT`].
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> RuntimeApi {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one command as written and returns the reply text, whatever it says. A final newline is added if missing. A
    /// payload command must carry its payload and the empty line that ends it. Through the master, the command goes to
    /// the current worker unless it is `show proc`, `reload`, or already starts with an `@` route.
    pub async fn command(&self, line: &str) -> Result<String, RuntimeError> {
        let first = line.lines().next().unwrap_or_default();
        let mut wire = format!("{}{line}", self.route(first));
        if !wire.ends_with('\n') {
            wire.push('\n');
        }
        // Whatever follows `<<` on the first line and on the lines after it is payload, and is never shown.
        let shown = first.split(" <<").next().unwrap_or_default().to_owned();
        self.send(Request {
            line: shown,
            wire,
            reset_ends_reply: false,
        })
        .await
    }

    /// `show ssl cert`: the certificate files HAProxy has loaded, and the open transaction if there is one.
    pub async fn loaded_certs(&self) -> Result<CertList, RuntimeError> {
        let reply = self.run("show ssl cert").await?;
        reply::cert_list(&reply).ok_or_else(|| unexpected("show ssl cert", reply))
    }

    /// `show ssl crt-list`: the crt-list names. A `crt <dir>/` bind counts as a crt-list named `<dir>`.
    pub async fn crt_lists(&self) -> Result<Vec<String>, RuntimeError> {
        let reply = self.run("show ssl crt-list").await?;
        reply::crt_lists(&reply).ok_or_else(|| unexpected("show ssl crt-list", reply))
    }

    /// `show ssl crt-list <list>`: the certificate files of one crt-list.
    pub async fn crt_list_files(&self, list: &str) -> Result<Vec<String>, RuntimeError> {
        let line = format!("show ssl crt-list {}", arg(list)?);
        let reply = self.run(&line).await?;
        reply::crt_list_files(&reply).ok_or_else(|| unexpected(&line, reply))
    }

    /// `show ssl cert <alias>` for each crt-store alias (`@store/alias`) in `loaded`: what each one holds. None asked
    /// when there is none, as on every HAProxy before 3.0.
    pub async fn aliases(&self, loaded: &CertList) -> Result<Vec<CertInfo>, RuntimeError> {
        let mut infos = Vec::new();
        for alias in loaded.files.iter().filter(|name| name.starts_with('@')) {
            infos.push(self.cert_info(alias).await?);
        }
        Ok(infos)
    }

    /// `show ssl cert <path>`: the committed certificate (not an open transaction for it).
    pub async fn cert_info(&self, path: &str) -> Result<CertInfo, RuntimeError> {
        let line = format!("show ssl cert {}", arg(path)?);
        let reply = self.run(&line).await?;
        if let Some(info) = reply::cert_info(&reply) {
            return Ok(info);
        }
        // 2.6 answers "Not found or the certificate is a bundle!". Say what is loaded instead, which also names the
        // members of a bundle.
        let loaded = self.loaded_certs().await?;
        if !loaded.files.iter().any(|file| file == path) {
            return Err(not_loaded(path, &loaded.files));
        }
        Err(unexpected(&line, reply))
    }

    /// `show ssl ca-file`: the CA files HAProxy has loaded (`ca-file`, `ca-verify-file`, and `@system-ca` when a line
    /// uses it), each with its number of certificates.
    pub async fn ca_files(&self) -> Result<CaFileList, RuntimeError> {
        let reply = self.run("show ssl ca-file").await?;
        reply::ca_file_list(&reply).ok_or_else(|| unexpected("show ssl ca-file", reply))
    }

    /// `show ssl ca-file <name>`: each certificate of one CA file (the committed one, not a transaction for it). Not for
    /// an empty CA file: every version answers it with a bare newline, which is no complete reply.
    pub async fn ca_file(&self, name: &str) -> Result<CaFileInfo, RuntimeError> {
        let line = format!("show ssl ca-file {}", file_arg(name)?);
        let reply = self.run(&line).await?;
        reply::ca_file_info(&reply).ok_or_else(|| unexpected(&line, reply))
    }

    /// `show ssl crl-file`: the CRL files HAProxy has loaded.
    pub async fn crl_files(&self) -> Result<CrlFileList, RuntimeError> {
        let reply = self.run("show ssl crl-file").await?;
        reply::crl_file_list(&reply).ok_or_else(|| unexpected("show ssl crl-file", reply))
    }

    /// `show ssl crl-file <name>`: each CRL of one CRL file.
    pub async fn crl_file(&self, name: &str) -> Result<CrlFileInfo, RuntimeError> {
        let line = format!("show ssl crl-file {}", file_arg(name)?);
        let reply = self.run(&line).await?;
        reply::crl_file_info(&reply).ok_or_else(|| unexpected(&line, reply))
    }

    /// Puts `pem` in place of a certificate HAProxy has already loaded: `set ssl cert`, then `commit ssl cert`. This
    /// checks first that `path` is loaded and that no other path has an open transaction (2.6 would mix the two). On a
    /// refusal it aborts the transaction. The PEM is sent without CRs and blank lines, because a blank line ends the
    /// payload.
    pub async fn replace_cert(&self, path: &str, pem: &str) -> Result<(), RuntimeError> {
        arg(path)?;
        let loaded = self.loaded_certs().await?;
        refuse_other_transaction(&loaded, path)?;
        if !loaded.files.iter().any(|file| file == path) {
            return Err(not_loaded(path, &loaded.files));
        }
        self.abort_leftover(&loaded, path).await?;
        self.set_and_commit(path, pem).await?;
        tracing::debug!(endpoint = %self.endpoint, path, "certificate replaced through the runtime API");
        Ok(())
    }

    /// Serves a certificate HAProxy has never loaded: `new ssl cert`, `set`, `commit`, then `add ssl crt-list <crt_list>
    /// <path>`. For a `crt <dir>/` bind, `crt_list` is `<dir>`. The same checks and aborts as [`Self::replace_cert`]. A
    /// store left by an earlier call that failed after `new` or `commit` is reused, so a retry can finish the job.
    /// Runtime changes are not written to disk: the file must be there too, or the next reload drops the certificate.
    pub async fn add_cert(&self, path: &str, pem: &str, crt_list: &str) -> Result<(), RuntimeError> {
        let (path_arg, list_arg) = (arg(path)?, arg(crt_list)?);
        let loaded = self.loaded_certs().await?;
        refuse_other_transaction(&loaded, path)?;
        // A missing crt-list would only show at the last step, after a store was created. Check it first.
        let lists = self.crt_lists().await?;
        if !lists.iter().any(|list| list == crt_list.trim_end_matches('/')) {
            return Err(not_loaded(crt_list, &lists));
        }
        // A store that is not yet used (Empty or Unused) is ours from an earlier try. A used one makes `new` answer
        // "already exists", and that reply goes into the error.
        let reuse =
            loaded.files.iter().any(|file| file == path) && self.cert_info(path).await?.status != CertStatus::Used;
        self.abort_leftover(&loaded, path).await?;
        if reuse {
            tracing::debug!(path, "reusing the certificate store left by an earlier try");
        } else {
            let new = format!("new ssl cert {path_arg}");
            let reply = self.run(&new).await?;
            if !reply::new_succeeded(&reply, path) {
                return Err(refused(new, reply, false));
            }
        }
        self.set_and_commit(path, pem).await?;
        // Committed. There is no transaction left to abort, and a retry reuses the store.
        let add = format!("add ssl crt-list {list_arg} {path_arg}");
        let reply = self.run(&add).await?;
        if !reply::crt_list_add_succeeded(&reply, path, crt_list) {
            return Err(refused(add, reply, false));
        }
        tracing::debug!(endpoint = %self.endpoint, path, crt_list, "certificate added through the runtime API");
        Ok(())
    }

    /// Undoes [`Self::add_cert`]: `del ssl crt-list <list> <path>` for every crt-list that holds `path`, then `del ssl
    /// cert <path>`, which HAProxy refuses while any list still names it. A store that is already gone is success. A
    /// transaction left open on `path` is aborted first. Not for a file haproxy.cfg names with `crt` itself: HAProxy
    /// refuses to delete those, and the error says so.
    pub async fn remove_cert(&self, path: &str) -> Result<(), RuntimeError> {
        let path_arg = arg(path)?;
        let loaded = self.loaded_certs().await?;
        if !loaded.files.iter().any(|file| file == path) {
            return Ok(());
        }
        self.abort_leftover(&loaded, path).await?;
        for list in self.crt_lists().await? {
            if !self.crt_list_files(&list).await?.iter().any(|file| file == path) {
                continue;
            }
            let del = format!("del ssl crt-list {} {path_arg}", arg(&list)?);
            let reply = self.run(&del).await?;
            if !reply::crt_list_del_succeeded(&reply, path, &list) {
                return Err(refused(del, reply, false));
            }
        }
        let del = format!("del ssl cert {path_arg}");
        let reply = self.run(&del).await?;
        match reply::cert_del(&reply, path) {
            reply::CertDelReply::Deleted | reply::CertDelReply::Absent => {
                tracing::debug!(endpoint = %self.endpoint, path, "certificate removed through the runtime API");
                Ok(())
            }
            reply::CertDelReply::Other => Err(refused(del, reply, false)),
        }
    }

    /// The master's `show proc`.
    pub async fn show_proc(&self) -> Result<ProcInfo, RuntimeError> {
        self.require_master()?;
        let reply = self.run("show proc").await?;
        reply::proc_info(&reply).ok_or_else(|| unexpected("show proc", reply))
    }

    /// Asks the master to reload. This only sends the command: the caller checks the result with `show proc`, where the
    /// reload count is one higher, `failed` is 0 and a new worker is listed. HAProxy 2.6 answers with nothing and drops the
    /// connection, and for a moment afterwards the master socket refuses connections. Every master command retries
    /// connecting for up to a second to get past that.
    /// A reload that 3.1+ turns away because another is still loading is asked again, for up to [`RELOAD_BUSY_WINDOW`].
    pub async fn reload(&self) -> Result<(), RuntimeError> {
        self.require_master()?;
        let started = tokio::time::Instant::now();
        let mut busy = false;
        loop {
            let reply = self
                .send(Request {
                    line: "reload".to_owned(),
                    wire: "reload\n".to_owned(),
                    reset_ends_reply: true,
                })
                .await?;
            match reply::reload_reply(&reply) {
                reply::ReloadReply::Done => {
                    if busy {
                        tracing::info!(
                            waited_ms = started.elapsed().as_millis() as u64,
                            "HAProxy reloaded after another reload in progress had finished"
                        );
                    }
                    return Ok(());
                }
                reply::ReloadReply::Busy if started.elapsed() < RELOAD_BUSY_WINDOW => {
                    if !busy {
                        tracing::info!(
                            "HAProxy says another reload is still in progress; asking again every {} s for up to {} s",
                            RELOAD_BUSY_PAUSE.as_secs_f32(),
                            RELOAD_BUSY_WINDOW.as_secs()
                        );
                    }
                    busy = true;
                    tokio::time::sleep(RELOAD_BUSY_PAUSE).await;
                }
                reply::ReloadReply::Busy => {
                    return Err(refused(
                        "reload".to_owned(),
                        format!(
                            "another reload was still in progress after {}s of asking again",
                            RELOAD_BUSY_WINDOW.as_secs()
                        ),
                        false,
                    ));
                }
                reply::ReloadReply::Failed(log) => return Err(refused("reload".to_owned(), log, false)),
            }
        }
    }

    fn require_master(&self) -> Result<(), RuntimeError> {
        if self.master {
            Ok(())
        } else {
            Err(RuntimeError::NotMaster)
        }
    }

    /// `set` then `commit`. On a refusal, and on a lost connection once `set` may have reached HAProxy, it sends
    /// `abort`, so no transaction of ours stays open.
    async fn set_and_commit(&self, path: &str, pem: &str) -> Result<(), RuntimeError> {
        let path_arg = arg(path)?;
        let set = format!("set ssl cert {path_arg} <<");
        let request = Request {
            wire: format!("{}{set}\n{}\n", self.route(&set), payload(pem)),
            line: set.clone(),
            reset_ends_reply: false,
        };
        let reply = self.abort_on_error(path, self.send(request).await).await?;
        if !reply::set_accepted(&reply, path) {
            let aborted = self.abort(path).await;
            return Err(refused(set, reply, aborted));
        }
        let commit = format!("commit ssl cert {path_arg}");
        let reply = self.abort_on_error(path, self.run(&commit).await).await?;
        if !reply::commit_succeeded(&reply, path) {
            // A failed commit leaves the transaction open.
            let aborted = self.abort(path).await;
            return Err(refused(commit, reply, aborted));
        }
        Ok(())
    }

    /// A transaction for `path` itself, left by an earlier run that died halfway. A `set` would be added to it
    /// ("Transaction updated"), so it is aborted first and the new transaction starts clean.
    async fn abort_leftover(&self, loaded: &CertList, path: &str) -> Result<(), RuntimeError> {
        if loaded.transaction.as_deref() != Some(path) {
            return Ok(());
        }
        tracing::debug!(path, "aborting a leftover transaction for this certificate");
        self.abort_transaction(path).await
    }

    /// Aborts the open transaction for `path`, whoever opened it: HAProxy must confirm it.
    pub async fn abort_transaction(&self, path: &str) -> Result<(), RuntimeError> {
        let line = format!("abort ssl cert {}", arg(path)?);
        let reply = self.run(&line).await?;
        if reply::abort_succeeded(&reply, path) {
            Ok(())
        } else {
            Err(refused(line, reply, false))
        }
    }

    /// Sends `abort ssl cert <path>` and tells whether HAProxy confirmed it. "No ongoing transaction!" (for example after a
    /// `set` that failed to parse) is not a confirmation. A transaction for another path is never touched, because
    /// `abort` names our path.
    async fn abort(&self, path: &str) -> bool {
        let Ok(path_arg) = arg(path) else { return false };
        match self.run(&format!("abort ssl cert {path_arg}")).await {
            Ok(reply) => reply::abort_succeeded(&reply, path),
            Err(error) => {
                tracing::warn!(%error, path, "could not abort the certificate transaction");
                false
            }
        }
    }

    /// After a timeout or a dropped connection it is unknown whether the command ran, so abort to be safe. A failed
    /// connect sent nothing, so it needs no abort.
    async fn abort_on_error(&self, path: &str, result: Result<String, RuntimeError>) -> Result<String, RuntimeError> {
        if let Err(RuntimeError::Timeout { .. } | RuntimeError::Io { .. }) = &result {
            self.abort(path).await;
        }
        result
    }

    /// The `@1 ` route of a worker command sent through the master, or nothing.
    fn route(&self, line: &str) -> &'static str {
        if self.master && !MASTER_COMMANDS.contains(&line.trim()) && !line.starts_with('@') {
            "@1 "
        } else {
            ""
        }
    }

    /// A command without payload, routed as [`Self::route`] says.
    async fn run(&self, line: &str) -> Result<String, RuntimeError> {
        self.send(Request {
            line: line.to_owned(),
            wire: format!("{}{line}\n", self.route(line)),
            reset_ends_reply: false,
        })
        .await
    }

    async fn send(&self, request: Request) -> Result<String, RuntimeError> {
        tracing::debug!(endpoint = %self.endpoint, command = %request.line, "HAProxy runtime API");
        let mut stream = self.connect().await?;
        let exchange = async {
            stream.write_all(request.wire.as_bytes()).await?;
            stream.shutdown().await?;
            let mut reply = Vec::new();
            match stream.read_to_end(&mut reply).await {
                Err(e) if !(request.reset_ends_reply && e.kind() == io::ErrorKind::ConnectionReset) => return Err(e),
                _ => {}
            }
            Ok(String::from_utf8_lossy(&reply).into_owned())
        };
        match timeout(self.read_timeout, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(source)) => Err(RuntimeError::Io {
                endpoint: self.endpoint.to_string(),
                source,
            }),
            Err(_) => Err(RuntimeError::Timeout {
                endpoint: self.endpoint.to_string(),
                command: request.line,
            }),
        }
    }

    /// One connection within the connect timeout. On the master socket, a refused connection is retried for up to
    /// [`RECONNECT_WINDOW`] (see [`Self::reload`]).
    async fn connect(&self) -> Result<Box<dyn Stream>, RuntimeError> {
        let deadline = Instant::now() + self.connect_timeout;
        let retry_until = Instant::now() + RECONNECT_WINDOW;
        loop {
            let source = match timeout(
                deadline.saturating_duration_since(Instant::now()),
                connect(&self.endpoint),
            )
            .await
            {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(error)) => error,
                Err(_) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.connect_timeout),
                ),
            };
            // While the master re-executes itself, its socket file is there but nobody listens.
            let passing = matches!(
                source.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            );
            let now = Instant::now();
            if !(self.master && passing && now < retry_until && now + RECONNECT_PAUSE < deadline) {
                return Err(RuntimeError::Connect {
                    endpoint: self.endpoint.to_string(),
                    source,
                });
            }
            sleep(RECONNECT_PAUSE).await;
        }
    }
}

fn unexpected(command: &str, reply: String) -> RuntimeError {
    RuntimeError::Unexpected {
        command: command.to_owned(),
        reply,
    }
}

fn refused(command: String, reply: String, aborted: bool) -> RuntimeError {
    RuntimeError::Refused {
        command,
        reply,
        aborted,
    }
}

/// In 2.6, a `set ssl cert` for one path while another path's transaction is open goes into that other transaction (see
/// the notes). So stop before sending anything.
fn refuse_other_transaction(loaded: &CertList, wanted: &str) -> Result<(), RuntimeError> {
    match &loaded.transaction {
        Some(open) if open != wanted => Err(RuntimeError::OtherTransaction {
            open: open.clone(),
            wanted: wanted.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// `NotLoaded` with the loaded names closest to `path` first, so a typo or a wrong directory shows at a glance.
fn not_loaded(path: &str, loaded: &[String]) -> RuntimeError {
    let mut closest: Vec<&String> = loaded.iter().collect();
    closest.sort_by_cached_key(|name| (edit_distance(name, path), (*name).clone()));
    RuntimeError::NotLoaded {
        path: path.to_owned(),
        loaded: closest.into_iter().take(CLOSEST_NAMES).cloned().collect(),
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// One CLI argument. HAProxy splits a command line at spaces and tabs and separate commands at `;`. A backslash makes
/// any of them, and itself, part of the word (checked on 2.6 with `show ssl cert` on `sp ace;x.pem` and `q\x.pem`). A
/// line break cannot be escaped.
fn arg(text: &str) -> Result<String, RuntimeError> {
    if text.contains(['\n', '\r']) || text.is_empty() {
        return Err(RuntimeError::InvalidArgument {
            argument: text.to_owned(),
            reason: "it is empty or has a line break",
        });
    }
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | ';' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    Ok(escaped)
}

/// A CA-file or CRL-file name as one CLI argument. `show ssl ca-file` and `show ssl crl-file` read whatever follows the
/// first colon as the index of one entry (`<name>:<n>`), and no escape keeps a colon in the name.
fn file_arg(name: &str) -> Result<String, RuntimeError> {
    if name.contains(':') {
        return Err(RuntimeError::InvalidArgument {
            argument: name.to_owned(),
            reason: "HAProxy reads what follows a colon as the index of one entry",
        });
    }
    arg(name)
}

/// The PEM as a `<<` payload: one LF after each line, with no CRs and no blank lines. The first empty line ends the
/// payload, so a blank line inside the PEM would cut the key off and make HAProxy run its lines as commands. The empty
/// line that ends the payload is added by the caller.
fn payload(pem: &str) -> String {
    pem.split(['\n', '\r'])
        .filter(|line| !line.trim().is_empty())
        .flat_map(|line| [line, "\n"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_no_blank_lines_or_crs() {
        let pem = "-----BEGIN CERTIFICATE-----\r\nAAA\r\n-----END CERTIFICATE-----\r\n\r\n \n-----BEGIN PRIVATE KEY-----\nBBB\n\
                   -----END PRIVATE KEY-----";
        assert_eq!(
            payload(pem),
            "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBB\n\
             -----END PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn arguments_are_escaped() {
        assert_eq!(arg("/etc/haproxy/certs/a.pem").unwrap(), "/etc/haproxy/certs/a.pem");
        assert_eq!(arg("/c/sp ace;x.pem").unwrap(), r"/c/sp\ ace\;x.pem");
        assert_eq!(arg(r"/c/q\x.pem").unwrap(), r"/c/q\\x.pem");
        assert!(matches!(arg("/c/a\n.pem"), Err(RuntimeError::InvalidArgument { .. })));
        assert_eq!(file_arg("/c/ca file.pem").unwrap(), r"/c/ca\ file.pem");
        assert!(matches!(
            file_arg("/c/ca:1.pem"),
            Err(RuntimeError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn master_routes_worker_commands() {
        let master = RuntimeApi::master(Endpoint::parse("/m.sock").unwrap());
        assert_eq!(master.route("show ssl cert"), "@1 ");
        assert_eq!(master.route("set ssl cert /a.pem <<"), "@1 ");
        assert_eq!(master.route("show proc"), "");
        assert_eq!(master.route("reload"), "");
        assert_eq!(master.route("@!1234 show ssl cert"), "");
        let admin = RuntimeApi::admin(Endpoint::parse("/a.sock").unwrap());
        assert_eq!(admin.route("show ssl cert"), "");
    }

    #[test]
    fn not_loaded_lists_the_closest_names_first() {
        let loaded: Vec<String> = (0..20).map(|i| format!("/etc/haproxy/certs/site{i}.pem")).collect();
        let RuntimeError::NotLoaded { loaded, .. } = not_loaded("/etc/haproxy/certs/site7.pm", &loaded) else {
            unreachable!()
        };
        assert_eq!(loaded.len(), CLOSEST_NAMES);
        assert_eq!(loaded[0], "/etc/haproxy/certs/site7.pem");
    }

    #[test]
    fn errors_name_the_command_and_the_reply() {
        let error = refused(
            "commit ssl cert /c/a.pem".to_owned(),
            "inconsistencies between private key and certificate loaded '/c/a.pem'.\nCan't commit /c/a.pem!\n\n"
                .to_owned(),
            true,
        );
        assert_eq!(
            error.to_string(),
            "HAProxy refused `commit ssl cert /c/a.pem`: inconsistencies between private key and certificate loaded \
             '/c/a.pem'. / Can't commit /c/a.pem!; its transaction was aborted"
        );
        assert!(
            unexpected("reload", String::new())
                .to_string()
                .ends_with("(empty reply)")
        );
    }

    /// A fake CLI socket. For each connection it reads to EOF, which only ends if the client half-closes, then answers
    /// with the next canned reply. It returns every request as received.
    fn fake_cli(dir: &tempfile::TempDir, replies: Vec<&'static str>) -> tokio::task::JoinHandle<Vec<String>> {
        let listener = tokio::net::UnixListener::bind(dir.path().join("cli.sock")).unwrap();
        tokio::spawn(async move {
            let mut requests = Vec::new();
            for reply in replies {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = String::new();
                stream.read_to_string(&mut request).await.unwrap();
                requests.push(request);
                stream.write_all(reply.as_bytes()).await.unwrap();
            }
            requests
        })
    }

    const LIST: &str = "# filename\n/c/a.pem\n/c/default.pem\n\n";

    #[tokio::test]
    async fn replace_through_the_master_sends_these_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_cli(
            &dir,
            vec![
                LIST,
                "Transaction created for certificate /c/a.pem!\n\n",
                "Committing /c/a.pem.\nSuccess!\n\n",
            ],
        );
        let api = RuntimeApi::master(Endpoint::Unix(dir.path().join("cli.sock")));
        api.replace_cert("/c/a.pem", "-----BEGIN X-----\r\nAAA\r\n\r\n-----END X-----")
            .await
            .unwrap();
        assert_eq!(
            server.await.unwrap(),
            [
                "@1 show ssl cert\n",
                "@1 set ssl cert /c/a.pem <<\n-----BEGIN X-----\nAAA\n-----END X-----\n\n",
                "@1 commit ssl cert /c/a.pem\n",
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_commit_is_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let commit_reply = "The transaction must contain at least a certificate and a private key!\n\
                            Can't commit /c/a.pem!\n\n";
        let server = fake_cli(
            &dir,
            vec![
                LIST,
                "Transaction created for certificate /c/a.pem!\n\n",
                commit_reply,
                "Transaction aborted for certificate '/c/a.pem'!\n\n",
            ],
        );
        let api = RuntimeApi::admin(Endpoint::Unix(dir.path().join("cli.sock")));
        match api.replace_cert("/c/a.pem", "cert only").await {
            Err(RuntimeError::Refused {
                command,
                reply,
                aborted,
            }) => {
                assert_eq!(
                    (command.as_str(), reply.as_str(), aborted),
                    ("commit ssl cert /c/a.pem", commit_reply, true)
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.await.unwrap()[3], "abort ssl cert /c/a.pem\n");
    }

    #[tokio::test]
    async fn a_silent_haproxy_is_a_timeout_naming_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::UnixListener::bind(dir.path().join("cli.sock")).unwrap();
        let _held = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            sleep(Duration::from_secs(60)).await;
            drop(stream);
        });
        let api = RuntimeApi::admin(Endpoint::Unix(dir.path().join("cli.sock")))
            .with_timeouts(CONNECT_TIMEOUT, Duration::from_millis(200));
        match api.loaded_certs().await {
            Err(RuntimeError::Timeout { endpoint, command }) => {
                assert_eq!(command, "show ssl cert");
                assert!(endpoint.ends_with("cli.sock"), "{endpoint}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn unreachable_socket_is_a_connect_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let api = RuntimeApi::admin(Endpoint::Unix(sock.clone()));
        match api.loaded_certs().await {
            Err(error @ RuntimeError::Connect { .. }) => {
                assert!(error.to_string().contains(&sock.display().to_string()), "{error}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(api.show_proc().await, Err(RuntimeError::NotMaster)));
    }
}
