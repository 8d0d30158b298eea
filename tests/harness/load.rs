//! A small, bounded HTTPS load on HAProxy's TLS frontend, for tests that prove a certificate swap
//! drops no connection. Two kinds of clients, each a thread:
//! - keep-alive clients send `GET / HTTP/1.1` over one TLS connection for as long as the server keeps
//!   it open, like a browser or a connection pool; a reload shows up here;
//! - new-connection clients open a TLS connection per request and record the leaf serial served, so a
//!   test sees when the new certificate appears.
//!
//! The clients are deliberately naive, like Python's http.client in the measurements of
//! /work/shared/notes/haproxy.md: they do not check whether an idle connection was closed before
//! reusing it, and they do not retry. A request sent on a connection the server closes before
//! answering is a failure (Python's `RemoteDisconnected`).
//!
//! Bounds: a few threads, each pausing a few milliseconds between requests (2 cores), loopback only,
//! and at most `max_duration` and `max_requests`.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle, sleep};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, StreamOwned};
use rustls_pki_types::ServerName;

use super::keepalive_http::{Conn, exchange};
use super::{Sandbox, certs, tls};

/// Between two requests of one keep-alive client: HAProxy answers in well under a millisecond, so this
/// keeps the connection idle most of the time (as real keep-alive connections are) and the CPU sane.
const KEEPALIVE_PAUSE: Duration = Duration::from_millis(2);
/// Between two connections of one new-connection client: a handshake costs both sides an ECDSA
/// operation, more CPU than a request.
const NEW_CONNECTION_PAUSE: Duration = Duration::from_millis(5);
/// After a failure, so a refused port does not become a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(20);
/// A request that takes this long failed; short so that stop() does not wait long on a hung read.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct error texts kept in a report.
const MAX_ERRORS: usize = 20;

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub keepalive_clients: usize,
    pub new_connection_clients: usize,
    /// The load stops by itself after this long (counted from start)...
    pub max_duration: Duration,
    /// ...or after this many requests in total, whichever comes first.
    pub max_requests: u64,
    /// Sent as SNI and Host by every client.
    pub sni: String,
}

