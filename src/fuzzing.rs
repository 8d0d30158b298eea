//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz; `scripts/fuzz` runs them). Not an API: each function takes
//! the raw input, hands it to the same parser the program uses, and asserts what must hold for any input. A panic here
//! is a finding. Hidden from the docs, and kept out of every other module's way: nothing in the crate calls it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use time::macros::datetime;

use crate::core::ari::{self, RenewalInfo};
use crate::core::config::{self, Config, FileOwner};
use crate::core::pem::{Bundle, CertFacts};
use crate::core::schedule::MAX_CA_RETRY_AFTER;
use crate::edge::haproxy::reply;
use crate::edge::http01::responder::{self, ChallengeTokens, TokenGuard};
use crate::edge::tally::Tally;
use crate::import::certbot::{self, CertbotTree, LineageFiles, PlanOptions, ReadFile};
use crate::import::configobj;

/// `hapcert check-config`'s pure part: the text of a config file, parsed and validated, then summarised or its errors
/// written out. Only UTF-8 reaches the parser (the file is read with `read_to_string`).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new(config::DEFAULT_CONFIG_PATH)) {
        Ok(config) => {
            let owner = FileOwner { uid: None, gid: None };
            let summary = config::summary(&config, owner, "none yet");
            assert!(!summary.is_empty());
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refused config names at least one problem");
            let _ = errors.to_string();
        }
    }
}

/// A combined PEM as HAProxy loads it and as hapcert reads it back. What parses, once written in HAProxy's layout, parses
/// again to the same blocks.
pub fn pem(data: &[u8]) {
    let holds = Bundle::holds_certificate(data);
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    assert!(holds.is_ok(), "Bundle::parse took what holds_certificate refused");
    let _ = CertFacts::of(&bundle.leaf(), false);
    let _ = bundle.facts();
    if let Ok(layout) = bundle.to_haproxy_pem() {
        let again = Bundle::parse(layout.as_bytes()).expect("the written layout parses again");
        assert_eq!(again.certs, bundle.certs);
        assert_eq!(
            again.key.as_ref().map(|k| k.secret_der().to_vec()),
            bundle.key.as_ref().map(|k| k.secret_der().to_vec())
        );
    }
}

/// A Runtime API reply, as the socket client hands it over (bytes read to the end, decoded lossily), through every
/// reader of replies.
pub fn haproxy_reply(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let complete = text.ends_with("\n\n");
    let path = "/tmp/hx/certs/a.example.pem";
    let parsed = [
        reply::cert_list(&text).is_some(),
        reply::cert_info(&text).is_some(),
        reply::crt_lists(&text).is_some(),
        reply::crt_list_files(&text).is_some(),
        reply::proc_info(&text).is_some(),
        reply::ca_file_list(&text).is_some() || reply::ca_file_info(&text).is_some(),
        reply::crl_file_list(&text).is_some() || reply::crl_file_info(&text).is_some(),
        reply::set_accepted(&text, path),
        reply::commit_succeeded(&text, path),
        reply::abort_succeeded(&text, path),
        reply::new_succeeded(&text, path),
        reply::crt_list_add_succeeded(&text, path, "/tmp/hx/certs"),
    ];
    // A reply cut off before its closing empty line is never taken for a whole one.
    assert!(complete || !parsed.contains(&true), "a truncated reply was accepted");
}

/// A certbot renewal conf, through the configobj reader and the whole import plan for one lineage whose files are
/// good: a conf the import accepts yields a config that hapcert itself accepts.
pub fn certbot_renewal_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let conf_path = PathBuf::from("/etc/letsencrypt/renewal/example.com.conf");
    let _ = configobj::parse(text, &conf_path);
    let (fullchain, privkey) = lineage_pems();
    let tree = CertbotTree {
        config_dir: PathBuf::from("/etc/letsencrypt"),
        lineages: vec![LineageFiles {
            name: "example.com".into(),
            conf_path,
            conf_text: Ok(text.to_owned()),
            fullchain: Ok(ReadFile {
                bytes: fullchain.as_bytes().to_vec(),
                source: PathBuf::from("archive/example.com/fullchain1.pem"),
            }),
            privkey: Ok(ReadFile {
                bytes: privkey.as_bytes().to_vec(),
                source: PathBuf::from("archive/example.com/privkey1.pem"),
            }),
        }],
        hook_scripts: Vec::new(),
        accounts: Vec::new(),
    };
    let options = PlanOptions {
        cert_dir: PathBuf::from("/etc/haproxy/certs"),
        now: datetime!(2026-12-01 00:00 UTC),
    };
    let plan = certbot::plan(&tree, &options);
    assert_eq!(plan.lineages.len() + plan.skipped.len(), 1);
    if let Err(problem) = certbot::validate_generated(&plan, Path::new(config::DEFAULT_CONFIG_PATH)) {
        panic!("{problem}");
    }
    let _ = certbot::render_report(&tree, &plan, &[], config::DEFAULT_CONFIG_PATH);
}

