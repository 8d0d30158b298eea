//! The one small HTTP/1 server loop hapcert runs, for the HTTP-01 responder and the daemon's `/metrics` and `/healthz`:
//! an injected listener, a shutdown future, bounded headers and connection lifetimes, and a plain function that
//! answers each request.
//!
//! A flood of connections must not take the process's file descriptors: a slow client (one that never finishes its
//! request head) or an idle keep-alive one holds a descriptor for nothing, and a process out of descriptors can no
//! longer accept the CA's validator, read its config on SIGHUP, or reach the CA. So each server holds at most
//! [`connection_cap`] connections: at the cap, a new connection closes the least recently active one (the oldest that
//! has not sent a complete request head since it connected or since its last request), so that slow and idle clients
//! go first and a client that has just asked is served. A connection that takes longer than [`HEADER_TIMEOUT`] for a
//! request head, or stays idle that long between requests, is closed anyway, and none lives longer than
//! [`CONNECTION_TIMEOUT`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::edge::tally::{Summary, Tally};

/// How long a client has for a request head, the first one or the next on a kept-alive connection; idle keep-alive
/// connections are closed after it too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer, however busy.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Request line and headers together; what these servers are asked fits in a few hundred bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The most connections one server holds, whatever the open-file limit. A CA's validators make a handful at a time.
pub const MAX_CONNECTIONS: usize = 512;
/// One server's connections take at most this fraction of the open-file limit: two servers (the responder and the
/// metrics server) leave half of it for the state, the config, the CA, HAProxy's sockets and the hooks.
const FD_LIMIT_DIVISOR: u64 = 4;
/// Below this a server could not serve a CA's validators alongside a scanner; only a very low limit gets here.
const MIN_CONNECTIONS: usize = 16;

/// Connections the kernel completes and queues for a server before it accepts them (the usual default is 128). A
/// flood that outpaces the accept loop fills the queue, and then the kernel drops new connections, the CA's
/// validator's among them, for a second at least (the client's SYN retransmission).
const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as the standard bind does).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The connections one server may hold, for the open-file soft limit `fd_limit` (`None`: unknown).
pub fn connection_cap(fd_limit: Option<u64>) -> usize {
    let from_limit = fd_limit.map_or(MAX_CONNECTIONS as u64, |limit| limit / FD_LIMIT_DIVISOR);
    usize::try_from(from_limit)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// Serves `answer` on `listener` until `shutdown` completes, then drops every open connection. `what` names the server
/// in logs. It holds at most [`connection_cap`] connections for the process's open-file limit.
pub async fn serve<A>(listener: TcpListener, what: &'static str, answer: A, shutdown: impl Future<Output = ()>)
where
    A: Fn(&Request<Incoming>, SocketAddr) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let fd_limit = crate::edge::fd_limit::soft_limit();
    serve_capped(listener, what, connection_cap(fd_limit), answer, shutdown).await;
}

/// [`serve`] with the connection cap given.
pub async fn serve_capped<A>(
    listener: TcpListener,
    what: &'static str,
    cap: usize,
    answer: A,
    shutdown: impl Future<Output = ()>,
) where
    A: Fn(&Request<Incoming>, SocketAddr) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let mut connections = JoinSet::new();
    let mut open = OpenConnections::new(cap.max(1));
    let mut shed = Tally::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(victim) = open.make_room() {
                        victim.abort();
                        tracing::debug!(%peer, "{what}: closed the least recently active connection to make room");
                        if let Some(summary) = shed.record(Instant::now()) {
                            log_shed(what, cap, summary);
                        }
                    }
                    let (activity, last_active) = open.activity();
                    let answer = answer.clone();
                    let handle = connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            activity.touch();
                            let answer = answer.clone();
                            async move { Ok::<_, Infallible>(answer(&req, peer)) }
                        });
                        let connection = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .max_buf_size(MAX_HEAD_BYTES)
                            .serve_connection(TokioIo::new(stream), service);
                        if tokio::time::timeout(CONNECTION_TIMEOUT, connection).await.is_err() {
                            tracing::debug!(%peer, "{what}: closed a connection that stayed open too long");
                        }
                    });
                    open.insert(handle, last_active);
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("{what}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                open.remove(match &done {
                    Ok((id, ())) => *id,
                    Err(err) => err.id(),
                });
            }
        }
    }
    connections.shutdown().await;
    if let Some(summary) = shed.finish(Instant::now()) {
        log_shed(what, cap, summary);
    }
}

