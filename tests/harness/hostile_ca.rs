//! A misbehaving CA: a TLS proxy in front of the sandbox's Pebble that, when told to, answers as a broken or hostile CA
//! would. It terminates TLS with a throw-away CA of its own (hapcert's `[acme] ca_bundle` points at it) and forwards each
//! request to Pebble over TLS, one request per connection, as HTTP/1.0 (so Pebble answers without chunks and closes).
//!
//! Pebble builds every URL it hands out (directory, orders, accounts, Location) from the request's Host, which is
//! forwarded as sent: the URLs lead back to the proxy with no rewriting, and the JWS `url` of each request matches.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::Sandbox;
use super::certs::listener_pki;
use super::tls;
use super::webhook_sink::Acceptor;

/// How the CA answers from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaMode {
    /// Pebble's answers, as they are.
    Honest,
    /// The certificate download holds the leaf alone: the intermediate is dropped.
    DropIntermediate,
    /// The certificate download is cut in the middle of its last block.
    TruncateChain,
    /// Every renewal-information (ARI) answer carries this `Retry-After`.
    AriRetryAfter(String),
    /// Every new order is refused with 429 `rateLimited` and this `Retry-After`.
    RateLimited(String),
    /// A request is read, and never answered; the connection stays open.
    Hang,
    /// As `Hang`, for new orders only: the rest of the CA answers.
    HangNewOrder,
    /// Every request is answered `500 Internal Server Error` with a plain-text body.
    ServerError,
    /// The accounts known so far are forgotten: a request signed by one gets `accountDoesNotExist`. New accounts work.
    ForgetAccounts,
    /// The first POST to each alternate chain (`.../alternate/N`) is refused with `badNonce`, with Pebble's fresh
    /// nonce; the next one goes through.
    BadNonceOnAlternates,
    /// Every POST to an alternate chain is answered `500 Internal Server Error`.
    AlternatesFail,
}

struct Shared {
    mode: Mutex<CaMode>,
    /// Account URLs (JWS `kid`) seen so far, and those forgotten when `ForgetAccounts` was set.
    accounts: Mutex<(Vec<String>, Vec<String>)>,
    /// The newOrder and renewalInfo URLs' paths, from Pebble's directory.
    paths: Mutex<Paths>,
    /// "GET /dir", "POST /order-plz", ...: what reached the proxy.
    seen: Mutex<Vec<String>>,
    /// The alternate chains' paths refused once under `BadNonceOnAlternates`.
    refused_alternates: Mutex<Vec<String>>,
    stop: AtomicBool,
    pebble_port: u16,
    pebble_ca: String,
    tls: Arc<ServerConfig>,
}

#[derive(Default)]
struct Paths {
    new_order: Option<String>,
    renewal_info: Option<String>,
}

pub struct HostileCa {
    shared: Arc<Shared>,
    acceptor: Option<Acceptor>,
    ca_file: PathBuf,
}

impl HostileCa {
    /// A proxy in front of `sandbox`'s Pebble, honest until told otherwise.
    pub fn start(sandbox: &Sandbox) -> HostileCa {
        let pki = listener_pki();
        let ca_file = sandbox.dir().join("hostile-ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).expect("write the proxy's CA");
        let certs = CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the proxy's certificate");
        let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).expect("the proxy's key");
        let tls = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the proxy's TLS config");
        let shared = Arc::new(Shared {
            mode: Mutex::new(CaMode::Honest),
            accounts: Mutex::default(),
            paths: Mutex::default(),
            seen: Mutex::default(),
            refused_alternates: Mutex::default(),
            stop: AtomicBool::new(false),
            pebble_port: sandbox.pebble_port(),
            pebble_ca: std::fs::read_to_string(sandbox.pebble_listener_ca()).expect("Pebble's listener CA"),
            tls: Arc::new(tls),
        });
        let serving = shared.clone();
        let acceptor = Acceptor::start("hostile CA", move |stream| serve(&serving, stream));
        HostileCa {
            shared,
            acceptor: Some(acceptor),
            ca_file,
        }
    }

