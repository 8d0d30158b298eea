//! The HTTP client under instant-acme. It is ours rather than instant-acme's default for three reasons: every request
//! is counted (the benchmarks quote requests per certificate), every request is traced with its decoded JWS payload
//! (`--log-level trace` shows exactly what was sent, which is how the tests see `replaces` go out), and the
//! Retry-After of a `rateLimited` answer is kept, because instant-acme's problem type drops the headers.
//!
//! It also keeps the nonce of each certificate download for the next order. instant-acme asks `newNonce` for a fresh
//! nonce at the start of every order, while the nonce that came with the previous order's last answer (the certificate
//! download) is dropped unused with that order. Handing that one out instead saves one round trip per order; RFC 8555
//! §7.2 lets a client use the nonce of any answer. A nonce the CA has since forgotten is answered with `badNonce`,
//! which carries a fresh nonce, and the request goes out again: no worse than asking `newNonce`.
//!
//! It also records the `Link: <url>;rel="alternate"` headers of each certificate download (RFC 8555 §7.4.2): the other
//! chains the CA offers for the same certificate. instant-acme hands back only the body of that download, so this is
//! the one place that sees them; `alternates` downloads them when `preferred_chain` asks for another chain.
//!
//! Plain GETs and HEADs (directory, nonce, ARI) are retried here on network errors and 5xx, with backoff. POSTs are
//! not: a JWS carries a one-time nonce, so they are signed anew and retried one level up (see `retry_transient!`).
//!
//! Each request, its whole answer included, has `[acme] request_timeout`: a CA that accepts the connection and never
//! answers fails the request with a [`CaTimeout`] that names the URL, the timeout and the key, instead of hanging.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::core::schedule::MAX_CA_RETRY_AFTER;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Tries of one plain GET or HEAD, in all.
const GET_TRIES: u32 = 3;

/// Wait before retry number `attempt` (1-based) of a request that failed for a reason that may pass: 0.5 s, 1 s, 2 s…
pub fn transient_backoff(attempt: u32) -> Duration {
    Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1)).min(16)
}

/// What this client has seen, shared with the `Acme` session that owns it.
#[derive(Debug, Default)]
pub struct Observed {
    requests: AtomicUsize,
    rate_limited_until: Mutex<Option<SystemTime>>,
    /// The latest answer, when it was a server error: what the CA said, for a message better than the decoding error
    /// that follows when its body is not what instant-acme expects.
    server_error: Mutex<Option<String>>,
    /// The alternate chains' URLs of each recent certificate download, by the download's URL, in the CA's order.
    alternates: Mutex<Vec<(String, Vec<String>)>>,
}

impl Observed {
    /// Requests sent to the CA so far, retries included.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// "500 Internal Server Error for GET https://...", when the latest answer was a server error.
    pub fn server_error(&self) -> Option<String> {
        self.server_error.lock().expect("not poisoned").clone()
    }

    pub(super) fn record_server_error(&self, answer: Option<String>) {
        *self.server_error.lock().expect("not poisoned") = answer;
    }

    /// The alternate chains the CA listed with the certificate downloaded from `certificate_url`, in its order; empty
    /// when it listed none. Taken: asked twice, the second answer is empty.
    pub fn take_alternates(&self, certificate_url: &str) -> Vec<String> {
        let mut recorded = self.alternates.lock().expect("not poisoned");
        match recorded.iter().position(|(url, _)| url == certificate_url) {
            Some(at) => recorded.remove(at).1,
            None => Vec::new(),
        }
    }

    fn record_alternates(&self, certificate_url: String, links: Vec<String>) {
        let mut recorded = self.alternates.lock().expect("not poisoned");
        recorded.retain(|(url, _)| *url != certificate_url);
        // Orders run a few at a time and take theirs at once; a download nobody took is dropped, oldest first.
        if recorded.len() >= RECORDED_DOWNLOADS {
            recorded.remove(0);
        }
        recorded.push((certificate_url, links));
    }