fn log_shed(what: &str, cap: usize, Summary { count, since }: Summary) {
    match since {
        None => tracing::warn!(
            "{what}: {cap} connections open, its cap; each new connection now closes the least recently active one \
             (a flood, or clients that connect and send nothing); the closings are counted here at most once a minute"
        ),
        Some(since) => tracing::warn!(
            "{what}: closed {count} slow or idle connection(s) in the last {} s to stay within {cap} connections",
            since.as_secs()
        ),
    }
}

/// The connections a server holds, each with the moment of its last activity on a counter that every accept and every
/// request advances: the smallest is the least recently active.
struct OpenConnections {
    cap: usize,
    clock: Arc<AtomicU64>,
    open: HashMap<tokio::task::Id, (Arc<AtomicU64>, AbortHandle)>,
}

/// Marks its connection active when a request head has arrived.
struct Activity {
    clock: Arc<AtomicU64>,
    last: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        self.last.store(now, Ordering::Relaxed);
    }
}

impl OpenConnections {
    fn new(cap: usize) -> OpenConnections {
        OpenConnections {
            cap,
            clock: Arc::new(AtomicU64::new(0)),
            open: HashMap::new(),
        }
    }

    /// At the cap: forgets the least recently active connection and returns it, to be closed.
    fn make_room(&mut self) -> Option<AbortHandle> {
        if self.open.len() < self.cap {
            return None;
        }
        let (&id, _) = self
            .open
            .iter()
            .min_by_key(|(_, (last, _))| last.load(Ordering::Relaxed))?;
        self.open.remove(&id).map(|(_, handle)| handle)
    }

    /// The activity marker for a new connection, active from now, and the moment it holds (for [`Self::insert`]).
    fn activity(&self) -> (Activity, Arc<AtomicU64>) {
        let last = Arc::new(AtomicU64::new(0));
        let activity = Activity {
            clock: self.clock.clone(),
            last: last.clone(),
        };
        activity.touch();
        (activity, last)
    }

    /// Records a spawned connection and its activity.
    fn insert(&mut self, handle: AbortHandle, last_active: Arc<AtomicU64>) {
        self.open.insert(handle.id(), (last_active, handle));
    }

    fn remove(&mut self, id: tokio::task::Id) {
        self.open.remove(&id);
    }
}

/// Completes when a [`Running`] server is told to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server task and the way to stop it.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Spawns `serve`, handing it the future that completes at [`Running::stop`].
    pub fn spawn<F>(serve: impl FnOnce(Shutdown) -> F) -> Running
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async {
            stopped.await.ok();
        })));
        Running { stop, task }
    }

    /// Tells the server to stop and waits until it has.
    pub async fn stop(self) {
        self.stop.send(()).ok();
        self.task.await.ok();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[test]
    fn the_cap_is_a_quarter_of_the_open_file_limit_within_bounds() {
        assert_eq!(connection_cap(Some(1024)), 256);
        assert_eq!(connection_cap(Some(4096)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(1 << 20)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(20)), MIN_CONNECTIONS);
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
    }

    fn hello(_: &Request<Incoming>, _: SocketAddr) -> Response<Full<Bytes>> {
        Response::new(Full::new(Bytes::from_static(b"hello")))
    }

    /// Whether the server closes `stream` (a read gives end of file or an error) well before the header timeout could
    /// have closed it.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(HEADER_TIMEOUT / 2, stream.read(&mut buf)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_closes_the_least_recently_active_one_and_is_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_capped(listener, "test server", 3, hello, async {
            stopped.await.ok();
        }));
        async fn slow_client(addr: SocketAddr) -> TcpStream {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            stream
        }
        async fn ask(stream: &mut TcpStream) -> String {
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 256];
            let n = stream.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }

        // Three slow clients, each with half a request head, fill the cap.
        let mut slow = Vec::new();
        for _ in 0..3 {
            slow.push(slow_client(addr).await);
        }
        // A fourth client closes the oldest of them and is served, and keeps its connection.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        let reply = ask(&mut kept).await;
        assert!(reply.ends_with("hello"), "{reply}");
        assert!(closed(&mut slow[0]).await, "the oldest slow client is closed");

        // Each new client closes the least recently active one: the slow ones in turn, then the newer slow one rather
        // than the kept-alive client that asked after it connected.
        slow.push(slow_client(addr).await);
        assert!(closed(&mut slow[1]).await, "the second slow client is closed");
        let reply = ask(&mut kept).await;
        assert!(reply.ends_with("hello"), "{reply}");
        slow.push(slow_client(addr).await);
        assert!(closed(&mut slow[2]).await, "the third slow client is closed");
        slow.push(slow_client(addr).await);
        assert!(
            closed(&mut slow[3]).await,
            "the slow client that came before the last request is closed"
        );
        let reply = ask(&mut kept).await;
        assert!(
            reply.ends_with("hello"),
            "the kept-alive client still has its connection: {reply}"
        );

        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
