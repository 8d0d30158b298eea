//! The one small HTTP/1 server loop hapcert runs, for the HTTP-01 responder and the daemon's `/metrics` and `/healthz`:
//! an injected listener, a shutdown future, bounded headers and connection lifetimes, and a plain function that
//! answers each request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Request line and headers together; what these servers are asked fits in a few hundred bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Serves `answer` on `listener` until `shutdown` completes, then drops every open connection. `what` names the server
/// in logs.
pub async fn serve<A>(listener: TcpListener, what: &'static str, answer: A, shutdown: impl Future<Output = ()>)
where
    A: Fn(&Request<Incoming>, SocketAddr) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let answer = answer.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
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
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("{what}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
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