    /// The Retry-After of the latest `rateLimited` answer, if any.
    pub fn rate_limited_until(&self) -> Option<SystemTime> {
        *self.rate_limited_until.lock().expect("not poisoned")
    }
}

type Hyper = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// At most this many unused nonces are kept: one per order that may start next is plenty.
const SPARE_NONCES: usize = 16;

/// Certificate downloads whose alternate links are kept until their order takes them.
const RECORDED_DOWNLOADS: usize = 64;

/// The RFC 8555 media type of a certificate download, the last answer of every order.
const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// A request to the CA that got no whole answer within `[acme] request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the CA did not answer {method} {uri} within {} ([acme] request_timeout): it is down, overloaded or stuck; try \
     again later, or raise request_timeout",
    humantime::format_duration(*.timeout)
)]
pub struct CaTimeout {
    pub method: Method,
    pub uri: http::Uri,
    pub timeout: Duration,
}

/// Cheap to clone: a clone shares the connection pool, the spare nonces and what is observed.
#[derive(Clone)]
pub struct CaHttp {
    client: Hyper,
    timeout: Duration,
    observed: Arc<Observed>,
    spare_nonces: Arc<Mutex<Vec<http::HeaderValue>>>,
}

impl CaHttp {
    /// Trusts the system's roots, and with `ca_bundle` its roots too (a private or test CA): a bundle adds to the
    /// system's trust rather than replacing it, so that pointing hapcert at a private CA's root never makes a public CA
    /// (or a proxy the system trusts) unreachable.
    pub fn new(ca_bundle: Option<&Path>, timeout: Duration, observed: Arc<Observed>) -> anyhow::Result<CaHttp> {
        let builder = HttpsConnectorBuilder::new();
        let builder = match ca_bundle {
            None => builder
                .try_with_platform_verifier()
                .context("cannot load the system's root certificates")?,
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                // What cannot be read among the system's roots is skipped: the bundle is what this config relies on.
                let (_, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("cannot read the CA bundle {}", path.display()))?
                {
                    let cert = cert.map_err(|err| {
                        anyhow::anyhow!(
                            "the CA bundle {} is not PEM: {}",
                            path.display(),
                            crate::core::pem::pem_syntax(&err)
                        )
                    })?;
                    roots
                        .add(cert)
                        .with_context(|| format!("the CA bundle {} holds an unusable certificate", path.display()))?;
                }
                builder.with_tls_config(
                    rustls::ClientConfig::builder_with_provider(
                        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
                    )
                    .with_safe_default_protocol_versions()
                    .context("TLS setup")?
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
                )
            }
        };
        let connector = builder.https_only().enable_http1().build();
        Ok(CaHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            observed,
            spare_nonces: Arc::default(),
        })
    }
}

impl CaHttp {
    /// A nonce kept from a certificate download, if one is left (see `keep_download_nonce`).
    pub fn take_spare_nonce(&self) -> Option<String> {
        let nonce = self.spare_nonces.lock().expect("not poisoned").pop()?;
        nonce.to_str().ok().map(str::to_owned)
    }
}

