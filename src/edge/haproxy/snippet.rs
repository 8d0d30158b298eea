//! The HAProxy lines a config needs for HTTP-01, as `hapcert haproxy-config` prints them. Pure.

use std::net::SocketAddr;

use crate::core::config::ChallengeMode;

/// A complete plain-HTTP frontend (and, in side-port mode, the challenge backend). The challenge rule is written so that
/// no redirect shadows it, and the backend has no health check (hapcert listens only while it orders).
pub fn challenge_snippet(mode: ChallengeMode, bind: &str, listen: SocketAddr, thumbprint: &str) -> String {
    match mode {
        ChallengeMode::SidePort => format!(
            "# HTTP-01 through hapcert's side port ([challenge] mode = \"side-port\"), from `hapcert haproxy-config`.\n\
             frontend http_in\n    \
                 bind {bind}\n    \
                 acl acme_challenge path_beg /.well-known/acme-challenge/\n    \
                 # HAProxy runs http-request rules before use_backend: the redirect must spare the challenge path.\n    \
                 http-request redirect scheme https code 301 unless acme_challenge\n    \
                 use_backend hapcert_challenge if acme_challenge\n\
             \n\
             backend hapcert_challenge\n    \
                 # No health check: hapcert listens only while it orders, so a check would mark this DOWN (503).\n    \
                 server hapcert {listen}\n"
        ),
        ChallengeMode::Stateless => format!(
            "# Stateless HTTP-01 ([challenge] mode = \"stateless\"), from `hapcert haproxy-config`.\n\
             # HAProxy answers <token>.<account thumbprint> itself; the thumbprint changes if the account key does.\n\
             frontend http_in\n    \
                 bind {bind}\n    \
                 http-request return status 200 content-type text/plain lf-string \"%[path,field(-1,/)].{thumbprint}\" if {{ path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$ }}\n    \
                 http-request redirect scheme https code 301 unless {{ path_beg /.well-known/acme-challenge/ }}\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_port_forwards_without_a_health_check() {
        let text = challenge_snippet(ChallengeMode::SidePort, ":80", "127.0.0.1:54321".parse().unwrap(), "T");
        assert!(text.contains("    bind :80\n"));
        assert!(text.contains("http-request redirect scheme https code 301 unless acme_challenge\n"));
        assert!(text.contains("    server hapcert 127.0.0.1:54321\n"));
        let server = text.lines().find(|l| l.trim_start().starts_with("server ")).unwrap();
        assert!(!server.contains("check"), "{server}");
    }

    #[test]
    fn stateless_answers_only_well_formed_tokens() {
        let text = challenge_snippet(
            ChallengeMode::Stateless,
            "127.0.0.1:8080",
            "127.0.0.1:1".parse().unwrap(),
            "THUMB",
        );
        assert!(
            text.contains(
                r#"lf-string "%[path,field(-1,/)].THUMB" if { path_reg ^/\.well-known/acme-challenge/[A-Za-z0-9_-]+$ }"#
            ),
            "{text}"
        );
        assert!(!text.contains("backend"));
    }
}
