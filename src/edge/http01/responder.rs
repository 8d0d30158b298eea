//! The HTTP-01 responder on the side port that HAProxy forwards `/.well-known/acme-challenge/` to. It answers the key
//! authorization for tokens of pending orders and 404 for anything else. It is up only while orders are pending.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::core::challenge::{Challenge, ChallengeKind, ChallengePublisher};
use crate::core::config::is_base64url;
use crate::edge::tally::{Summary, Tally};

const PREFIX: &str = "/.well-known/acme-challenge/";
/// RFC 8555 tokens carry at least 128 bits; CAs send 43 characters. Anything far longer is not a token.
const MAX_TOKEN_LEN: usize = 256;

/// Tokens of pending challenges and their key authorizations, shared by the orders and the server.
#[derive(Clone, Default)]
pub struct ChallengeTokens {
    inner: Arc<Mutex<HashMap<String, String>>>,
}

impl ChallengeTokens {
    /// Publishes a token until the returned guard is dropped, which happens when its order ends, however it ends.
    pub fn publish(&self, token: &str, key_authorization: &str) -> anyhow::Result<TokenGuard> {
        anyhow::ensure!(
            is_token(token),
            "the CA sent a challenge token that is not base64url: {token:?}"
        );
        self.inner
            .lock()
            .expect("token map lock")
            .insert(token.to_owned(), key_authorization.to_owned());
        Ok(TokenGuard {
            tokens: self.clone(),
            token: token.to_owned(),
        })
    }

    fn lookup(&self, token: &str) -> Option<String> {
        self.inner.lock().expect("token map lock").get(token).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("token map lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The HTTP-01 answers, published into the responder's memory.
impl ChallengePublisher for ChallengeTokens {
    type Published = TokenGuard;

    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn publish(&self, challenge: Challenge<'_>) -> impl Future<Output = anyhow::Result<TokenGuard>> + Send {
        std::future::ready(ChallengeTokens::publish(
            self,
            challenge.token,
            challenge.key_authorization,
        ))
    }

    /// Served from memory as soon as published.
    async fn settle(&self, _: &[TokenGuard]) -> anyhow::Result<()> {
        Ok(())
    }

    async fn withdraw(&self, published: Vec<TokenGuard>) {
        drop(published);
    }
}

pub struct TokenGuard {
    tokens: ChallengeTokens,
    token: String,
}

impl Drop for TokenGuard {
    fn drop(&mut self) {
        self.tokens.inner.lock().expect("token map lock").remove(&self.token);
    }
}

fn is_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_LEN && token.bytes().all(is_base64url)
}

/// Binds the side port, with an error that names the address and the usual culprits.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    crate::edge::http_server::listen(addr).with_context(|| {
        format!("cannot listen on {addr} for HTTP-01 ([challenge] listen); is another program (certbot --standalone, another hapcert) using it?")
    })
}

/// Serves until `shutdown` completes, then drops every open connection: by then no order needs an answer.
pub async fn serve(listener: TcpListener, tokens: ChallengeTokens, shutdown: impl Future<Output = ()>) {
    let unknown = Arc::new(Mutex::new(Tally::default()));
    let tally = unknown.clone();
    let answer = move |req: &Request<Incoming>, peer: SocketAddr| answer(&tokens, &tally, req, peer);
    crate::edge::http_server::serve(listener, "challenge responder", answer, shutdown).await;
    if let Some(summary) = unknown.lock().expect("tally lock").finish(Instant::now()) {
        log_unknown_tokens(summary);
    }
}

