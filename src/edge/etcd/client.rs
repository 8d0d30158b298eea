//! The typed client over etcd's JSON gateway: requests with a deadline, failover across endpoints, TLS and auth.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::prefix_end;
use super::wire::{self, b64};

type Hyper = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// gRPC's status code "unavailable": the member has no leader, or lost it, or timed out inside the cluster.
const UNAVAILABLE: i64 = 14;
/// gRPC's "unauthenticated", which etcd gives for an expired or unknown token.
const UNAUTHENTICATED: i64 = 16;
/// Between two rounds over every endpoint, when each failed at once (refused, or no leader).
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// Where etcd is and how to talk to it.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// `http://host:port` or `https://host:port`, tried in this order (starting from the last one that answered).
    pub endpoints: Vec<String>,
    /// The most one request may take, over every endpoint it tries.
    pub timeout: Duration,
    pub tls: EtcdTls,
    /// User and password, exchanged for a token (`/v3/auth/authenticate`) sent with every request.
    pub user: Option<(String, String)>,
}

/// TLS for `https://` endpoints. No `ca_bundle`: the system's roots. A client certificate needs its key.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca_bundle: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    /// 0 when the key has no lease.
    pub lease: i64,
}

/// Keys of a range, read at `revision` (the store's revision when read, or the one asked for).
#[derive(Clone, Debug)]
pub struct Range {
    pub kvs: Vec<KeyValue>,
    pub revision: i64,
}

/// A transaction's condition; every one compares for equality. A missing key has revisions 0.
#[derive(Clone, Debug)]
pub enum Compare {
    ModRevision {
        key: Vec<u8>,
        revision: i64,
    },
    /// The fencing primitive: "the lock key still exists with the revision at which I created it".
    CreateRevision {
        key: Vec<u8>,
        revision: i64,
    },
    Value {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
pub enum TxnOp {
    Get {
        key: Vec<u8>,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<i64>,
    },
    Delete {
        key: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
pub enum TxnResponse {
    Get(Vec<KeyValue>),
    Put,
    Delete { deleted: i64 },
}

#[derive(Clone, Debug)]
pub struct TxnOutcome {
    /// Whether every comparison held (the success branch ran) or not (the failure branch ran).
    pub succeeded: bool,
    pub revision: i64,
    pub responses: Vec<TxnResponse>,
}

impl TxnOutcome {
    /// The first key a `Get` of the branch that ran found: what a failed compare-and-swap ran into.
    pub fn got(self) -> Option<KeyValue> {
        self.responses.into_iter().find_map(|r| match r {
            TxnResponse::Get(kvs) => kvs.into_iter().next(),
            _ => None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub ttl: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEventKind {
    Put,
    Delete,
}

#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// For a delete: the key, and the deletion's revision as `mod_revision`; no value.
    pub kv: KeyValue,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error(
        "etcd did not answer {what} within {}: {tried}; check that a majority of the members of [fleet] etcd runs \
         and can be reached",
        humantime::format_duration(*.timeout)
    )]
    Unreachable {
        what: String,
        timeout: Duration,
        tried: String,
    },
    #[error(
        "etcd has compacted its history past revision {requested} (compacted up to {compact_revision}): list the \
         keys again, then watch from the listing's revision + 1"
    )]
    Compacted { requested: i64, compact_revision: i64 },
    #[error("etcd at {endpoint} refused {what}: {message} (gRPC code {code})")]
    Rejected {
        endpoint: String,
        what: String,
        code: i64,
        message: String,
    },
    #[error("lease {id:x} has expired or was revoked; its keys are gone")]
    LeaseGone { id: i64 },
    #[error("etcd at {endpoint} gave an answer to {what} that is not etcd's: {detail}")]
    Protocol {
        endpoint: String,
        what: String,
        detail: String,
    },
    #[error("the watch on {endpoint} ended: {detail}; watch again from the last revision seen + 1")]
    WatchEnded { endpoint: String, detail: String },
    #[error(
        "no etcd endpoint accepted a TLS connection for {what}: {tried}; check [fleet] ca_bundle, client_cert and \
         client_key against the members' certificates and --trusted-ca-file"
    )]
    Tls { what: String, tried: String },
    #[error("etcd client setup: {0}")]
    Setup(String),
}

#[derive(Clone)]
pub struct EtcdClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Hyper,
    endpoints: Vec<String>,
    timeout: Duration,
    user: Option<(String, String)>,
    /// The endpoint that answered last; requests start there.
    preferred: AtomicUsize,
    token: Mutex<Option<String>>,
}

/// How one attempt at one endpoint failed.
enum Failure {
    /// Nothing was sent, or the member said it did nothing (no leader): another endpoint may do it.
    TryNext(String),
    /// The TLS handshake failed (a certificate refused, either way): another endpoint may accept, but trying this
    /// one again will not help.
    Tls(String),
    /// Sent, and no whole answer: a write may have been applied.
    Unsure(String),
    /// The token is no longer valid: authenticate again, then retry.
    Token,
    /// A final answer.
    Final(EtcdError),
}

impl EtcdError {
    /// What each endpoint said, for an [`EtcdError::Unreachable`].
    fn tried(self) -> String {
        match self {
            EtcdError::Unreachable { tried, .. } => tried,
            other => other.to_string(),
        }
    }
}

impl EtcdClient {
    pub fn new(options: EtcdOptions) -> Result<EtcdClient, EtcdError> {
        if options.endpoints.is_empty() {
            return Err(EtcdError::Setup("no endpoint given".into()));
        }
        for endpoint in &options.endpoints {
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| EtcdError::Setup(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(EtcdError::Setup(format!(
                    "endpoint {endpoint:?} is not http://host:port or https://host:port"
                )));
            }
        }
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(&options.tls)?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(EtcdClient {
            inner: Arc::new(Inner {
                http: Client::builder(TokioExecutor::new()).build(connector),
                endpoints: options
                    .endpoints
                    .iter()
                    .map(|e| e.trim_end_matches('/').to_owned())
                    .collect(),
                timeout: options.timeout,
                user: options.user,
                preferred: AtomicUsize::new(0),
                token: Mutex::new(None),
            }),
        })
    }

