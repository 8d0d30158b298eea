//! From HAProxy's servers to `[[watch]]` entries, pure: which servers speak TLS, the endpoint, SNI and CA of each,
//! why one cannot be watched, and the TOML text the operator reviews.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::haproxy_cfg::{Global, Parsed, Server};

/// A `[[watch]]` the operator's config already has.
#[derive(Debug, Clone)]
pub struct Existing {
    pub name: String,
    pub endpoint: String,
    pub sni: String,
}

/// What is said of one TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A `[[watch]]` entry.
    Watch {
        /// `backend api, server api1: ssl verify required (haproxy.cfg:12)`.
        about: String,
        /// Comment lines the operator should read before pasting it.
        notes: Vec<String>,
        name: String,
        endpoint: String,
        sni: Option<String>,
        ca_bundle: Option<String>,
    },
    /// A TLS server with no entry: why, and what to do.
    Left { about: String, why: String },
}

/// One item per TLS server (and per server whose health checks alone use TLS), in the order of the config.
pub fn suggest(parsed: &Parsed, existing: &[Existing]) -> Vec<Item> {
    let mut names: BTreeSet<String> = existing.iter().map(|e| e.name.clone()).collect();
    // (endpoint, sni) → the entry that watches it.
    let mut watched: Vec<(String, String, String)> = existing
        .iter()
        .map(|e| {
            (
                e.endpoint.clone(),
                e.sni.clone(),
                format!("[[watch]] \"{}\" of hapcert.toml", e.name),
            )
        })
        .collect();
    let mut items = Vec::new();
    for server in &parsed.servers {
        let place = format!(
            "{} {}, server {}",
            server.kind.keyword(),
            printable(&server.proxy),
            printable(&server.name)
        );
        let left = |why: String| Item::Left {
            about: format!("{place} ({})", server.at),
            why,
        };
        if server.tls.ssl != Some(true) {
            if server.tls.check_ssl == Some(true) {
                items.push(left(
                    "only its health checks use TLS (check-ssl); watch the address they reach by hand".into(),
                ));
            }
            continue;
        }
        if server.template {
            items.push(left(format!(
                "server-template: its servers are made at run time from what {} resolves to; watch those by hand",
                printable(&server.address)
            )));
            continue;
        }
        if !server.unset.is_empty() {
            let vars: Vec<String> = server.unset.iter().map(|v| format!("${{{}}}", printable(v))).collect();
            items.push(left(format!(
                "it uses {}, set neither in this command's environment nor by a global setenv; HAProxy takes it from \
                 its own (the haproxy.service unit's Environment=): write this entry by hand",
                vars.join(", ")
            )));
            continue;
        }
        let (host, port) = match target(&server.address) {
            Ok(target) => target,
            Err(why) => {
                items.push(left(why));
                continue;
            }
        };
        let endpoint = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        let (verify, verify_from) = verify(server, &parsed.global);
        let check_ssl = if server.tls.check_ssl == Some(true) {
            ", check-ssl"
        } else {
            ""
        };
        let about = format!("{place}: ssl verify {verify}{verify_from}{check_ssl} ({})", server.at);
        let mut notes = Vec::new();
        for (var, value) in &server.expanded {
            notes.push(format!(
                "${{{}}} is {} in this command's environment or a global setenv; check that HAProxy's is the same",
                printable(var),
                printable(value)
            ));
        }
        if let Some(block) = &server.conditional {
            notes.push(format!(
                "it sits inside the .if at {block}, which HAProxy may leave out"
            ));
        }
        let sni = match server.tls.sni.as_deref() {
            None => {
                notes.push(format!(
                    "HAProxy sends no SNI to it: the certificate is judged against the host, {}",
                    printable(&host)
                ));
                None
            }
            Some(expr) => match literal(expr) {
                Some(name) if !name.is_empty() => Some(name),
                Some(_) => {
                    notes.push(format!(
                        "HAProxy sends an empty SNI to it: the certificate is judged against the host, {}",
                        printable(&host)
                    ));
                    None
                }
                None => {
                    notes.push(format!(
                        "HAProxy sends the SNI that `{}` gives for each request: the certificate is judged against \
                         the host, {}, unless you set sni",
                        printable(expr),
                        printable(&host)
                    ));
                    None
                }
            },
        };
        if verify == "none" {
            notes.push(
                "HAProxy does not verify this certificate (verify none); hapcert's check will, against the system's \
                 roots unless ca_bundle names its CA"
                    .into(),
            );
        }
        if let Some(crt) = &server.tls.crt {
            notes.push(format!(
                "HAProxy presents a client certificate to it (crt {}); hapcert presents none, and a server that \
                 requires one may end the handshake",
                printable(crt)
            ));
        }
        let ca_bundle = match server.tls.ca_file.as_deref() {
            // The system's roots are what hapcert trusts without a ca_bundle.
            None | Some("@system-ca") => None,
            Some(path) if path.starts_with('/') => Some(path.to_owned()),
            Some(path) => match &parsed.global.ca_base {
                Some(base) => Some(format!("{}/{path}", base.trim_end_matches('/'))),
                None => {
                    notes.push(format!(
                        "ca-file {} is relative to HAProxy's working directory: set ca_bundle to its absolute path",
                        printable(path)
                    ));
                    None
                }
            },
        };
        let judged_as = sni.clone().unwrap_or_else(|| host.clone());
        if let Some((_, _, by)) = watched.iter().find(|(e, s, _)| *e == endpoint && *s == judged_as) {
            items.push(left(format!(
                "{endpoint} with SNI {} is already watched by {by}",
                printable(&judged_as)
            )));
            continue;
        }
        let name = unique(&mut names, &format!("{}-{}", server.proxy, server.name));
        watched.push((endpoint.clone(), judged_as, format!("\"{name}\" above")));
        items.push(Item::Watch {
            about,
            notes,
            name,
            endpoint,
            sni,
            ca_bundle,
        });
    }
    items
}

