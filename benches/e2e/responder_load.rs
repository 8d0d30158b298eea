//! (e): hapcert's HTTP-01 responder under wrk. The responder runs in this process, on a runtime like the one
//! `hapcert run` gives it, and logs at info level to a file as the real one logs to journald; wrk, a separate
//! process, drives it over loopback. certbot's and lego's responders live only inside an order, so there is no peer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hapcert::edge::http01::responder::{self, ChallengeTokens};
use serde::Serialize;

use crate::harness::http_get;

const TOKEN: &str = "bench-token_0123456789abcdefghijklmnopqrstuvwxyz";
const KEY_AUTHORIZATION: &str = "bench-token_0123456789abcdefghijklmnopqrstuvwxyz.thumbprint-of-the-account-key-abcdef";

#[derive(Debug, Serialize)]
pub struct LoadResult {
    pub tokens: &'static str,
    pub requests_per_sec: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// What the answers were: all 200 for the known token, all 404 for the unknown one.
    pub answers: String,
}

pub fn run(duration: Duration, log: &Path) -> Vec<LoadResult> {
    let log_file = std::fs::File::create(log).expect("create the responder log");
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log_file))
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tokens = ChallengeTokens::default();
    let _published = tokens.publish(TOKEN, KEY_AUTHORIZATION).expect("a valid token");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = runtime
        .block_on(responder::bind("127.0.0.1:0".parse().expect("an address")))
        .expect("bind the responder");
    let port = listener.local_addr().expect("local address").port();
    let server = runtime.spawn(responder::serve(listener, tokens, async {
        let _ = stopped.await;
    }));

    let base = format!("http://127.0.0.1:{port}/.well-known/acme-challenge/");
    let known = format!("{base}{TOKEN}");
    let unknown = format!("{base}no-such-token-0123456789abcdefghijklmnopqrstuv");
    let check = http_get(&known);
    assert_eq!(
        (check.status, check.text()),
        (200, KEY_AUTHORIZATION.to_owned()),
        "GET {known}"
    );
    assert_eq!(http_get(&unknown).status, 404, "GET {unknown}");

    let results = vec![
        wrk("known", &known, duration, false),
        wrk("unknown", &unknown, duration, true),
    ];
    let _ = stop.send(());
    runtime.block_on(server).expect("the responder stops");
    results
}

fn wrk(tokens: &'static str, url: &str, duration: Duration, expect_404: bool) -> LoadResult {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "--latency", "-d"])
        .arg(format!("{}s", duration.as_secs().max(1)))
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk ({e}); scripts/bench installs it with apt-get install wrk"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
    };
    let requests_per_sec = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .expect("wrk prints Requests/sec");
    let p99_ms = field("99%")
        .and_then(|v| latency_ms(&v))
        .expect("wrk --latency prints the 99% line");
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.parse().ok()))
        .expect("wrk prints the request count");
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket_errors = field("Socket errors:");
    assert!(
        socket_errors.is_none(),
        "wrk saw socket errors: {socket_errors:?}\n{text}"
    );
    let answers = if expect_404 {
        assert_eq!(non_2xx, requests, "every unknown token is a 404:\n{text}");
        "all 404".to_owned()
    } else {
        assert_eq!(non_2xx, 0, "every known token is a 200:\n{text}");
        "all 200".to_owned()
    };
    LoadResult {
        tokens,
        requests_per_sec,
        p99_ms,
        requests,
        answers,
    }
}

/// wrk's latencies: "812.00us", "1.52ms", "2.01s".
fn latency_ms(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        _ => None,
    }
}