impl HttpClient for CaHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let observed = self.observed.clone();
        let spare_nonces = self.spare_nonces.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            // instant-acme sends HEAD only to `newNonce`.
            if parts.method == Method::HEAD
                && let Some(nonce) = spare_nonces.lock().expect("not poisoned").pop()
            {
                tracing::trace!(target: "hapcert::edge::acme::http", uri = %parts.uri, "a nonce kept from a certificate download; nothing sent");
                return Ok(nonce_answer(nonce));
            }
            let body = http_body_util::BodyExt::collect(body)
                .await
                .map_err(|err| instant_acme::Error::Other(err.into()))?
                .to_bytes();
            let idempotent = parts.method == Method::GET || parts.method == Method::HEAD;
            let mut attempt = 0;
            loop {
                attempt += 1;
                observed.requests.fetch_add(1, Ordering::Relaxed);
                trace_request(&parts.method, &parts.uri, &body);
                let request = Request::from_parts(parts.clone(), BodyWrapper::from(body.to_vec()));
                let outcome = whole_answer(&client, request, timeout).await;
                let retry = idempotent
                    && attempt < GET_TRIES
                    && match &outcome {
                        Ok(response) => response.status().is_server_error(),
                        Err(_) => true,
                    };
                if retry {
                    let wait = transient_backoff(attempt);
                    tracing::debug!(uri = %parts.uri, attempt, ?wait, "the CA did not answer; asking again");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let mut response = outcome.inspect_err(|_| observed.record_server_error(None))?;
                tame_retry_after(response.headers_mut());
                keep_download_nonce(&response, &spare_nonces);
                if is_download(&response) {
                    observed.record_alternates(parts.uri.to_string(), alternate_links(response.headers()));
                }
                observed.record_server_error(
                    response
                        .status()
                        .is_server_error()
                        .then(|| format!("{} for {} {}", response.status(), parts.method, parts.uri)),
                );
                tracing::trace!(target: "hapcert::edge::acme::http", status = %response.status(), uri = %parts.uri, "CA answered");
                if response.status() == http::StatusCode::TOO_MANY_REQUESTS
                    && let Some(until) = retry_after(response.headers())
                {
                    *observed.rate_limited_until.lock().expect("not poisoned") = Some(until);
                }
                return Ok(BytesResponse::from(response));
            }
        })
    }
}

/// Sends `request` and reads its whole answer within `timeout`.
async fn whole_answer(
    client: &Hyper,
    request: Request<BodyWrapper<Bytes>>,
    timeout: Duration,
) -> Result<http::Response<http_body_util::Full<Bytes>>, instant_acme::Error> {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| instant_acme::Error::Other(Box::new(err)))?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::BodyExt::collect(body).await?.to_bytes();
        Ok(http::Response::from_parts(parts, http_body_util::Full::new(body)))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(instant_acme::Error::Other(Box::new(CaTimeout { method, uri, timeout }))))
}

/// Keeps the nonce of a certificate download: its order is over. In one case it is used twice: when the body of the
/// download fails to arrive and the order is polled again with that nonce while another order took it. One of the two
/// then gets `badNonce`, whose answer carries a fresh nonce for the retry: a round trip, as the HEAD would have cost.
/// The spares live as long as the run's CA session, so they are minutes old at most.
fn keep_download_nonce<B>(response: &http::Response<B>, spare: &Mutex<Vec<http::HeaderValue>>) {
    if let Some(nonce) = response.headers().get("replay-nonce").filter(|_| is_download(response)) {
        let mut spare = spare.lock().expect("not poisoned");
        if spare.len() < SPARE_NONCES {
            spare.push(nonce.clone());
        }
    }
}

/// Whether `response` is a certificate download: a PEM chain.
fn is_download<B>(response: &http::Response<B>) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PEM_CHAIN))
}

/// The targets of the `Link` headers whose relation is `alternate` (RFC 8288: `<url>; rel="alternate"`, several
/// links in one header separated by commas, `rel` quoted or not, and possibly holding several space-separated
/// relations), in the order sent. Relative targets are not resolved: RFC 8555 CAs send absolute URLs, and a link that
/// is not one is dropped with the rest of what cannot be read.
pub(crate) fn alternate_links(headers: &http::HeaderMap) -> Vec<String> {
    let mut links = Vec::new();
    for value in headers.get_all(http::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>').map(|c| open + c) else {
                break;
            };
            let target = &rest[open + 1..close];
            // The parameters run to the next link; a URL holds no '<', so the next one starts there.
            let params_end = rest[close..].find('<').map_or(rest.len(), |n| close + n);
            let is_alternate = rest[close + 1..params_end].split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_end_matches(',')
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("alternate"))
            });
            if is_alternate && (target.starts_with("https://") || target.starts_with("http://")) {
                links.push(target.to_owned());
            }
            rest = &rest[params_end..];
        }
    }
    links
}

/// What `newNonce` would have answered: 200 with the nonce in `Replay-Nonce`.
fn nonce_answer(nonce: http::HeaderValue) -> BytesResponse {
    let response = http::Response::builder()
        .status(http::StatusCode::OK)
        .header("replay-nonce", nonce)
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("static response parts are valid");
    BytesResponse::from(response)
}