    /// The key's current value, if it exists.
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        let request = wire::RangeRequest {
            key: b64(key),
            ..Default::default()
        };
        let what = format!("get {}", show(key));
        let answer: wire::RangeResponse = self.call("/v3/kv/range", &request, true, &what).await?;
        Ok(answer.kvs.into_iter().next().map(key_value))
    }

    /// Every key under `prefix`, now or at `revision` (which fails as [`EtcdError::Compacted`] once compacted).
    pub async fn get_prefix(&self, prefix: &[u8], revision: Option<i64>) -> Result<Range, EtcdError> {
        let request = wire::RangeRequest {
            key: b64(prefix),
            range_end: Some(b64(&prefix_end(prefix))),
            revision: revision.map(|r| r.to_string()),
        };
        let what = format!("get --prefix {}", show(prefix));
        let answer: wire::RangeResponse = self
            .call("/v3/kv/range", &request, true, &what)
            .await
            .map_err(|e| compacted(e, revision.unwrap_or(0)))?;
        Ok(Range {
            revision: revision.unwrap_or(answer.header.revision),
            kvs: answer.kvs.into_iter().map(key_value).collect(),
        })
    }

    /// Writes `value`, under `lease` if given (the key then goes with the lease). Returns the write's revision.
    pub async fn put(&self, key: &[u8], value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        let request = put_request(key, value, lease);
        let what = format!("put {}", show(key));
        let answer: wire::PutResponse = self.call("/v3/kv/put", &request, false, &what).await?;
        Ok(answer.header.revision)
    }

    /// Deletes the key; whether it existed.
    pub async fn delete(&self, key: &[u8]) -> Result<bool, EtcdError> {
        let request = wire::DeleteRequest {
            key: b64(key),
            range_end: None,
        };
        let what = format!("delete {}", show(key));
        let answer: wire::DeleteResponse = self.call("/v3/kv/deleterange", &request, false, &what).await?;
        Ok(answer.deleted > 0)
    }

    /// Deletes every key under `prefix`; how many there were.
    pub async fn delete_prefix(&self, prefix: &[u8]) -> Result<i64, EtcdError> {
        let request = wire::DeleteRequest {
            key: b64(prefix),
            range_end: Some(b64(&prefix_end(prefix))),
        };
        let what = format!("delete --prefix {}", show(prefix));
        let answer: wire::DeleteResponse = self.call("/v3/kv/deleterange", &request, false, &what).await?;
        Ok(answer.deleted)
    }

