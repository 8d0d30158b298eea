//! A flood on the side port (issue 12, item 8): 2,000 slow connections at once, each with half a request head, held
//! open (each one the server closes comes back a second later) while the test runs, against a daemon started with systemd's default open-file limit (1,024, here the hard
//! limit too, so that raising it cannot help). Before the fix the responder took connections until the daemon ran out
//! of file descriptors: valid requests waited for the header timeout to free some, and SIGHUP could not read the
//! config. Now the responder holds a bounded number of connections and closes the least recently active one for each
//! new one, so a valid request is answered at once, and the daemon keeps descriptors for its own work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Sandbox, free_port, leaf_der_from_pem_file, raise_own_open_files, serial_hex};

const FLOOD: usize = 2000;
/// systemd's default soft limit, for units without `LimitNOFILE=`.
const DAEMON_FD_LIMIT: u64 = 1024;
/// The acceptance criterion: how long a valid request may take under the flood.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Requests timed under the flood, one every [`REQUEST_EVERY`]: 6 s in all, more than the 5 s header timeout.
const REQUESTS: u32 = 12;
const REQUEST_EVERY: Duration = Duration::from_millis(500);

/// [`FLOOD`] clients that each open a connection, send half a request head, never the rest, and hold it; when the
/// server closes one, it comes back a second later. They start all at once.
struct Flood {
    opened: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// How long a flood client waits to come back after the server closed its connection.
const COME_BACK_AFTER: Duration = Duration::from_secs(1);

impl Flood {
    fn start(addr: SocketAddr) -> Flood {
        let opened = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the flood");
        for _ in 0..FLOOD {
            let (opened, refused) = (opened.clone(), refused.clone());
            runtime.spawn(async move {
                let half_head = b"GET /.well-known/acme-challenge/flood HTTP/1.1\r\nHost: a.example.com\r\n";
                loop {
                    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(COME_BACK_AFTER).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    if stream.write_all(half_head).await.is_ok() {
                        // Until the server closes it (or answers, which it does only before closing).
                        let _ = stream.read(&mut [0u8; 64]).await;
                    }
                    drop(stream);
                    tokio::time::sleep(COME_BACK_AFTER).await;
                }
            });
        }
        Flood {
            opened,
            refused,
            runtime: Some(runtime),
        }
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    fn wait_until_opened(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.opened() < count {
            assert!(
                Instant::now() < deadline,
                "the flood opened {} connections in {timeout:?} ({} connects failed)",
                self.opened(),
                self.refused()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A GET of `path` on `addr` in one connection: the status line and the body, and how long the answer took.
fn timed_get(addr: SocketAddr, path: &str) -> (Result<String, String>, Duration) {
    let started = Instant::now();
    let result = (|| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(20)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).map_err(|e| e.to_string())?;
        Ok(reply)
    })();
    (result, started.elapsed())
}

/// The JSON log lines with `message`, and when each was written.
fn logged_at(log: &str, message: &str) -> Vec<OffsetDateTime> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["fields"]["message"].as_str() == Some(message))
        .map(|entry| {
            let at = entry["timestamp"].as_str().expect("a JSON log line has a timestamp");
            OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|e| panic!("timestamp {at:?}: {e}"))
        })
        .collect()
}

fn certificate(name: &str, domain: &str) -> String {
    format!("\n[[certificate]]\nname = {name:?}\ndomains = [{domain:?}]\n")
}

fn disk_serial(sandbox: &Sandbox, name: &str) -> Option<String> {
    let path = sandbox.cert_dir().join(format!("{name}.pem"));
    path.exists().then(|| serial_hex(&leaf_der_from_pem_file(&path)))
}

#[test]
fn under_a_flood_of_2000_slow_connections_a_valid_token_is_answered_within_a_second_and_sighup_works() {
    // The flood's sockets are this process's: 2,000 and room for the rest of the suite.
    raise_own_open_files(FLOOD as u64 + 2048);
    let sandbox = Sandbox::start();
    let metrics_port = free_port();
    let daemon_table = format!("\n[daemon]\nlisten = \"127.0.0.1:{metrics_port}\"\njitter = \"0s\"\n");
    let config = sandbox.base_config() + &daemon_table + &certificate("site", "a.example.com");
    sandbox.write_config_text(&config);
    let mut daemon = sandbox.start_daemon_with_fd_limit(
        &["--log-format", "json", "--log-level", "info,hapcert=debug"],
        DAEMON_FD_LIMIT,
    );
    daemon.wait_for("the first certificate issued", Duration::from_secs(60), |_| {
        disk_serial(&sandbox, "site").is_some()
    });
    daemon.wait_for_log("renewal pass done", Duration::from_secs(60));

    let side: SocketAddr = format!("127.0.0.1:{}", sandbox.side_port()).parse().unwrap();
    let flood = Flood::start(side);
    flood.wait_until_opened(FLOOD, Duration::from_secs(60));

    // Requests on the side port, straight to the responder, while the flood goes on: spread over more than the
    // header timeout, in which a server that holds every slow connection frees them all at once and fills up again.
    let mut slowest = Duration::ZERO;
    for n in 0..REQUESTS {
        let (reply, took) = timed_get(side, &format!("/.well-known/acme-challenge/probe{n}"));
        let reply = reply.unwrap_or_else(|e| daemon.fail(format_args!("request {n} under the flood: {e}")));
        assert!(
            reply.starts_with("HTTP/1.1 404") && reply.ends_with("unknown token\n"),
            "the responder answers request {n}: {reply}"
        );
        assert!(
            took < ANSWER_WITHIN,
            "request {n} under the flood took {took:?} ({} flood connections opened)",
            flood.opened()
        );
        slowest = slowest.max(took);
        std::thread::sleep(REQUEST_EVERY);
    }
    eprintln!("{REQUESTS} requests under the flood: the slowest answered in {slowest:?}");

    // SIGHUP with a new certificate: the config is read again, and the renewal pass that follows issues it through the
    // flooded responder (the preflight's token, then the CA's).
    sandbox.write_config_text(&(config + &certificate("other", "b.example.com")));
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("config reloaded", Duration::from_secs(20));
    daemon.wait_for("the new certificate issued", Duration::from_secs(60), |_| {
        disk_serial(&sandbox, "other").is_some()
    });

    // The preflight fetches a fresh valid token through HAProxy and the side port: from the line before the fetch to
    // the line after it.
    let log = daemon.log();
    let fetching = logged_at(&log, "preflight: fetching a test token through the public path");
    let fetched = logged_at(&log, "preflight: the challenge path works");
    assert_eq!(fetching.len(), 2, "one preflight per pass: {fetching:?}");
    assert_eq!(fetched.len(), 2, "both preflights worked: {fetched:?}");
    let took = fetched[1] - fetching[1];
    eprintln!(
        "under the flood ({} connections opened in all, {} connects failed): the preflight's token answered in {took}",
        flood.opened(),
        flood.refused()
    );
    assert!(
        took < ANSWER_WITHIN,
        "the preflight's token took {took} under the flood"
    );
    assert!(
        log.contains("connections open, its cap"),
        "the responder says it is shedding connections"
    );
    drop(flood);

    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        daemon.log()
    );
}