impl Default for LoadOptions {
    /// 4 keep-alive and 2 new-connection clients, 2 s, 100 000 requests, SNI `load.invalid` (so HAProxy
    /// serves its default certificate).
    fn default() -> LoadOptions {
        LoadOptions {
            keepalive_clients: 4,
            new_connection_clients: 2,
            max_duration: Duration::from_secs(2),
            max_requests: 100_000,
            sni: "load.invalid".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests attempted; each one either got a 200 or counts in `failed`.
    pub requests: u64,
    /// Requests that did not get a whole 200 response: connect, TLS, write or read error, timeout, a
    /// connection closed before or during the response, or another status.
    pub failed: u64,
    /// Keep-alive connections the server ended: closed or reset (whether or not a request was in
    /// flight; if one was, it also counts in `failed`), or a response with `Connection: close`.
    pub keepalive_closed_by_server: u64,
    /// Keep-alive connections opened after a client's first one (after a close or an error).
    pub keepalive_reconnects: u64,
    /// TLS handshakes completed by the new-connection clients.
    pub new_connections: u64,
    /// The first distinct error texts (at most 20), prefixed with the kind of client.
    pub errors: Vec<String>,
    /// Leaf serials served on the new-connection clients' handshakes, as [`certs::serial_hex`] prints.
    pub serials_seen: BTreeSet<String>,
    /// From start to the moment the last client stopped.
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn fail(&mut self, error: String) {
        self.failed += 1;
        self.note_error(error);
    }

    fn note_error(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    fn merge(&mut self, other: LoadReport) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.keepalive_closed_by_server += other.keepalive_closed_by_server;
        self.keepalive_reconnects += other.keepalive_reconnects;
        self.new_connections += other.new_connections;
        for error in other.errors {
            self.note_error(error);
        }
        self.serials_seen.extend(other.serials_seen);
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests in {:.2?} ({:.0}/s), {} failed, {} keep-alive connections closed by the server, \
             {} keep-alive reconnects, {} new connections, serials {:?}, errors {:?}",
            self.requests,
            self.elapsed,
            self.requests_per_sec(),
            self.failed,
            self.keepalive_closed_by_server,
            self.keepalive_reconnects,
            self.new_connections,
            self.serials_seen,
            self.errors
        )
    }
}

/// A running load. [`Load::stop`] ends it early, [`Load::wait`] lets it run to its bounds; dropping it
/// stops it too (and throws the report away).
pub struct Load {
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<LoadReport>>,
    started: Instant,
}

struct Shared {
    stop: AtomicBool,
    /// Requests claimed so far by all clients, against `max_requests`.
    claimed: AtomicU64,
    max_requests: u64,
    deadline: Instant,
}

impl Shared {
    /// Claims the next request; false once stopped, past the deadline or at the request cap.
    fn next_request(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && Instant::now() < self.deadline
            && self.claimed.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }
}

impl Sandbox {
    /// Starts load on HAProxy's TLS frontend (see the module docs).
    pub fn start_load(&self, opts: LoadOptions) -> Load {
        Load::start(self.https_port(), opts)
    }
}

impl Load {
    /// Starts load on the TLS port 127.0.0.1:`port`.
    pub fn start(port: u16, opts: LoadOptions) -> Load {
        let started = Instant::now();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            claimed: AtomicU64::new(0),
            max_requests: opts.max_requests,
            deadline: started + opts.max_duration,
        });
        let target = Target {
            port,
            sni: opts.sni.clone(),
            server_name: tls::server_name(&opts.sni),
            config: tls::unverified_config(),
        };
        let mut clients = Vec::new();
        for i in 0..opts.keepalive_clients + opts.new_connection_clients {
            let (shared, target) = (Arc::clone(&shared), target.clone());
            let keepalive = i < opts.keepalive_clients;
            let name = format!("load-{}-{i}", if keepalive { "keepalive" } else { "new" });
            let client = thread::Builder::new()
                .name(name)
                .spawn(move || {
                    if keepalive {
                        keepalive_client(&shared, &target)
                    } else {
                        new_connection_client(&shared, &target)
                    }
                })
                .expect("spawn load client thread");
            clients.push(client);
        }
        Load {
            shared,
            clients,
            started,
        }
    }

    /// Requests claimed so far by all clients (e.g. to wait until the load is under way).
    pub fn requests_so_far(&self) -> u64 {
        self.shared.claimed.load(Ordering::Relaxed)
    }

    /// Stops the clients (each finishes the request it is in) and returns the merged report.
    pub fn stop(mut self) -> LoadReport {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits until the load reaches `max_duration` or `max_requests`, and returns the merged report.
    pub fn wait(mut self) -> LoadReport {
        self.join()
    }

    fn join(&mut self) -> LoadReport {
        let mut report = LoadReport::default();
        for client in self.clients.drain(..) {
            match client.join() {
                Ok(part) => report.merge(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        report.elapsed = self.started.elapsed();
        report
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for client in self.clients.drain(..) {
            let _ = client.join();
        }
    }
}

#[derive(Clone)]
struct Target {
    port: u16,
    sni: String,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl Target {
    fn connect(&self) -> io::Result<Conn> {
        let (conn, sock) = tls::connect(self.port, self.server_name.clone(), Arc::clone(&self.config))?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(BufReader::new(StreamOwned::new(conn, sock)))
    }
}

fn keepalive_client(shared: &Shared, target: &Target) -> LoadReport {
    let mut report = LoadReport::default();
    let mut conn: Option<Conn> = None;
    let mut connected_before = false;
    while shared.next_request() {
        report.requests += 1;
        let stream = match &mut conn {
            Some(stream) => stream,
            None => match target.connect() {
                Ok(stream) => {
                    report.keepalive_reconnects += u64::from(connected_before);
                    connected_before = true;
                    conn.insert(stream)
                }
                Err(e) => {
                    report.fail(format!("keep-alive: connect: {e}"));
                    sleep(ERROR_PAUSE);
                    continue;
                }
            },
        };
        match exchange(stream, &target.sni, false) {
            Ok(response) => {
                if response.status != 200 {
                    report.fail(format!("keep-alive: status {}", response.status));
                }
                if response.close {
                    report.keepalive_closed_by_server += 1;
                    conn = None;
                }
            }
            Err(e) => {
                report.keepalive_closed_by_server += u64::from(e.closed);
                report.fail(format!("keep-alive: {}", e.text));
                conn = None;
                sleep(ERROR_PAUSE);
            }
        }
        sleep(KEEPALIVE_PAUSE);
    }
    report
}

fn new_connection_client(shared: &Shared, target: &Target) -> LoadReport {
    let mut report = LoadReport::default();
    // Parsing every leaf would cost more than the request: parse only when the DER changes.
    let mut last_leaf = Vec::new();
    while shared.next_request() {
        report.requests += 1;
        let mut stream = match target.connect() {
            Ok(stream) => stream,
            Err(e) => {
                report.fail(format!("new connection: connect: {e}"));
                sleep(ERROR_PAUSE);
                continue;
            }
        };
        report.new_connections += 1;
        match stream
            .get_ref()
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
        {
            Some(leaf) if leaf.as_ref() == last_leaf.as_slice() => {}
            Some(leaf) => {
                last_leaf = leaf.to_vec();
                report.serials_seen.insert(certs::serial_hex(&last_leaf));
            }
            None => report.note_error("new connection: server sent no certificate".to_owned()),
        }
        match exchange(&mut stream, &target.sni, true) {
            Ok(response) if response.status == 200 => {}
            Ok(response) => report.fail(format!("new connection: status {}", response.status)),
            Err(e) => report.fail(format!("new connection: {}", e.text)),
        }
        sleep(NEW_CONNECTION_PAUSE);
    }
    report
}