    /// If every comparison holds, runs `success`, else `failure`, as one atomic step.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[TxnOp],
        failure: &[TxnOp],
    ) -> Result<TxnOutcome, EtcdError> {
        let request = wire::TxnRequest {
            compare: compare.iter().map(compare_json).collect(),
            success: success.iter().map(op_json).collect(),
            failure: failure.iter().map(op_json).collect(),
        };
        let keys: Vec<String> = compare.iter().map(|c| show(compare_key(c))).collect();
        let what = format!("txn comparing {}", keys.join(", "));
        let answer: wire::TxnResponse = self.call("/v3/kv/txn", &request, false, &what).await?;
        Ok(TxnOutcome {
            succeeded: answer.succeeded,
            revision: answer.header.revision,
            responses: answer
                .responses
                .into_iter()
                .map(|r| match r {
                    wire::ResponseOp::Range(range) => TxnResponse::Get(range.kvs.into_iter().map(key_value).collect()),
                    wire::ResponseOp::Put(_) => TxnResponse::Put,
                    wire::ResponseOp::Delete(d) => TxnResponse::Delete { deleted: d.deleted },
                })
                .collect(),
        })
    }

    /// A new lease of `ttl` (whole seconds; etcd may raise a very short one).
    pub async fn lease_grant(&self, ttl: Duration) -> Result<Lease, EtcdError> {
        let request = wire::LeaseGrantRequest {
            ttl: ttl.as_secs().max(1).to_string(),
        };
        let answer: wire::LeaseResponse = self.call("/v3/lease/grant", &request, false, "lease grant").await?;
        if !answer.error.is_empty() {
            return Err(EtcdError::Rejected {
                endpoint: self.current_endpoint(),
                what: "lease grant".into(),
                code: 0,
                message: answer.error,
            });
        }
        Ok(Lease {
            id: answer.id,
            ttl: Duration::from_secs(answer.ttl.max(0) as u64),
        })
    }

    /// Renews the lease to its full TTL, which is returned; [`EtcdError::LeaseGone`] once it has expired.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<Duration, EtcdError> {
        let request = wire::LeaseIdRequest { id: id.to_string() };
        let what = format!("lease keep-alive {id:x}");
        // A stream: its first line is the answer to the one request sent.
        let line: wire::StreamLine<wire::LeaseResponse> =
            self.call("/v3/lease/keepalive", &request, true, &what).await?;
        match (line.result, line.error) {
            (Some(answer), _) if answer.ttl > 0 => Ok(Duration::from_secs(answer.ttl as u64)),
            (Some(_), _) => Err(EtcdError::LeaseGone { id }),
            (None, error) => Err(EtcdError::Protocol {
                endpoint: self.current_endpoint(),
                what,
                detail: format!("no result: {error:?}"),
            }),
        }
    }

    /// Ends the lease now; its keys are deleted with it.
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        let request = wire::LeaseIdRequest { id: id.to_string() };
        let what = format!("lease revoke {id:x}");
        match self
            .call::<_, wire::LeaseResponse>("/v3/lease/revoke", &request, false, &what)
            .await
        {
            Err(EtcdError::Rejected { message, .. }) if message.contains("lease not found") => {
                Err(EtcdError::LeaseGone { id })
            }
            other => other.map(|_| ()),
        }
    }

    /// Watches every key under `prefix`, from `start_revision` (0: from now). Returns once etcd has created the watch.
    /// A start revision that was compacted away is reported by the watch's first [`Watch::next`] as
    /// [`EtcdError::Compacted`] (etcd creates the watch, then cancels it).
    pub async fn watch_prefix(&self, prefix: &[u8], start_revision: i64) -> Result<Watch, EtcdError> {
        let request = wire::WatchCreate {
            create_request: wire::WatchCreateRequest {
                key: b64(prefix),
                range_end: b64(&prefix_end(prefix)),
                start_revision: start_revision.to_string(),
            },
        };
        let what = format!("watch --prefix {} from revision {start_revision}", show(prefix));
        let body = serde_json::to_vec(&request).expect("a request serializes");
        let deadline = Instant::now() + self.inner.timeout;
        let (endpoint, response) = self.send("/v3/watch", body, true, &what, deadline).await?;
        let mut watch = Watch {
            endpoint,
            body: response.into_body(),
            buffer: Vec::new(),
            pending: VecDeque::new(),
            start_revision,
        };
        // The first line says whether etcd created the watch; wait for it within the deadline.
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, watch.next_response()).await {
            Err(_) => Err(EtcdError::Unreachable {
                what,
                timeout: self.inner.timeout,
                tried: format!("{}: the watch was not confirmed", watch.endpoint),
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Ok(watch),
        }
    }

    fn current_endpoint(&self) -> String {
        let i = self.inner.preferred.load(Ordering::Relaxed);
        self.inner.endpoints[i % self.inner.endpoints.len()].clone()
    }

    /// One unary request: the answer's first line (the whole answer, or a stream's first message) as `Resp`.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
        idempotent: bool,
        what: &str,
    ) -> Result<Resp, EtcdError> {
        let body = serde_json::to_vec(request).expect("a request serializes");
        let deadline = Instant::now() + self.inner.timeout;
        let (endpoint, response) = self.send(path, body, idempotent, what, deadline).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        let line = match tokio::time::timeout(remaining, read_line(&mut body, &mut buffer)).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => std::mem::take(&mut buffer),
            Ok(Err(e)) => {
                return Err(EtcdError::Protocol {
                    endpoint,
                    what: what.into(),
                    detail: format!("the answer broke off: {e}"),
                });
            }
            Err(_) => {
                return Err(EtcdError::Unreachable {
                    what: what.into(),
                    timeout: self.inner.timeout,
                    tried: format!("{endpoint}: the answer did not arrive whole"),
                });
            }
        };
        serde_json::from_slice(&line).map_err(|e| EtcdError::Protocol {
            endpoint,
            what: what.into(),
            detail: format!("{e}: {}", String::from_utf8_lossy(&line)),
        })
    }

    /// Sends the request to one endpoint after another until one answers 200 or the deadline passes. Returns the
    /// endpoint and its answer, whose body is still to be read.
    async fn send(
        &self,
        path: &str,
        body: Vec<u8>,
        idempotent: bool,
        what: &str,
        deadline: Instant,
    ) -> Result<(String, http::Response<Incoming>), EtcdError> {
        let inner = &self.inner;
        let count = inner.endpoints.len();
        let start = inner.preferred.load(Ordering::Relaxed);
        let mut tried: Vec<(String, String)> = Vec::new();
        let mut reauthenticated = false;
        let mut tls_failed = std::collections::BTreeSet::new();
        let mut attempt = 0usize;
        loop {
            if attempt > 0 && attempt.is_multiple_of(count) {
                let pause = ROUND_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
            let index = (start + attempt) % count;
            attempt += 1;
            let endpoint = &inner.endpoints[index];
            if Instant::now() >= deadline {
                return Err(self.unreachable(what, tried));
            }
            match self.attempt(endpoint, path, &body, deadline).await {
                Ok(response) => {
                    inner.preferred.store(index, Ordering::Relaxed);
                    return Ok((endpoint.clone(), response));
                }
                Err(Failure::TryNext(why)) => note(&mut tried, endpoint, why),
                Err(Failure::Tls(why)) => {
                    note(&mut tried, endpoint, why);
                    tls_failed.insert(index);
                    if tls_failed.len() == count {
                        return Err(EtcdError::Tls {
                            what: what.into(),
                            tried: self.unreachable(what, tried).tried(),
                        });
                    }
                }
                Err(Failure::Unsure(why)) => {
                    note(&mut tried, endpoint, why);
                    if !idempotent {
                        return Err(self.unreachable(what, tried));
                    }
                }
                Err(Failure::Token) if !reauthenticated => {
                    reauthenticated = true;
                    *inner.token.lock().expect("not poisoned") = None;
                    attempt -= 1;
                }
                Err(Failure::Token) => {
                    return Err(EtcdError::Rejected {
                        endpoint: endpoint.clone(),
                        what: what.into(),
                        code: UNAUTHENTICATED,
                        message: "the token was refused right after authenticating".into(),
                    });
                }
                Err(Failure::Final(EtcdError::Rejected {
                    endpoint,
                    code,
                    message,
                    ..
                })) => {
                    return Err(EtcdError::Rejected {
                        endpoint,
                        what: what.into(),
                        code,
                        message,
                    });
                }
                Err(Failure::Final(e)) => return Err(e),
            }
        }
    }

    fn unreachable(&self, what: &str, tried: Vec<(String, String)>) -> EtcdError {
        let mut text = String::new();
        for (endpoint, why) in &tried {
            let _ = write!(text, "{}{endpoint}: {why}", if text.is_empty() { "" } else { "; " });
        }
        let untried: Vec<&String> = self
            .inner
            .endpoints
            .iter()
            .filter(|e| !tried.iter().any(|(t, _)| t == *e))
            .collect();
        if !untried.is_empty() {
            let list: Vec<&str> = untried.iter().map(|e| e.as_str()).collect();
            let _ = write!(text, "; not tried: {}", list.join(", "));
        }
        EtcdError::Unreachable {
            what: what.into(),
            timeout: self.inner.timeout,
            tried: text,
        }
    }

    async fn attempt(
        &self,
        endpoint: &str,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<http::Response<Incoming>, Failure> {
        let token = self.token(endpoint, deadline).await?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{endpoint}{path}"))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, token);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| Failure::Final(EtcdError::Setup(format!("{endpoint}{path}: {e}"))))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let response = match tokio::time::timeout(remaining, self.inner.http.request(request)).await {
            Err(_) => return Err(Failure::Unsure("no answer in time".into())),
            Ok(Err(e)) if is_tls(&e) => return Err(Failure::Tls(format!("TLS failed: {}", cause(&e)))),
            Ok(Err(e)) if e.is_connect() => return Err(Failure::TryNext(format!("cannot connect: {}", cause(&e)))),
            Ok(Err(e)) => return Err(Failure::Unsure(format!("the connection failed: {}", cause(&e)))),
            Ok(Ok(response)) => response,
        };
        if response.status() == StatusCode::OK {
            return Ok(response);
        }
        let status = response.status();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let text = match tokio::time::timeout(remaining, response.into_body().collect()).await {
            Ok(Ok(body)) => body.to_bytes(),
            _ => return Err(Failure::Unsure(format!("HTTP {status}, and its body did not arrive"))),
        };
        let answer: wire::ErrorAnswer = serde_json::from_slice(&text).unwrap_or_default();
        let message = answer.text().to_owned();
        if answer.code == UNAUTHENTICATED || message.contains("invalid auth token") {
            return Err(Failure::Token);
        }
        if answer.code == UNAVAILABLE {
            // "no leader" and "leader changed" mean nothing was done; "request timed out" may have been applied.
            return Err(if message.contains("timed out") {
                Failure::Unsure(message)
            } else {
                Failure::TryNext(message)
            });
        }
        if message.is_empty() {
            return Err(Failure::Final(EtcdError::Protocol {
                endpoint: endpoint.into(),
                what: path.into(),
                detail: format!("HTTP {status}: {}", String::from_utf8_lossy(&text)),
            }));
        }
        Err(Failure::Final(EtcdError::Rejected {
            endpoint: endpoint.into(),
            what: path.into(),
            code: answer.code,
            message,
        }))
    }

    /// The auth token, fetched from `endpoint` when there is none yet; None without a user.
    async fn token(&self, endpoint: &str, deadline: Instant) -> Result<Option<String>, Failure> {
        let Some((name, password)) = &self.inner.user else {
            return Ok(None);
        };
        if let Some(token) = self.inner.token.lock().expect("not poisoned").clone() {
            return Ok(Some(token));
        }
        let body = serde_json::to_vec(&wire::AuthRequest { name, password }).expect("serializes");
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{endpoint}/v3/auth/authenticate"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Final(EtcdError::Setup(format!("{endpoint}: {e}"))))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let response = match tokio::time::timeout(remaining, self.inner.http.request(request)).await {
            Err(_) => return Err(Failure::TryNext("no answer to authenticate in time".into())),
            Ok(Err(e)) if is_tls(&e) => return Err(Failure::Tls(format!("TLS failed: {}", cause(&e)))),
            Ok(Err(e)) if e.is_connect() => return Err(Failure::TryNext(format!("cannot connect: {}", cause(&e)))),
            Ok(Err(e)) => return Err(Failure::TryNext(format!("authenticate failed: {}", cause(&e)))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let text = match tokio::time::timeout(remaining, response.into_body().collect()).await {
            Ok(Ok(body)) => body.to_bytes(),
            _ => return Err(Failure::TryNext("the answer to authenticate did not arrive".into())),
        };
        if status != StatusCode::OK {
            let answer: wire::ErrorAnswer = serde_json::from_slice(&text).unwrap_or_default();
            if answer.code == UNAVAILABLE {
                return Err(Failure::TryNext(answer.text().to_owned()));
            }
            // Not etcd's JSON: the gateway itself refused (it does, with HTTP 400, a client certificate that has a
            // common name while authentication is on). Its own words, not a guess about the password.
            let message = match answer.text() {
                "" => format!(
                    "HTTP {status}: {}; with authentication on, the gateway refuses a client certificate that has a \
                     common name (CN): use one without",
                    String::from_utf8_lossy(&text).trim()
                ),
                said => format!("{said} (as user {name:?}); check [fleet] username and password_file"),
            };
            return Err(Failure::Final(EtcdError::Rejected {
                endpoint: endpoint.into(),
                what: format!("authentication as user {name:?}"),
                code: answer.code,
                message,
            }));
        }
        let answer: wire::AuthResponse = serde_json::from_slice(&text).map_err(|e| {
            Failure::Final(EtcdError::Protocol {
                endpoint: endpoint.into(),
                what: "authenticate".into(),
                detail: e.to_string(),
            })
        })?;
        *self.inner.token.lock().expect("not poisoned") = Some(answer.token.clone());
        Ok(Some(answer.token))
    }
}

/// A watch on a prefix: [`Watch::next`] gives its events in revision order. A watch has no deadline: it waits for
/// changes. It ends with an error when its member goes away ([`EtcdError::WatchEnded`]) or when etcd cancels it
/// ([`EtcdError::Compacted`]); the caller then lists again and watches again.
pub struct Watch {
    endpoint: String,
    body: Incoming,
    buffer: Vec<u8>,
    pending: VecDeque<WatchEvent>,
    start_revision: i64,
}

impl Watch {
    /// The endpoint the watch runs on.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next event.
    pub async fn next(&mut self) -> Result<WatchEvent, EtcdError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            self.next_response().await?;
        }
    }

    /// Reads one message of the stream and queues its events.
    async fn next_response(&mut self) -> Result<(), EtcdError> {
        let ended = |detail: String| EtcdError::WatchEnded {
            endpoint: self.endpoint.clone(),
            detail,
        };
        let line = match read_line(&mut self.body, &mut self.buffer).await {
            Ok(Some(line)) => line,
            Ok(None) => return Err(ended("the stream closed".into())),
            Err(e) => return Err(ended(format!("the stream broke: {e}"))),
        };
        let message: wire::StreamLine<wire::WatchResponse> = serde_json::from_slice(&line).map_err(|e| {
            ended(format!(
                "an answer that is not etcd's ({e}): {}",
                String::from_utf8_lossy(&line)
            ))
        })?;
        let Some(response) = message.result else {
            return Err(ended(format!("etcd reported {:?}", message.error)));
        };
        if response.compact_revision > 0 {
            return Err(EtcdError::Compacted {
                requested: self.start_revision,
                compact_revision: response.compact_revision,
            });
        }
        if response.canceled {
            return Err(ended(format!("etcd canceled it: {}", response.cancel_reason)));
        }
        for event in response.events {
            let kind = if event.kind == "DELETE" {
                WatchEventKind::Delete
            } else {
                WatchEventKind::Put
            };
            self.pending.push_back(WatchEvent {
                kind,
                kv: key_value(event.kv),
            });
        }
        Ok(())
    }
}