/// The text to paste: a header naming the files read (`source` says where their list came from), then each item.
pub fn render(files: &[String], source: &str, items: &[Item]) -> String {
    let mut out = String::new();
    out.push_str("# [[watch]] entries for the TLS servers of HAProxy's backends, from `hapcert watch suggest`.\n");
    out.push_str("# Review each one, then paste those you keep into hapcert.toml.\n");
    let _ = writeln!(out, "# Read ({}):", printable(source));
    for file in files {
        let _ = writeln!(out, "#   {}", printable(file));
    }
    for item in items {
        out.push('\n');
        match item {
            Item::Watch {
                about,
                notes,
                name,
                endpoint,
                sni,
                ca_bundle,
            } => {
                let _ = writeln!(out, "# {about}");
                for note in notes {
                    let _ = writeln!(out, "# {note}");
                }
                out.push_str("[[watch]]\n");
                let _ = writeln!(out, "name = {}", toml_string(name));
                let _ = writeln!(out, "endpoint = {}", toml_string(endpoint));
                if let Some(sni) = sni {
                    let _ = writeln!(out, "sni = {}", toml_string(sni));
                }
                if let Some(ca) = ca_bundle {
                    let _ = writeln!(out, "ca_bundle = {}", toml_string(ca));
                }
            }
            Item::Left { about, why } => {
                let _ = writeln!(out, "# not watched: {about}: {why}");
            }
        }
    }
    out
}

/// The effective `verify` of a server, and where it came from when the server's lines do not say it.
fn verify(server: &Server, global: &Global) -> (String, &'static str) {
    match (&server.tls.verify, &global.ssl_server_verify) {
        (Some(verify), _) => (printable(verify), ""),
        (None, Some(verify)) => (printable(verify), " (global ssl-server-verify)"),
        (None, None) => ("required".into(), " (HAProxy's default)"),
    }
}

/// The name in `str(<name>)`, HAProxy's literal sample; `None` for any other expression (a converter after it
/// included).
fn literal(expr: &str) -> Option<String> {
    let inner = expr.strip_prefix("str(")?.strip_suffix(')')?;
    if inner.contains([')', ',']) {
        return None;
    }
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| inner.strip_prefix(*q).and_then(|i| i.strip_suffix(*q)))
        .unwrap_or(inner);
    Some(unquoted.to_owned())
}