/// A throwaway self-signed certificate for example.com and its key, made once per fuzzing process.
fn lineage_pems() -> &'static (String, String) {
    static PEMS: OnceLock<(String, String)> = OnceLock::new();
    PEMS.get_or_init(|| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let params = rcgen::CertificateParams::new(vec!["example.com".to_owned(), "www.example.com".to_owned()])
            .expect("valid names");
        let cert = params.self_signed(&key).expect("a self-signed certificate");
        (cert.pem(), key.serialize_pem())
    })
}

/// The CA's renewal information and Retry-After. The first line is a Retry-After header value; the rest is JSON, read
/// both as the CA's `renewalInfo` answer (then recorded as a run records it) and as the state's stored form.
pub fn ari(data: &[u8]) {
    let (header, json) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let retry_after = http::HeaderValue::from_bytes(header)
        .ok()
        .and_then(|value| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, value);
            let before = SystemTime::now();
            let until = crate::edge::acme::http::retry_after(&headers)?;
            assert!(
                until <= SystemTime::now() + MAX_CA_RETRY_AFTER,
                "Retry-After past the bound"
            );
            Some(until.duration_since(before).unwrap_or(Duration::ZERO))
        })
        .unwrap_or(Duration::ZERO);

    let now = datetime!(2026-12-01 12:00 UTC);
    if let Some(suggested) = crate::edge::acme::suggested_from_json(json, retry_after) {
        let id = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
        for unit in [0.0, 0.5, 0.999_999_999] {
            let first = ari::record(None, id, suggested.clone(), now, unit);
            let again = ari::record(Some(&first), id, suggested.clone(), now, 0.25);
            let (Some(window), Some(kept)) = (first.window_for(id), again.window_for(id)) else {
                panic!("record keeps an ARI window");
            };
            assert_eq!(window.renew_at, kept.renew_at, "an unchanged window keeps its moment");
            assert!(window.renew_at >= window.start && window.renew_at <= window.start.max(window.end));
            assert!(window.next_check > now && window.next_check <= now + ari::ARI_RETRY_AFTER.1);
            assert!(!ari::needs_check(Some(&first), id, now));
            state_round_trip(&first);
        }
    }
    if let Ok(stored) = serde_json::from_slice::<RenewalInfo>(json) {
        let _ = ari::needs_check(Some(&stored), "a.b", now);
        state_round_trip(&stored);
    }
}

fn state_round_trip(info: &RenewalInfo) {
    let json = serde_json::to_string(info).expect("renewal information serializes");
    let back: RenewalInfo = serde_json::from_str(&json).expect("serialized renewal information reads back");
    assert_eq!(&back, info);
}

/// The HTTP-01 responder's answer to one request. The first line is the method, the rest the request target as it
/// comes on the request line. Only the published token's own path is answered, with its key authorization.
pub fn responder(data: &[u8]) {
    const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    const KEY_AUTHORIZATION: &str =
        "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
    static PUBLISHED: OnceLock<(ChallengeTokens, TokenGuard)> = OnceLock::new();
    static UNKNOWN: OnceLock<Mutex<Tally>> = OnceLock::new();

    let (method, target) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"GET"[..], data),
    };
    let Ok(method) = http::Method::from_bytes(method) else {
        return;
    };
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let Ok(request) = http::Request::builder().method(method.clone()).uri(uri).body(()) else {
        return;
    };
    let (tokens, _) = PUBLISHED.get_or_init(|| {
        let tokens = ChallengeTokens::default();
        let guard = tokens.publish(TOKEN, KEY_AUTHORIZATION).expect("a base64url token");
        (tokens, guard)
    });
    let unknown = UNKNOWN.get_or_init(Default::default);
    let peer = SocketAddr::from(([192, 0, 2, 1], 40000));

    let response = responder::answer(tokens, unknown, &request, peer);
    let expected = request.uri().path() == format!("/.well-known/acme-challenge/{TOKEN}")
        && (method == http::Method::GET || method == http::Method::HEAD);
    assert_eq!(
        response.status() == http::StatusCode::OK,
        expected,
        "{method} {}",
        request.uri()
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    type Target = fn(&[u8]);

    /// Every seed (and every input a fuzzer once crashed on) passes its target, under `cargo test` alone; `scripts/fuzz
    /// --corpus-only` does the same with the fuzzing build, and mutates them for a few seconds.
    #[test]
    fn every_input_in_the_corpus_passes_its_target() {
        let targets: [(&str, Target); 6] = [
            ("config", super::config),
            ("pem", super::pem),
            ("haproxy_reply", super::haproxy_reply),
            ("certbot_renewal_conf", super::certbot_renewal_conf),
            ("ari", super::ari),
            ("responder", super::responder),
        ];
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (target, run) in targets {
            let dir = corpus.join(target);
            let mut inputs = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                if std::panic::catch_unwind(|| run(&data)).is_err() {
                    panic!("{} fails its target {target}", path.display());
                }
                inputs += 1;
            }
            assert!(inputs >= 5, "{target} has {inputs} seeds in {}", dir.display());
        }
    }
}