    pub fn set(&self, mode: CaMode) {
        if mode == CaMode::ForgetAccounts {
            let mut accounts = lock(&self.shared.accounts);
            accounts.1 = accounts.0.clone();
        }
        *lock(&self.shared.mode) = mode;
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port())
    }

    /// The CA that signed the proxy's certificate, for `[acme] ca_bundle`.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_file.clone()
    }

    /// What reached the proxy so far, as "METHOD /path".
    pub fn seen(&self) -> Vec<String> {
        lock(&self.shared.seen).clone()
    }

    /// The sandbox's base config with `[acme]` pointed at the proxy, and one certificate per (name, domains).
    pub fn config(&self, sandbox: &Sandbox, certs: &[(&str, &[&str])]) -> String {
        let quote = |s: String| serde_json::to_string(&s).expect("a string serializes");
        let mut text = sandbox
            .base_config()
            .replace(
                &format!("directory = {}", quote(sandbox.acme_directory())),
                &format!("directory = {}", quote(self.directory_url())),
            )
            .replace(
                &format!(
                    "ca_bundle = {}",
                    quote(sandbox.pebble_listener_ca().display().to_string())
                ),
                &format!("ca_bundle = {}", quote(self.ca_file.display().to_string())),
            );
        assert!(
            text.contains(&self.directory_url()) && text.contains("hostile-ca.pem"),
            "{text}"
        );
        for (name, domains) in certs {
            let domains: Vec<String> = domains.iter().map(|d| quote(d.to_string())).collect();
            text += &format!(
                "\n[[certificate]]\nname = {}\ndomains = [{}]\n",
                quote(name.to_string()),
                domains.join(", ")
            );
        }
        text
    }

    fn port(&self) -> u16 {
        self.acceptor.as_ref().expect("running").port()
    }
}

impl Drop for HostileCa {
    fn drop(&mut self) {
        // Hanging connections end, then the acceptor.
        self.shared.stop.store(true, Ordering::SeqCst);
        self.acceptor.take();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as it arrived.
struct Request {
    method: String,
    path: String,
    /// Every header but the connection's own, as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One answer, Pebble's or the proxy's own.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// An answer of the proxy's own, keeping Pebble's fresh nonce so the client can go on.
    fn replaced(&self, status: u16, content_type: &str, body: &str) -> Answer {
        let mut answer = Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        };
        if let Some(nonce) = self.header("Replay-Nonce") {
            answer.set_header("Replay-Nonce", nonce);
        }
        answer
    }
}

fn serve(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(tls::IO_TIMEOUT));
    let Ok(conn) = ServerConnection::new(shared.tls.clone()) else {
        return;
    };
    let mut client = StreamOwned::new(conn, stream);
    let Ok(request) = read_request(&mut client) else { return };
    lock(&shared.seen).push(format!("{} {}", request.method, request.path));
    let mode = lock(&shared.mode).clone();
    let new_order = request.method == "POST" && lock(&shared.paths).new_order.as_deref() == Some(request.path.as_str());
    if mode == CaMode::Hang || (mode == CaMode::HangNewOrder && new_order) {
        // Never answer; let go only when the test is over.
        while !shared.stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    let kid = jws_kid(&request.body);
    if let Some(kid) = &kid {
        let mut accounts = lock(&shared.accounts);
        if !accounts.0.contains(kid) {
            accounts.0.push(kid.clone());
        }
    }
    let answer = match forward(shared, &request) {
        Ok(answer) => answer,
        Err(err) => Answer {
            status: 502,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("the proxy could not reach Pebble: {err}").into_bytes(),
        },
    };
    if request.path == "/dir" && answer.status == 200 {
        remember_paths(shared, &answer.body);
    }
    let answer = misbehave(shared, &mode, &request, kid.as_deref(), answer);
    if write_answer(&mut client, &answer).is_ok() {
        client.conn.send_close_notify();
        let _ = client.flush();
    }
}

/// What `mode` makes of Pebble's `answer` to `request`.
fn misbehave(shared: &Shared, mode: &CaMode, request: &Request, kid: Option<&str>, mut answer: Answer) -> Answer {
    let paths = lock(&shared.paths);
    let is = |path: &Option<String>| path.as_deref().is_some_and(|p| request.path.starts_with(p));
    match mode {
        CaMode::Honest | CaMode::Hang | CaMode::HangNewOrder => answer,
        CaMode::TruncateChain => {
            if is_chain(&answer) {
                let keep = answer.body.len() - 100;
                answer.body.truncate(keep);
            }
            answer
        }
        CaMode::DropIntermediate => {
            if is_chain(&answer) {
                let text = String::from_utf8_lossy(&answer.body).into_owned();
                let end = "-----END CERTIFICATE-----\n";
                if let Some(at) = text.find(end) {
                    answer.body.truncate(at + end.len());
                }
            }
            answer
        }
        CaMode::AriRetryAfter(value) => {
            if is(&paths.renewal_info) {
                answer.set_header("Retry-After", value);
            }
            answer
        }
        CaMode::RateLimited(value) => {
            if request.method == "POST" && is(&paths.new_order) {
                let mut refused = answer.replaced(
                    429,
                    "application/problem+json",
                    r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders (hostile CA)","status":429}"#,
                );
                refused.set_header("Retry-After", value);
                refused
            } else {
                answer
            }
        }
        CaMode::ServerError => answer.replaced(500, "text/plain", "internal error (hostile CA)\n"),
        CaMode::BadNonceOnAlternates | CaMode::AlternatesFail if is_alternate(request) => {
            let mut refused = lock(&shared.refused_alternates);
            if *mode == CaMode::AlternatesFail {
                answer.replaced(500, "text/plain", "internal error (hostile CA)\n")
            } else if refused.contains(&request.path) {
                answer
            } else {
                refused.push(request.path.clone());
                answer.replaced(
                    400,
                    "application/problem+json",
                    r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale nonce (hostile CA)","status":400}"#,
                )
            }
        }
        CaMode::BadNonceOnAlternates | CaMode::AlternatesFail => answer,
        CaMode::ForgetAccounts => {
            let forgotten = kid.is_some_and(|kid| lock(&shared.accounts).1.iter().any(|k| k == kid));
            if forgotten {
                answer.replaced(
                    400,
                    "application/problem+json",
                    r#"{"type":"urn:ietf:params:acme:error:accountDoesNotExist","detail":"no such account (hostile CA)","status":400}"#,
                )
            } else {
                answer
            }
        }
    }
}

/// A download of one of Pebble's alternate chains (`/certZ/<serial>/alternate/<n>`).
fn is_alternate(request: &Request) -> bool {
    request.method == "POST" && request.path.contains("/alternate/")
}

fn is_chain(answer: &Answer) -> bool {
    answer
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("application/pem-certificate-chain"))
}