/// The host and port hapcert would connect to for a server address as HAProxy reads it, or why there is none.
fn target(address: &str) -> Result<(String, u16), String> {
    let shown = printable(address);
    let rest = match address.split_once('@') {
        Some((family, rest)) => match family {
            "ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6" | "mptcp" | "mptcp4" | "mptcp6" => rest,
            "unix" | "abns" | "abnsz" | "uxst" | "uxdg" | "sockpair" | "fd" => {
                return Err(format!("{shown} is a local socket, which hapcert cannot probe"));
            }
            "udp" | "udp4" | "udp6" | "quic4" | "quic6" => {
                return Err(format!("{shown} is not TCP, and hapcert probes TLS over TCP only"));
            }
            "rhttp" => {
                return Err(format!(
                    "{shown} is a reverse-HTTP server: it connects to HAProxy, not back"
                ));
            }
            _ => return Err(format!("{shown} has an address prefix hapcert does not know")),
        },
        None => address,
    };
    if rest.starts_with('/') {
        return Err(format!("{shown} is a UNIX socket, which hapcert cannot probe"));
    }
    if rest.starts_with('_') {
        return Err(format!(
            "{shown} is a DNS SRV record, resolved at run time; watch the servers it names by hand"
        ));
    }
    // `[v6]:port`, else the port after the last colon, as HAProxy reads `::1:443`.
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return Err(format!("{shown} is not an address HAProxy reads")),
        },
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let port = match port {
        None | Some("") => {
            return Err(format!(
                "{shown} has no port: HAProxy connects to the port each client came to, so there is no one endpoint"
            ));
        }
        Some(p) if p.starts_with(['+', '-']) => {
            return Err(format!(
                "{shown}: its port is an offset from the port each client came to, so there is no one endpoint"
            ));
        }
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("{shown}: '{}' is not a port", printable(p))),
        },
    };
    if matches!(host, "" | "*" | "0.0.0.0" | "::") {
        return Err(format!(
            "{shown}: HAProxy connects to the address each client came to, so there is no one endpoint"
        ));
    }
    Ok((host.to_owned(), port))
}