/// Logs the request with its JWS payload decoded. Payloads hold public material only (CSRs, public JWKs,
/// certificates for revocation, the `replaces` id); the account key signs them but is never in them.
fn trace_request(method: &Method, uri: &http::Uri, body: &Bytes) {
    if !tracing::enabled!(target: "hapcert::edge::acme::http", tracing::Level::TRACE) {
        return;
    }
    let payload = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|jws| jws.get("payload")?.as_str().map(str::to_owned))
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    tracing::trace!(target: "hapcert::edge::acme::http", %method, %uri, payload = %payload, "request to the CA");
}

/// Rewrites a Retry-After in seconds beyond [`MAX_CA_RETRY_AFTER`] (or beyond any integer) to that bound, before
/// instant-acme reads it: it adds the seconds to the clock unchecked (ARI), which panics for a value such as 2^64-1.
/// HTTP dates need no taming: they end in the year 9999 at the latest.
fn tame_retry_after(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let max = MAX_CA_RETRY_AFTER.as_secs();
    if value.parse::<u64>().is_ok_and(|secs| secs <= max) {
        return;
    }
    tracing::debug!(
        retry_after = value,
        "the CA's Retry-After is absurd; held to {max} seconds"
    );
    headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(max));
}

/// Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3), at most [`MAX_CA_RETRY_AFTER`] away: a CA's value
/// must not overflow the clock.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<SystemTime> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let now = SystemTime::now();
    let latest = now + MAX_CA_RETRY_AFTER;
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More seconds than a u64 holds is as absurd as u64::MAX.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(now + Duration::from_secs(secs).min(MAX_CA_RETRY_AFTER));
    }
    Some(SystemTime::from(http_date(value)?).min(latest))
}