/// One request's answer; generic over the body, which it never reads, so that the fuzz target can call it.
pub(crate) fn answer<B>(
    tokens: &ChallengeTokens,
    unknown: &Mutex<Tally>,
    req: &Request<B>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    let Some(token) = req.uri().path().strip_prefix(PREFIX).filter(|t| is_token(t)) else {
        tracing::debug!(%peer, path = req.uri().path(), "challenge responder: not a challenge path");
        return reply(StatusCode::NOT_FOUND, "not found\n".into());
    };
    match tokens.lookup(token) {
        Some(key_authorization) => {
            tracing::debug!(%peer, token, "answered an HTTP-01 challenge");
            reply(StatusCode::OK, key_authorization)
        }
        None => {
            // A scanner can send thousands: each at debug, and a count at INFO at most once a minute.
            tracing::debug!(%peer, token, "HTTP-01 request for an unknown token: no pending order has it");
            if let Some(summary) = unknown.lock().expect("tally lock").record(Instant::now()) {
                log_unknown_tokens(summary);
            }
            reply(StatusCode::NOT_FOUND, "unknown token\n".into())
        }
    }
}

fn log_unknown_tokens(Summary { count: requests, since }: Summary) {
    match since {
        // The responder's first (`requests` is 1): said at once, with where the others will go.
        None => tracing::info!(
            "an HTTP-01 request for an unknown token (no pending order has it); such requests are logged at debug, \
             and counted here at most once a minute"
        ),
        Some(since) => tracing::info!(
            "{requests} HTTP-01 request(s) for unknown tokens in the last {} s",
            since.as_secs()
        ),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, raw: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    fn request(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn answers_known_tokens_only_and_forgets_them_when_the_order_ends() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = ChallengeTokens::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tokens.clone(), async {
            stopped.await.ok();
        }));

        let guard = tokens.publish("tok_EN-1", "tok_EN-1.thumb").unwrap();
        let ok = get(addr, &request("/.well-known/acme-challenge/tok_EN-1")).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntok_EN-1.thumb"), "{ok}");

        for path in [
            "/.well-known/acme-challenge/other",
            "/.well-known/acme-challenge/a.b",
            "/",
            "/.well-known/acme-challenge/",
        ] {
            let reply = get(addr, &request(path)).await;
            assert!(reply.starts_with("HTTP/1.1 404"), "{path}: {reply}");
        }
        let post = get(addr, "POST /.well-known/acme-challenge/tok_EN-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");

        drop(guard);
        assert!(tokens.is_empty());
        let gone = get(addr, &request("/.well-known/acme-challenge/tok_EN-1")).await;
        assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");

        stop.send(()).unwrap();
        server.await.unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the port is closed after shutdown"
        );
    }

    #[tokio::test]
    async fn bounds_request_heads_and_rejects_bad_tokens() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, ChallengeTokens::default(), std::future::pending()));
        let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n", "a".repeat(64 * 1024));
        let reply = get(addr, &huge).await;
        assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 431"), "{reply}");
        assert!(ChallengeTokens::default().publish("../etc", "x").is_err());
        assert!(ChallengeTokens::default().publish(&"a".repeat(300), "x").is_err());
    }

    /// Every log line written while it is the thread's subscriber, at debug and above, without colour.
    #[derive(Clone, Default)]
    struct CapturedLog(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for CapturedLog {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl CapturedLog {
        fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    #[tokio::test]
    async fn a_flood_of_unknown_tokens_logs_each_at_debug_and_a_summary_at_info() {
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // The test runtime is single-threaded: the server's tasks run on this thread, under this subscriber.
        let _subscriber = tracing::subscriber::set_default(subscriber);

        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, ChallengeTokens::default(), async {
            stopped.await.ok();
        }));
        for n in 0..1000 {
            let reply = get(addr, &request(&format!("/.well-known/acme-challenge/flood{n}"))).await;
            assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        }
        stop.send(()).unwrap();
        server.await.unwrap();

        let lines = log.lines();
        let count = |level: &str, about: &str| lines.iter().filter(|l| l.contains(level) && l.contains(about)).count();
        let info = count(" INFO ", "HTTP-01");
        assert!((1..=2).contains(&info), "{info} INFO lines:\n{}", lines.join("\n"));
        assert_eq!(count(" DEBUG ", "unknown token"), 1000);
    }

    #[tokio::test]
    async fn a_taken_port_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr).await.unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("cannot listen on {addr}")),
            "{err:#}"
        );
    }
}