/// `wanted` made a valid `[[watch]]` name (letters, digits, `-`, `_`, `.`) and unique among `taken`, which it joins.
fn unique(taken: &mut BTreeSet<String>, wanted: &str) -> String {
    let base: String = wanted
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            true => c,
            false => '-',
        })
        .collect();
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text from the config, safe on one comment line: control characters (a `\n` escape, say) are shown escaped.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::haproxy_cfg::parse;
    use super::*;

    fn items(text: &str, existing: &[Existing]) -> Vec<Item> {
        let parsed = parse(&[("h.cfg".to_owned(), text.to_owned())], &|_| None);
        suggest(&parsed, existing)
    }

    fn watch(item: &Item) -> (&str, &str, Option<&str>, Option<&str>) {
        match item {
            Item::Watch {
                name,
                endpoint,
                sni,
                ca_bundle,
                ..
            } => (name, endpoint, sni.as_deref(), ca_bundle.as_deref()),
            Item::Left { about, why } => panic!("left out: {about}: {why}"),
        }
    }

    #[test]
    fn ipv6_addresses_with_or_without_brackets_become_bracketed_endpoints() {
        assert_eq!(target("[::1]:443"), Ok(("::1".to_owned(), 443)));
        assert_eq!(target("::1:8443"), Ok(("::1".to_owned(), 8443)));
        assert_eq!(target("ipv6@[2001:db8::5]:443"), Ok(("2001:db8::5".to_owned(), 443)));
        let found = items("backend b\n  server v6 [::1]:443 ssl verify none\n", &[]);
        assert_eq!(watch(&found[0]), ("b-v6", "[::1]:443", None, None));
    }

    #[test]
    fn addresses_without_one_endpoint_are_left_out_with_why() {
        let cases = [
            ("unix@/run/api.sock", "local socket"),
            ("/run/api.sock", "UNIX socket"),
            ("abns@api", "local socket"),
            ("quic4@10.0.0.1:443", "not TCP"),
            ("10.0.0.1", "has no port"),
            ("10.0.0.1:+1000", "offset"),
            ("0.0.0.0:443", "the address each client came to"),
            ("_https._tcp.api.internal", "SRV record"),
            ("weird@10.0.0.1:443", "prefix"),
        ];
        for (address, why) in cases {
            let err = target(address).expect_err(address);
            assert!(err.contains(why), "{address}: {err}");
        }
        assert_eq!(target("ipv4@10.0.0.1:443"), Ok(("10.0.0.1".to_owned(), 443)));
        assert_eq!(target("api.internal:8443"), Ok(("api.internal".to_owned(), 8443)));
    }

    #[test]
    fn each_tls_server_becomes_an_entry_and_plain_ones_nothing() {
        let found = items(
            "global\n  ca-base /etc/haproxy/ca\n\
             backend api\n  server api1 10.0.0.5:443 ssl verify required ca-file internal.pem sni str(api.internal) check-ssl\n\
             backend web\n  server web1 10.0.0.6:80\n  server web2 10.0.0.7:80 check-ssl\n\
             backend dyn\n  server d1 10.0.0.8:443 ssl verify none sni req.hdr(host) ca-file @system-ca crt /c.pem\n\
             backend rel\n  server r1 10.0.0.9:443 ssl ca-file certs/ca.pem\n",
            &[],
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_eq!(
            watch(&found[0]),
            (
                "api-api1",
                "10.0.0.5:443",
                Some("api.internal"),
                Some("/etc/haproxy/ca/internal.pem")
            )
        );
        let Item::Watch { about, .. } = &found[0] else {
            unreachable!()
        };
        assert_eq!(
            about,
            "backend api, server api1: ssl verify required, check-ssl (h.cfg:4)"
        );
        assert!(matches!(&found[1], Item::Left { why, .. } if why.contains("check-ssl")));
        assert_eq!(watch(&found[2]), ("dyn-d1", "10.0.0.8:443", None, None));
        let Item::Watch { notes, .. } = &found[2] else {
            unreachable!()
        };
        assert!(notes.iter().any(|n| n.contains("req.hdr(host)")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("verify none")), "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| n.contains("client certificate to it (crt /c.pem)")),
            "{notes:?}"
        );
        let Item::Watch { about, .. } = &found[3] else {
            unreachable!()
        };
        assert!(about.contains("ssl verify required (HAProxy's default)"), "{about}");
        assert_eq!(
            watch(&found[3]),
            ("rel-r1", "10.0.0.9:443", None, Some("/etc/haproxy/ca/certs/ca.pem"))
        );
    }

    #[test]
    fn names_are_unique_and_an_endpoint_already_watched_is_not_proposed_again() {
        let existing = [Existing {
            name: "a-s1".into(),
            endpoint: "10.0.0.1:443".into(),
            sni: "one.internal".into(),
        }];
        let found = items(
            "backend a\n  default-server ssl verify none\n  server s1 10.0.0.1:443 sni str(one.internal)\n\
               server s1:x 10.0.0.2:443\n\
             listen a\n  server s1 10.0.0.3:443 ssl verify none\n\
             backend c\n  server copy 10.0.0.3:443 ssl verify none\n",
            &existing,
        );
        assert!(matches!(&found[0], Item::Left { why, .. } if why.contains("\"a-s1\" of hapcert.toml")));
        assert_eq!(watch(&found[1]).0, "a-s1-x");
        assert_eq!(watch(&found[2]).0, "a-s1-2");
        assert!(matches!(&found[3], Item::Left { why, .. } if why.contains("\"a-s1-2\" above")));
    }

    #[test]
    fn a_server_naming_an_unset_variable_is_left_for_the_operator() {
        let found = items("backend b\n  server s ${API}:443 ssl verify none\n", &[]);
        assert!(
            matches!(&found[0], Item::Left { why, .. } if why.contains("${API}")),
            "{found:?}"
        );
    }

    #[test]
    fn the_text_is_toml_with_every_config_word_on_a_comment_line_escaped() {
        let found = items(
            "backend \"b\\n[[x]]\"\n  server s 10.0.0.1:443 ssl verify none sni \"str(a\\\"b)\"\n",
            &[],
        );
        let text = render(
            &["/etc/haproxy/haproxy.cfg".into()],
            "the -f files of check_command",
            &found,
        );
        assert!(text.contains("#   /etc/haproxy/haproxy.cfg\n"), "{text}");
        let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        let watch = &table["watch"].as_array().unwrap()[0];
        assert_eq!(watch["name"].as_str(), Some("b---x---s"));
        assert_eq!(watch["sni"].as_str(), Some("a\"b"));
        assert!(!text.lines().any(|l| l.starts_with("[[x]]")), "{text}");
    }

    #[test]
    fn pasted_after_a_config_it_parses_into_the_watch_entries() {
        let found = items(
            "backend api
  server a1 10.0.0.5:443 ssl verify required ca-file /ca.pem sni str(api.internal)
             backend legacy
  default-server ssl verify none
  server l1 [::1]:8443
  server l2 unix@/x.sock
",
            &[],
        );
        let text = render(&["h.cfg".into()], "--file", &found);
        let config = "[acme]\ndirectory = \"letsencrypt-staging\"\n\n[[certificate]]\nname = \"www\"\ndomains = [\"example.com\"]\n";
        let pasted = format!("{config}\n{text}");
        let parsed = crate::core::config::Config::parse(&pasted, std::path::Path::new("/etc/hapcert/hapcert.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{pasted}"));
        let watches: Vec<_> = parsed
            .watch
            .iter()
            .map(|w| {
                (
                    w.name.as_str(),
                    w.endpoint.as_str(),
                    w.sni.as_str(),
                    w.ca_bundle.as_ref().map(|c| c.value.clone()),
                )
            })
            .collect();
        assert_eq!(
            watches,
            [
                ("api-a1", "10.0.0.5:443", "api.internal", Some("/ca.pem".into())),
                ("legacy-l1", "[::1]:8443", "::1", None)
            ]
        );
    }
}
