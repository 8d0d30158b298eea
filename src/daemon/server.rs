//! `/metrics` and `/healthz` on `[daemon] listen`: a hyper server on an injected listener, stopped by a future, like the
//! HTTP-01 responder. What it serves comes from [`Shared`]: the config in use (swapped on SIGHUP) and what the loop is
//! doing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use super::health::{self, Activity};
use crate::core::config::Config;
use crate::core::state::StateStorage;
use crate::edge::store::StateDir;
use crate::fleet::watch::FleetView;

/// The Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the daemon's loop shares with the server.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    activity: Mutex<Activity>,
    started: OffsetDateTime,
    /// What the fleet watch sees (nothing without `[fleet]`).
    pub fleet: FleetView,
}

impl Shared {
    pub fn new(config: Arc<Config>, now: OffsetDateTime) -> Shared {
        Shared {
            config: RwLock::new(config),
            activity: Mutex::new(Activity::Renewing { since: now }),
            started: now,
            fleet: FleetView::default(),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.write().expect("config lock") = config;
    }

    pub fn set_activity(&self, activity: Activity) {
        *self.activity.lock().expect("activity lock") = activity;
    }

    fn activity(&self) -> Activity {
        *self.activity.lock().expect("activity lock")
    }
}

/// Binds `[daemon] listen`, with an error that names the key.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    crate::edge::http_server::listen(addr)
        .map_err(|err| anyhow::anyhow!("cannot listen on {addr} for /metrics and /healthz ([daemon] listen): {err}"))
}

/// Serves until `shutdown` completes.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    let answer = move |req: &Request<Incoming>, _peer: SocketAddr| answer(&shared, req);
    crate::edge::http_server::serve(listener, "metrics server", answer, shutdown).await;
}

fn answer(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    let now = OffsetDateTime::now_utc();
    let config = shared.config();
    match req.uri().path() {
        "/metrics" => match crate::metrics::render(&config, now) {
            Ok(text) => {
                let fleet = super::fleet_link::metrics(&config, &shared.fleet).unwrap_or_default();
                reply(StatusCode::OK, METRICS_CONTENT_TYPE, text + &fleet)
            }
            Err(err) => {
                tracing::error!("cannot render the metrics: {err:#}");
                reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot render the metrics: {err:#}\n"),
                )
            }
        },
        "/healthz" => {
            let last_run_success = match StateDir::at(&config.state.dir.value).load_state() {
                Ok(state) => state.last_run_success,
                Err(err) => {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("unhealthy: {err:#}\n"),
                    );
                }
            };
            let health = health::judge(
                shared.activity(),
                last_run_success,
                shared.started,
                config.check.max_run_age,
                health::pass_limit(&config),
                now,
            );
            let status = if health.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, "text/plain", health.text)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics or /healthz\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_health_until_shut_down() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[acme]\ndirectory = \"https://ca.example/dir\"\n[state]\ndir = {:?}\n\n[[certificate]]\nname = \"www\"\ndomains = [\"example.com\"]\n",
            dir.path().display().to_string()
        );
        // The state's directory must not hold the config, so the config (never read here) is named elsewhere.
        let config = Config::parse(&text, std::path::Path::new("/etc/hapcert/hapcert.toml")).unwrap();
        let now = OffsetDateTime::now_utc();
        let shared = Arc::new(Shared::new(Arc::new(config), now));
        shared.set_activity(Activity::Sleeping {
            until: now + Duration::from_secs(60),
        });
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, shared.clone(), async {
            stopped.await.ok();
        }));

        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("content-type: text/plain; version=0.0.4"), "{metrics}");
        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(
            health.contains("\r\n\r\nok\nlast successful run: none yet\n"),
            "{health}"
        );

        shared.set_activity(Activity::Renewing {
            since: now - 2 * health::BUSY_LIMIT,
        });
        let stuck = get(addr, "/healthz").await;
        assert!(stuck.starts_with("HTTP/1.1 503"), "{stuck}");
        assert!(get(addr, "/").await.starts_with("HTTP/1.1 404"));

        stop.send(()).unwrap();
        server.await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