fn remember_paths(shared: &Shared, directory: &[u8]) {
    let Ok(directory) = serde_json::from_slice::<serde_json::Value>(directory) else {
        return;
    };
    let path = |key: &str| {
        let url = directory[key].as_str()?;
        let rest = url.strip_prefix("https://")?;
        Some(rest[rest.find('/')?..].to_owned())
    };
    *lock(&shared.paths) = Paths {
        new_order: path("newOrder"),
        renewal_info: path("renewalInfo"),
    };
}

/// The `kid` of a JWS body's protected header: the account that signed it.
fn jws_kid(body: &[u8]) -> Option<String> {
    let jws: serde_json::Value = serde_json::from_slice(body).ok()?;
    let protected = URL_SAFE_NO_PAD.decode(jws["protected"].as_str()?).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&protected).ok()?;
    header["kid"].as_str().map(str::to_owned)
}

fn read_request(stream: &mut impl Read) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p)) => (m.to_owned(), p.to_owned()),
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "no request line")),
    };
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().unwrap_or(0);
        } else if !["connection", "keep-alive", "transfer-encoding"].contains(&name.to_ascii_lowercase().as_str()) {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

/// The request to Pebble, its Host as sent; Pebble's whole answer.
fn forward(shared: &Shared, request: &Request) -> io::Result<Answer> {
    let config = tls::verifying_config(&shared.pebble_ca);
    let (conn, sock) = tls::connect(shared.pebble_port, tls::server_name("127.0.0.1"), config)?;
    let mut pebble = StreamOwned::new(conn, sock);
    let mut head = format!("{} {} HTTP/1.0\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += &format!("Content-Length: {}\r\n\r\n", request.body.len());
    pebble.write_all(head.as_bytes())?;
    pebble.write_all(&request.body)?;
    pebble.flush()?;
    let mut raw = Vec::new();
    match pebble.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "Pebble's answer has no end of headers");
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .filter(|(n, _)| {
            !["connection", "content-length", "transfer-encoding"].contains(&n.to_ascii_lowercase().as_str())
        })
        .collect();
    Ok(Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

fn write_answer(stream: &mut impl Write, answer: &Answer) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += &format!("Content-Length: {}\r\nConnection: close\r\n\r\n", answer.body.len());
    stream.write_all(head.as_bytes())?;
    stream.write_all(&answer.body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}
