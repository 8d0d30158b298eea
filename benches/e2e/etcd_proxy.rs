//! A counting TCP proxy in front of an etcd member, for the idle-load figure: hapcert counts its requests to the CA
//! itself, but not those to etcd, and the figure must come from the wire rather than from the code under test.
//!
//! hapcert speaks to etcd's JSON gateway over HTTP/1.1 (plain HTTP in the fleet sandbox): every call is one POST, on a
//! kept-alive connection or a new one, and the watch is one long POST whose answer streams. So the client's side of
//! each connection is parsed as a sequence of requests (request line, headers, a Content-Length body) and each request
//! is counted under its path; the server's side is copied as it comes. Nothing is changed in either direction.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Default)]
struct Counts {
    /// Requests seen per path, since the last [`CountingProxy::reset`].
    by_path: Mutex<BTreeMap<String, usize>>,
    /// Connections accepted since the last reset.
    connections: AtomicUsize,
}

/// One listener per upstream member, all counting into the same totals. Dropping it stops accepting; connections that
/// are open end when either side closes them.
pub struct CountingProxy {
    counts: Arc<Counts>,
    listeners: Vec<(String, Arc<AtomicBool>)>,
}

impl CountingProxy {
    /// Listens on a free port of 127.0.0.1 for each `http://host:port` upstream; see [`CountingProxy::endpoints`].
    pub fn start(upstreams: &[String]) -> CountingProxy {
        let counts = Arc::new(Counts::default());
        let mut listeners = Vec::new();
        for upstream in upstreams {
            let target = upstream
                .strip_prefix("http://")
                .unwrap_or_else(|| panic!("the proxy forwards plain HTTP: expected http://host:port, got {upstream}"))
                .trim_end_matches('/')
                .to_owned();
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind the counting proxy on 127.0.0.1");
            let local = format!("http://{}", listener.local_addr().expect("the proxy's address"));
            let stopped = Arc::new(AtomicBool::new(false));
            let (counts, stop) = (counts.clone(), stopped.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    counts.connections.fetch_add(1, Ordering::Relaxed);
                    let (counts, target) = (counts.clone(), target.clone());
                    thread::spawn(move || relay(client, &target, &counts));
                }
            });
            listeners.push((local, stopped));
        }
        CountingProxy { counts, listeners }
    }

    /// The proxy's endpoints, in the order of the upstreams given to [`CountingProxy::start`].
    pub fn endpoints(&self) -> Vec<String> {
        self.listeners.iter().map(|(local, _)| local.clone()).collect()
    }

    pub fn reset(&self) {
        self.counts.by_path.lock().expect("proxy counts").clear();
        self.counts.connections.store(0, Ordering::Relaxed);
    }

    /// (requests per path, connections accepted) since the last reset.
    pub fn snapshot(&self) -> (BTreeMap<String, usize>, usize) {
        (
            self.counts.by_path.lock().expect("proxy counts").clone(),
            self.counts.connections.load(Ordering::Relaxed),
        )
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        for (local, stopped) in &self.listeners {
            stopped.store(true, Ordering::SeqCst);
            // accept() blocks: one connection wakes the loop, which then sees the flag.
            let _ = TcpStream::connect(local.trim_start_matches("http://"));
        }
    }
}

fn relay(mut client: TcpStream, target: &str, counts: &Counts) {
    let Ok(mut server) = TcpStream::connect(target) else {
        // The daemon sees a closed connection, as it would from a member that is down, and fails over.
        return;
    };
    let (Ok(mut client_back), Ok(mut server_back)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut server_back, &mut client_back);
        let _ = client_back.shutdown(Shutdown::Write);
    });
    let mut parser = RequestParser::default();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for path in parser.feed(&buffer[..n]) {
            *counts.by_path.lock().expect("proxy counts").entry(path).or_default() += 1;
        }
        if server.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// Splits a client's byte stream into HTTP/1.1 requests: headers up to the blank line, then Content-Length bytes of
/// body. The gateway's requests are JSON with a length; a chunked request would be miscounted, so it panics instead.
#[derive(Default)]
struct RequestParser {
    head: Vec<u8>,
    /// Body bytes of the current request still to skip.
    body_left: usize,
}

impl RequestParser {
    /// The paths of the requests whose headers ended within `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut paths = Vec::new();
        let mut pending = bytes.to_vec();
        while !pending.is_empty() {
            if self.body_left > 0 {
                let skip = self.body_left.min(pending.len());
                self.body_left -= skip;
                pending.drain(..skip);
                continue;
            }
            self.head.append(&mut pending);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            // What follows the headers is body, then perhaps the next request.
            pending = self.head.split_off(end + 4);
            let head = String::from_utf8_lossy(&self.head[..end]).into_owned();
            self.head.clear();
            let mut lines = head.lines();
            let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("?");
            paths.push(path.to_owned());
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    self.body_left = value
                        .parse()
                        .unwrap_or_else(|_| panic!("expected a number in Content-Length, saw {value:?} in {head:?}"));
                }
                assert!(
                    !(name == "transfer-encoding" && value.contains("chunked")),
                    "expected requests with a Content-Length from hapcert's etcd client, saw a chunked one: {head:?}"
                );
            }
        }
        paths
    }
}