/// The next newline-terminated line of a body (without the newline), reading frames into `buffer`; None at the end
/// of the body (whatever is left stays in `buffer`).
async fn read_line(body: &mut Incoming, buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, hyper::Error> {
    loop {
        if let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            let line = line[..line.len() - 1].to_vec();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(line));
        }
        match body.frame().await {
            None => return Ok(None),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
        }
    }
}

fn tls_config(tls: &EtcdTls) -> Result<rustls::ClientConfig, EtcdError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| EtcdError::Setup(format!("TLS: {e}")))?;
    let builder = match &tls.ca_bundle {
        None => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(EtcdError::Setup(format!(
                    "no usable root certificate in the system's store ({:?}): give [fleet] ca_bundle",
                    found.errors
                )));
            }
            builder.with_root_certificates(roots)
        }
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| EtcdError::Setup(format!("cannot read the CA bundle {}: {e}", path.display())))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| EtcdError::Setup(format!("the CA bundle {} is not PEM: {e}", path.display())))?;
                roots.add(cert).map_err(|e| {
                    EtcdError::Setup(format!(
                        "the CA bundle {} holds an unusable certificate: {e}",
                        path.display()
                    ))
                })?;
            }
            builder.with_root_certificates(roots)
        }
    };
    match (&tls.client_cert, &tls.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert_path), Some(key_path)) => {
            let chain = CertificateDer::pem_file_iter(cert_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| EtcdError::Setup(format!("the client certificate {}: {e}", cert_path.display())))?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| EtcdError::Setup(format!("the client key {}: {e}", key_path.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                EtcdError::Setup(format!(
                    "the client certificate {} and key {} do not go together: {e}",
                    cert_path.display(),
                    key_path.display()
                ))
            })
        }
        _ => Err(EtcdError::Setup(
            "a client certificate needs its key and a key its certificate (client_cert and client_key)".into(),
        )),
    }
}