/// An HTTP date (RFC 9110's IMF-fixdate, the only form a CA sends): `Retry-After` and `Date`.
pub(crate) fn http_date(value: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    Some(time::PrimitiveDateTime::parse(value.trim(), &format).ok()?.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
        let before = SystemTime::now();
        let until = retry_after(&headers).unwrap();
        let after = SystemTime::now();
        assert!(until >= before + Duration::from_secs(120) && until <= after + Duration::from_secs(120));

        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        let at: time::OffsetDateTime = retry_after(&headers).unwrap().into();
        assert_eq!(at, time::macros::datetime!(2026-10-21 07:28:00 UTC));

        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);

        // An absurd value is held to a week: `SystemTime + 10^18 s` used to panic.
        for absurd in [
            "1000000000000000000",
            "18446744073709551615",
            "100000000000000000000",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            headers.insert(http::header::RETRY_AFTER, absurd.parse().unwrap());
            let before = SystemTime::now();
            let until = retry_after(&headers).unwrap();
            assert!(
                until <= SystemTime::now() + MAX_CA_RETRY_AFTER && until >= before + MAX_CA_RETRY_AFTER,
                "{absurd}"
            );
        }
    }

    #[test]
    fn an_absurd_retry_after_in_seconds_is_held_to_the_bound_before_instant_acme_reads_it() {
        let max = MAX_CA_RETRY_AFTER.as_secs().to_string();
        for (sent, kept) in [
            ("120", "120"),
            ("18446744073709551615", max.as_str()),
            ("100000000000000000000", max.as_str()),
            ("Wed, 21 Oct 2026 07:28:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT"),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, sent.parse().unwrap());
            tame_retry_after(&mut headers);
            assert_eq!(headers[http::header::RETRY_AFTER], kept, "{sent}");
        }
        let mut none = http::HeaderMap::new();
        tame_retry_after(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn only_a_certificate_downloads_nonce_is_kept_and_it_answers_the_next_nonce_request() {
        let spare = Mutex::new(Vec::new());
        let answer = |content_type: &str, nonce: &str| {
            http::Response::builder()
                .header(http::header::CONTENT_TYPE, content_type)
                .header("replay-nonce", nonce)
                .body(())
                .unwrap()
        };
        // An order's answer: its nonce is the order's next one, in use.
        keep_download_nonce(&answer("application/json", "in-use"), &spare);
        assert!(spare.lock().unwrap().is_empty());
        keep_download_nonce(&answer("application/pem-certificate-chain", "spare-1"), &spare);
        assert_eq!(*spare.lock().unwrap(), ["spare-1"]);
        for i in 0..2 * SPARE_NONCES {
            keep_download_nonce(&answer(PEM_CHAIN, &format!("n{i}")), &spare);
        }
        assert_eq!(spare.lock().unwrap().len(), SPARE_NONCES, "bounded");

        let reused = nonce_answer(http::HeaderValue::from_static("spare-1"));
        assert_eq!(reused.parts.status, http::StatusCode::OK);
        assert_eq!(reused.parts.headers["replay-nonce"], "spare-1");
    }

    #[test]
    fn alternate_links_are_read_in_the_cas_order_whatever_the_headers_shape() {
        let mut headers = http::HeaderMap::new();
        for value in [
            r#"<https://ca.test/dir>;rel="index""#,
            r#"<https://ca.test/cert/1/1>;rel="alternate", <https://ca.test/cert/1/2> ; rel=alternate"#,
            r#"<https://ca.test/cert/1/3>; title="x;y"; rel="up alternate""#,
            r#"<relative/4>;rel="alternate""#,
            r#"<https://ca.test/cert/1/5>;rel="alternates""#,
        ] {
            headers.append(http::header::LINK, value.parse().unwrap());
        }
        assert_eq!(
            alternate_links(&headers),
            [
                "https://ca.test/cert/1/1",
                "https://ca.test/cert/1/2",
                "https://ca.test/cert/1/3"
            ]
        );
        assert!(alternate_links(&http::HeaderMap::new()).is_empty());
    }

    #[test]
    fn a_downloads_alternates_are_taken_once_and_few_are_kept() {
        let observed = Observed::default();
        observed.record_alternates("https://ca.test/cert/1".into(), vec!["https://ca.test/cert/1/1".into()]);
        assert_eq!(observed.take_alternates("https://ca.test/cert/2"), Vec::<String>::new());
        assert_eq!(
            observed.take_alternates("https://ca.test/cert/1"),
            ["https://ca.test/cert/1/1"]
        );
        assert!(observed.take_alternates("https://ca.test/cert/1").is_empty());
        for i in 0..2 * RECORDED_DOWNLOADS {
            observed.record_alternates(format!("https://ca.test/cert/{i}"), Vec::new());
        }
        assert_eq!(observed.alternates.lock().unwrap().len(), RECORDED_DOWNLOADS);
    }

    #[test]
    fn transient_backoff_doubles_and_is_capped() {
        assert_eq!(transient_backoff(1), Duration::from_millis(500));
        assert_eq!(transient_backoff(2), Duration::from_secs(1));
        assert_eq!(transient_backoff(3), Duration::from_secs(2));
        assert_eq!(transient_backoff(20), Duration::from_secs(8));
    }

    #[tokio::test]
    async fn a_ca_that_accepts_and_never_answers_fails_the_request_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, keeps each connection open, and never says a word.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let observed = Arc::new(Observed::default());
        let http = CaHttp::new(None, Duration::from_millis(300), observed.clone()).unwrap();
        let url = format!("https://{addr}/dir");
        let request = Request::get(&url).body(BodyWrapper::from(Vec::new())).unwrap();
        let started = std::time::Instant::now();
        let err = match http.request(request).await {
            Err(err) => err.to_string(),
            Ok(answer) => panic!("an answer from a silent CA: {:?}", answer.parts.status),
        };
        assert_eq!(
            err,
            format!(
                "the CA did not answer GET {url} within 300ms ([acme] request_timeout): it is down, overloaded or \
                 stuck; try again later, or raise request_timeout"
            )
        );
        // Three tries of 300 ms with 0.5 s and 1 s between them, not forever.
        assert_eq!(observed.requests(), GET_TRIES as usize);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        silent.abort();
    }
}