fn put_request(key: &[u8], value: &[u8], lease: Option<i64>) -> wire::PutRequest {
    wire::PutRequest {
        key: b64(key),
        value: b64(value),
        lease: lease.map(|l| l.to_string()),
    }
}

fn compare_json(compare: &Compare) -> wire::CompareJson {
    let (target, key) = match compare {
        Compare::ModRevision { key, .. } => ("MOD", key),
        Compare::CreateRevision { key, .. } => ("CREATE", key),
        Compare::Value { key, .. } => ("VALUE", key),
    };
    wire::CompareJson {
        target,
        key: b64(key),
        result: "EQUAL",
        mod_revision: match compare {
            Compare::ModRevision { revision, .. } => Some(revision.to_string()),
            _ => None,
        },
        create_revision: match compare {
            Compare::CreateRevision { revision, .. } => Some(revision.to_string()),
            _ => None,
        },
        value: match compare {
            Compare::Value { value, .. } => Some(b64(value)),
            _ => None,
        },
    }
}

fn compare_key(compare: &Compare) -> &[u8] {
    match compare {
        Compare::ModRevision { key, .. } | Compare::CreateRevision { key, .. } | Compare::Value { key, .. } => key,
    }
}

fn op_json(op: &TxnOp) -> wire::RequestOp {
    match op {
        TxnOp::Get { key } => wire::RequestOp::Range(wire::RangeRequest {
            key: b64(key),
            ..Default::default()
        }),
        TxnOp::Put { key, value, lease } => wire::RequestOp::Put(put_request(key, value, *lease)),
        TxnOp::Delete { key } => wire::RequestOp::Delete(wire::DeleteRequest {
            key: b64(key),
            range_end: None,
        }),
    }
}

fn key_value(kv: wire::Kv) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

/// A range read at a compacted revision, as its own error.
fn compacted(error: EtcdError, requested: i64) -> EtcdError {
    match error {
        EtcdError::Rejected { ref message, .. } if message.contains("compacted") => EtcdError::Compacted {
            requested,
            compact_revision: 0,
        },
        other => other,
    }
}

fn note(tried: &mut Vec<(String, String)>, endpoint: &str, why: String) {
    match tried.iter_mut().find(|(e, _)| e == endpoint) {
        Some(entry) => entry.1 = why,
        None => tried.push((endpoint.to_owned(), why)),
    }
}

/// Whether the TLS layer failed: a rustls error anywhere in the chain.
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The innermost cause of a client error (hyper's own message is only "client error (Connect)").
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// A key for messages: as text when it is printable, else in hex.
fn show(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}
