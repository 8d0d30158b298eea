//! What `haproxy-config --check` finds in HAProxy's configuration, pure: the five things hapcert relies on, each
//! present, missing, doubled or wrong, with the file, the line and the fix. The files are read by
//! `crate::watch::haproxy_cfg`, the one reader of HAProxy's syntax.

use std::net::SocketAddr;

use crate::core::config::ChallengeMode;
use crate::watch::haproxy_cfg::{Location, Parsed, Section};

/// What hapcert's config says HAProxy must match.
#[derive(Debug, Clone)]
pub struct Expect {
    pub mode: ChallengeMode,
    /// `[challenge] listen`: where the challenge backend must send.
    pub listen: SocketAddr,
    /// `[haproxy] cert_dir`.
    pub cert_dir: String,
    /// `[haproxy] runtime_api`, as written.
    pub runtime_api: Option<String>,
    /// `[haproxy] master_socket` is set: hot updates go through it when there is no runtime_api.
    pub master_socket: bool,
}

/// The things checked, in the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// Port 80 sends the challenge path to hapcert, and no rule answers it first.
    ChallengeRoute,
    /// The side port's backend, without a health check.
    ChallengeBackend,
    /// `stats socket ... level admin` at `runtime_api`, once.
    AdminSocket,
    /// `option idle-close-on-response` in the frontends hapcert's certificates and challenges pass.
    IdleClose,
    /// A default certificate named before the cert directory.
    DefaultCertificate,
    /// One `defaults` section shadowed by a later one.
    Defaults,
}

impl Item {
    pub fn label(self) -> &'static str {
        match self {
            Item::ChallengeRoute => "challenge route",
            Item::ChallengeBackend => "challenge backend",
            Item::AdminSocket => "admin socket",
            Item::IdleClose => "idle-close",
            Item::DefaultCertificate => "default cert",
            Item::Defaults => "defaults",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Missing,
    Duplicated,
    Wrong,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Missing => "MISSING",
            Verdict::Duplicated => "DOUBLED",
            Verdict::Wrong => "WRONG",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub item: Item,
    pub verdict: Verdict,
    /// The line it is about; `None` when what is missing has no place yet.
    pub at: Option<Location>,
    pub message: String,
    /// What to change; empty for an OK.
    pub fix: String,
}

impl Finding {
    fn ok(item: Item, at: Option<Location>, message: String) -> Finding {
        Finding {
            item,
            verdict: Verdict::Ok,
            at,
            message,
            fix: String::new(),
        }
    }

    fn bad(item: Item, verdict: Verdict, at: Option<Location>, message: String, fix: String) -> Finding {
        Finding {
            item,
            verdict,
            at,
            message,
            fix,
        }
    }
}

const CHALLENGE_PATH: &str = "/.well-known/acme-challenge";
const APPEND: &str = "the lines of /usr/share/doc/hapcert/haproxy-debian.cfg (or `hapcert haproxy-config`)";

/// Every finding, OK ones included.
pub fn judge(parsed: &Parsed, expect: &Expect) -> Vec<Finding> {
    let mut findings = Vec::new();
    let plain = plain_http_frontends(parsed);
    let backend = challenge_route(parsed, expect, &plain, &mut findings);
    if expect.mode == ChallengeMode::SidePort {
        challenge_backend(parsed, expect, backend, &mut findings);
    }
    admin_socket(parsed, expect, &mut findings);
    let tls = cert_dir_frontends(parsed, &expect.cert_dir);
    idle_close(parsed, plain.iter().chain(&tls), &mut findings);
    default_certificate(parsed, expect, &tls, &mut findings);
    shadowed_defaults(parsed, &mut findings);
    findings
}

/// The frontend and listen sections with a plain (no `ssl`) bind on port 80, by index.
fn plain_http_frontends(parsed: &Parsed) -> Vec<usize> {
    proxies(parsed)
        .filter(|(_, s)| {
            s.lines_of("bind").any(|bind| {
                let on_80 = bind
                    .words
                    .get(1)
                    .is_some_and(|a| a.split(',').any(|one| one.ends_with(":80")));
                on_80 && !bind.words.iter().any(|w| w == "ssl")
            })
        })
        .map(|(i, _)| i)
        .collect()
}

fn proxies(parsed: &Parsed) -> impl Iterator<Item = (usize, &Section)> {
    parsed
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.keyword.as_str(), "frontend" | "listen"))
}

/// One term of an ACL condition: a named ACL or an anonymous `{ ... }` one, maybe negated.
#[derive(Debug)]
struct Term {
    negated: bool,
    /// It matches the challenge path.
    challenge: bool,
}

/// The condition of a rule: the terms after `if` or `unless`, as OR of ANDs. `None` when the rule has none.
fn condition(words: &[String], challenge_acls: &[String]) -> Option<(bool, Vec<Vec<Term>>)> {
    let at = words.iter().position(|w| w == "if" || w == "unless")?;
    let unless = words[at] == "unless";
    let mut branches = vec![Vec::new()];
    let mut i = at + 1;
    while i < words.len() {
        let mut word = words[i].as_str();
        if word == "or" || word == "||" {
            branches.push(Vec::new());
            i += 1;
            continue;
        }
        let mut negated = false;
        if let Some(rest) = word.strip_prefix('!') {
            negated = true;
            word = rest;
            if word.is_empty() {
                i += 1;
                word = words.get(i).map(String::as_str).unwrap_or_default();
            }
        }
        let challenge = if word == "{" || word.starts_with('{') {
            // An anonymous ACL, up to its closing brace.
            let mut mentions = word.contains(CHALLENGE_PATH) || word.contains(r"\.well-known/acme-challenge");
            while i < words.len() && !words[i].ends_with('}') {
                i += 1;
                mentions |= words
                    .get(i)
                    .is_some_and(|w| w.contains(CHALLENGE_PATH) || w.contains(r"\.well-known/acme-challenge"));
            }
            mentions
        } else {
            challenge_acls.iter().any(|a| a == word)
        };
        if let Some(branch) = branches.last_mut() {
            branch.push(Term { negated, challenge });
        }
        i += 1;
    }
    Some((unless, branches))
}

/// Whether a rule with this condition can act on a request for the challenge path (other ACLs are taken to be true
/// or false as it suits them).
fn can_fire_on_challenge(words: &[String], challenge_acls: &[String]) -> bool {
    match condition(words, challenge_acls) {
        None => true,
        // `if`: some branch holds without a `!challenge` in it.
        Some((false, branches)) => branches.iter().any(|b| !b.iter().any(|t| t.challenge && t.negated)),
        // `unless`: it fires unless some branch is surely true, which only a branch of plain challenge terms is.
        Some((true, branches)) => !branches
            .iter()
            .any(|b| !b.is_empty() && b.iter().all(|t| t.challenge && !t.negated)),
    }
}

/// Whether a rule with this condition acts only on the challenge path.
fn only_on_challenge(words: &[String], challenge_acls: &[String]) -> bool {
    match condition(words, challenge_acls) {
        Some((false, branches)) => branches.iter().all(|b| b.iter().any(|t| t.challenge && !t.negated)),
        _ => false,
    }
}

/// The names of the ACLs of a section that match the challenge path.
fn challenge_acls(section: &Section) -> Vec<String> {
    section
        .lines_of("acl")
        .filter(|l| {
            l.words
                .iter()
                .skip(2)
                .any(|w| w.starts_with(CHALLENGE_PATH) || w.contains(r"\.well-known/acme-challenge"))
        })
        .filter_map(|l| l.words.get(1).cloned())
        .collect()
}

/// The rules that end a request before `use_backend` is looked at.
fn ends_request(words: &[String]) -> bool {
    match words[0].as_str() {
        "redirect" | "block" => true,
        "http-request" => matches!(
            words.get(1).map(String::as_str),
            Some("redirect" | "deny" | "return" | "tarpit" | "auth" | "reject" | "silent-drop")
        ),
        _ => false,
    }
}

/// Port 80 reaches hapcert: the challenge route of each plain-HTTP frontend, and the rules that answer first.
/// Returns the backend the route sends to (side-port mode).
fn challenge_route(parsed: &Parsed, expect: &Expect, plain: &[usize], findings: &mut Vec<Finding>) -> Option<String> {
    if plain.is_empty() {
        findings.push(Finding::bad(
            Item::ChallengeRoute,
            Verdict::Missing,
            None,
            "no frontend binds port 80 without ssl, so the CA's HTTP-01 requests reach nothing".into(),
            format!("add a port-80 frontend that forwards {CHALLENGE_PATH}/ to hapcert: {APPEND}"),
        ));
        return None;
    }
    let mut backend = None;
    for &index in plain {
        let section = &parsed.sections[index];
        let acls = challenge_acls(section);
        let acl_name = acls.first().cloned().unwrap_or_else(|| "acme_challenge".into());
        let route = section.lines.iter().find(|l| match expect.mode {
            ChallengeMode::SidePort => l.words[0] == "use_backend" && only_on_challenge(&l.words, &acls),
            ChallengeMode::Stateless => {
                l.words[0] == "http-request"
                    && l.words.get(1).is_some_and(|w| w == "return")
                    && only_on_challenge(&l.words, &acls)
            }
        });
        let Some(route) = route else {
            let (what, fix) = match expect.mode {
                ChallengeMode::SidePort => (
                    "no `use_backend ... if <challenge ACL>`",
                    format!(
                        "add `acl acme_challenge path_beg {CHALLENGE_PATH}/` and `use_backend hapcert_challenge if \
                         acme_challenge` to {}, with the backend: {APPEND}",
                        section.title()
                    ),
                ),
                ChallengeMode::Stateless => (
                    "no `http-request return` for the challenge path",
                    format!("add the lines `hapcert haproxy-config` prints to {}", section.title()),
                ),
            };
            findings.push(Finding::bad(
                Item::ChallengeRoute,
                Verdict::Missing,
                Some(section.at.clone()),
                format!("{} binds port 80 but has {what}", section.title()),
                fix,
            ));
            continue;
        };
        if expect.mode == ChallengeMode::SidePort {
            backend = backend.or_else(|| route.words.get(1).cloned());
        }
        // Side-port: every ending rule runs before use_backend. Stateless: the rules before the return do.
        let shadows: Vec<_> = section
            .lines
            .iter()
            .filter(|l| ends_request(&l.words) && !std::ptr::eq(*l, route))
            .filter(|l| expect.mode == ChallengeMode::SidePort || l.at.line < route.at.line)
            .filter(|l| can_fire_on_challenge(&l.words, &acls))
            .collect();
        if shadows.is_empty() {
            findings.push(Finding::ok(
                Item::ChallengeRoute,
                Some(route.at.clone()),
                format!(
                    "{}: `{}`, and no rule answers the challenge path first",
                    section.title(),
                    route.words.join(" ")
                ),
            ));
        }
        for shadow in shadows {
            findings.push(Finding::bad(
                Item::ChallengeRoute,
                Verdict::Wrong,
                Some(shadow.at.clone()),
                format!(
                    "`{}` in {} also answers {CHALLENGE_PATH}/ (HAProxy runs it before use_backend, whatever the \
                     line order), so the CA never reaches hapcert",
                    shadow.words.join(" "),
                    section.title()
                ),
                format!("end that line with `unless {acl_name}`"),
            ));
        }
    }
    backend
}

/// The backend the route names sends to `[challenge] listen`, with no health check.
fn challenge_backend(parsed: &Parsed, expect: &Expect, name: Option<String>, findings: &mut Vec<Finding>) {
    let listen = expect.listen.to_string();
    let found = parsed.sections.iter().enumerate().find(|(_, s)| {
        s.keyword == "backend"
            && match &name {
                Some(name) => s.name.as_ref() == Some(name),
                None => s.lines_of("server").any(|l| l.words.get(2) == Some(&listen)),
            }
    });
    let Some((index, backend)) = found else {
        let message = match &name {
            Some(name) => format!("the challenge route names backend {name}, which no `backend` section defines"),
            None => format!("no backend sends to hapcert's side port {listen} ([challenge] listen)"),
        };
        findings.push(Finding::bad(
            Item::ChallengeBackend,
            Verdict::Missing,
            None,
            message,
            format!("add `backend hapcert_challenge` with `server hapcert {listen}` and no `check`: {APPEND}"),
        ));
        return;
    };
    let servers: Vec<_> = backend.lines_of("server").collect();
    let Some(server) = servers.iter().find(|l| l.words.get(2) == Some(&listen)) else {
        let at = servers
            .first()
            .map(|l| l.at.clone())
            .unwrap_or_else(|| backend.at.clone());
        let addresses: Vec<&str> = servers
            .iter()
            .filter_map(|l| l.words.get(2).map(String::as_str))
            .collect();
        let sends_to = match addresses.is_empty() {
            true => "no server".to_owned(),
            false => addresses.join(", "),
        };
        findings.push(Finding::bad(
            Item::ChallengeBackend,
            Verdict::Wrong,
            Some(at),
            format!(
                "{} sends to {sends_to}, but hapcert listens on {listen} ([challenge] listen)",
                backend.title()
            ),
            format!("make its server `server hapcert {listen}`, or set [challenge] listen to its address"),
        ));
        return;
    };
    // `check` on the server, or on a default-server line it takes (its backend's, or its defaults section's).
    let default_servers = parsed
        .defaults_of(index)
        .into_iter()
        .chain([backend])
        .flat_map(|s| s.lines_of("default-server"));
    let checked = server
        .words
        .iter()
        .skip(3)
        .any(|w| w == "check")
        .then_some(&server.at)
        .or_else(|| {
            default_servers
                .filter(|l| l.words.iter().skip(1).any(|w| w == "check"))
                .last()
                .map(|l| &l.at)
        });
    match checked {
        Some(at) => findings.push(Finding::bad(
            Item::ChallengeBackend,
            Verdict::Wrong,
            Some(at.clone()),
            format!(
                "{} has a health check: hapcert listens only while it validates an order, so the check keeps the \
                 server DOWN and HAProxy answers the CA with 503",
                backend.title()
            ),
            "remove `check` from that line (only `hapcert daemon`, which listens all the time, lives with one)".into(),
        )),
        None => findings.push(Finding::ok(
            Item::ChallengeBackend,
            Some(server.at.clone()),
            format!("{}: `{}`, no health check", backend.title(), server.words.join(" ")),
        )),
    }
}

/// What a socket address is, without its `unix@` prefix.
fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix@").unwrap_or(address)
}

/// `stats socket <path> ... level admin` in `global`, at `runtime_api`, once.
fn admin_socket(parsed: &Parsed, expect: &Expect, findings: &mut Vec<Finding>) {
    let sockets: Vec<_> = parsed
        .sections
        .iter()
        .filter(|s| s.keyword == "global")
        .flat_map(|s| s.lines_of("stats"))
        .filter(|l| l.words.get(1).is_some_and(|w| w == "socket") && l.words.len() > 2)
        .collect();
    let level_admin = |words: &[String]| words.windows(2).any(|w| w[0] == "level" && w[1] == "admin");
    let before = findings.len();
    // Two lines on one path: the one bound last takes the path over.
    let mut seen: Vec<&str> = Vec::new();
    for line in &sockets {
        let path = socket_path(&line.words[2]);
        if seen.contains(&path) {
            let first = sockets
                .iter()
                .find(|l| socket_path(&l.words[2]) == path)
                .map(|l| l.at.to_string())
                .unwrap_or_default();
            findings.push(Finding::bad(
                Item::AdminSocket,
                Verdict::Duplicated,
                Some(line.at.clone()),
                format!(
                    "a second `stats socket {path}` (the first is at {first}): the one HAProxy binds last takes the path \
                     over, and the other line means nothing"
                ),
                "remove this line and keep one `stats socket` per path".into(),
            ));
        } else {
            seen.push(path);
        }
    }
    let admin: Vec<_> = sockets.iter().filter(|l| level_admin(&l.words)).collect();
    match &expect.runtime_api {
        Some(wanted) => {
            let wanted_path = socket_path(wanted);
            match sockets.iter().find(|l| socket_path(&l.words[2]) == wanted_path) {
                Some(line) if level_admin(&line.words) => {
                    if findings.len() == before {
                        findings.push(Finding::ok(
                            Item::AdminSocket,
                            Some(line.at.clone()),
                            format!("`{}` is [haproxy] runtime_api", line.words.join(" ")),
                        ));
                    }
                }
                Some(line) => findings.push(Finding::bad(
                    Item::AdminSocket,
                    Verdict::Wrong,
                    Some(line.at.clone()),
                    format!(
                        "the socket at [haproxy] runtime_api ({wanted_path}) has no `level admin`, so HAProxy refuses \
                         the commands of a hot update"
                    ),
                    "add `level admin` to that line".into(),
                )),
                None => {
                    let fix = match admin.first() {
                        Some(other) => format!(
                            "set [haproxy] runtime_api = \"{}\", the admin socket HAProxy has ({})",
                            socket_path(&other.words[2]),
                            other.at
                        ),
                        None => format!("add `stats socket {wanted_path} mode 600 level admin` to the global section"),
                    };
                    findings.push(Finding::bad(
                        Item::AdminSocket,
                        Verdict::Missing,
                        None,
                        format!("no `stats socket {wanted_path} ... level admin`, which [haproxy] runtime_api names"),
                        fix,
                    ));
                }
            }
        }
        None if expect.master_socket => {
            if findings.len() == before {
                findings.push(Finding::ok(
                    Item::AdminSocket,
                    None,
                    "no [haproxy] runtime_api: hot updates go through [haproxy] master_socket".into(),
                ));
            }
        }
        None => {
            let fix = match admin.first() {
                Some(other) => format!(
                    "set [haproxy] runtime_api = \"{}\" ({} is an admin socket)",
                    socket_path(&other.words[2]),
                    other.at
                ),
                None => {
                    "add `stats socket /run/haproxy/admin.sock mode 600 level admin` to the global section and set \
                         [haproxy] runtime_api to it"
                        .into()
                }
            };
            findings.push(Finding::bad(
                Item::AdminSocket,
                Verdict::Missing,
                admin.first().map(|l| l.at.clone()),
                "neither [haproxy] runtime_api nor master_socket is set, so every renewal reloads HAProxy instead of \
                 a hot update"
                    .into(),
                fix,
            ));
        }
    }
}

/// `option idle-close-on-response` in effect in each frontend: its own last word on it, else its defaults'.
fn idle_close<'a>(parsed: &Parsed, frontends: impl Iterator<Item = &'a usize>, findings: &mut Vec<Finding>) {
    let mut done: Vec<usize> = Vec::new();
    for &index in frontends {
        if done.contains(&index) {
            continue;
        }
        done.push(index);
        let section = &parsed.sections[index];
        let said = |s: &Section| {
            s.lines
                .iter()
                .rev()
                .find_map(|l| match l.words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    ["option", "idle-close-on-response", ..] => Some((true, l.at.clone())),
                    ["no", "option", "idle-close-on-response", ..] => Some((false, l.at.clone())),
                    _ => None,
                })
        };
        let mut from = parsed.defaults_of(index);
        let mut found = said(section);
        // A defaults section takes what the one it names with `from` says.
        let mut depth = 0;
        while found.is_none()
            && let Some(defaults) = from
            && depth < 16
        {
            found = said(defaults);
            from = defaults.from.as_ref().and_then(|name| {
                parsed
                    .sections
                    .iter()
                    .find(|s| s.keyword == "defaults" && s.name.as_ref() == Some(name))
            });
            depth += 1;
        }
        match found {
            Some((true, at)) => findings.push(Finding::ok(
                Item::IdleClose,
                Some(at),
                format!("option idle-close-on-response applies to {}", section.title()),
            )),
            Some((false, at)) => findings.push(Finding::bad(
                Item::IdleClose,
                Verdict::Wrong,
                Some(at),
                format!("`no option idle-close-on-response` applies to {}", section.title()),
                "remove that line: without the option a reload resets keep-alive clients".into(),
            )),
            None => findings.push(Finding::bad(
                Item::IdleClose,
                Verdict::Missing,
                Some(section.at.clone()),
                format!(
                    "{} lacks `option idle-close-on-response`: at each reload, a keep-alive client that sends its next \
                     request just then gets a reset",
                    section.title()
                ),
                format!(
                    "add `option idle-close-on-response` to {}{}",
                    section.title(),
                    parsed
                        .defaults_of(index)
                        .map(|d| format!(", or to the defaults section at {}", d.at))
                        .unwrap_or_default()
                ),
            )),
        }
    }
}

/// `crt-base` of `global`, for relative `crt` paths.
fn crt_base(parsed: &Parsed) -> Option<String> {
    parsed
        .sections
        .iter()
        .filter(|s| s.keyword == "global")
        .flat_map(|s| s.lines_of("crt-base"))
        .filter_map(|l| l.words.get(1).cloned())
        .last()
}

/// A `crt` argument as HAProxy resolves it, without a trailing slash.
fn resolve_crt(word: &str, base: Option<&str>) -> String {
    let path = match base {
        Some(base) if !word.starts_with('/') => format!("{}/{word}", base.trim_end_matches('/')),
        _ => word.to_owned(),
    };
    path.trim_end_matches('/').to_owned()
}

/// The frontends with a bind line that loads the cert directory, by index.
fn cert_dir_frontends(parsed: &Parsed, cert_dir: &str) -> Vec<usize> {
    let base = crt_base(parsed);
    let dir = cert_dir.trim_end_matches('/');
    proxies(parsed)
        .filter(|(_, s)| {
            s.lines_of("bind").any(|l| {
                l.words
                    .windows(2)
                    .any(|w| w[0] == "crt" && resolve_crt(&w[1], base.as_deref()) == dir)
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// On each bind that loads the cert directory, a certificate named before it (or `default-crt`).
fn default_certificate(parsed: &Parsed, expect: &Expect, tls: &[usize], findings: &mut Vec<Finding>) {
    let base = crt_base(parsed);
    let dir = expect.cert_dir.trim_end_matches('/');
    if tls.is_empty() {
        findings.push(Finding::bad(
            Item::DefaultCertificate,
            Verdict::Missing,
            None,
            format!("no `bind ... ssl crt {dir}/` loads the certificates hapcert writes ([haproxy] cert_dir)"),
            format!("add an HTTPS frontend with `bind :443 ssl crt /etc/haproxy/default.pem crt {dir}/`: {APPEND}"),
        ));
        return;
    }
    for &index in tls {
        let section = &parsed.sections[index];
        for bind in section.lines_of("bind") {
            let crts: Vec<String> = bind
                .words
                .windows(2)
                .filter(|w| w[0] == "crt")
                .map(|w| resolve_crt(&w[1], base.as_deref()))
                .collect();
            if !crts.iter().any(|c| c == dir) {
                continue;
            }
            let explicit = bind.words.iter().any(|w| w == "default-crt");
            match (explicit, crts.first()) {
                (false, Some(first)) if first == dir => findings.push(Finding::bad(
                    Item::DefaultCertificate,
                    Verdict::Missing,
                    Some(bind.at.clone()),
                    format!(
                        "the first crt of this bind is the directory {dir}/, so the certificate for clients without \
                         SNI is whichever file there sorts first, and it changes when hapcert adds one"
                    ),
                    format!(
                        "name a placeholder before it: `crt /etc/haproxy/default.pem crt {dir}/` (the README has the \
                         openssl command), kept outside {dir}/"
                    ),
                )),
                (_, first) => findings.push(Finding::ok(
                    Item::DefaultCertificate,
                    Some(bind.at.clone()),
                    format!(
                        "{}: the default certificate is {}",
                        section.title(),
                        match explicit {
                            true => "the one default-crt names".to_owned(),
                            false => first.cloned().unwrap_or_default(),
                        }
                    ),
                )),
            }
        }
    }
}

/// A `defaults` section after another one without a `from`: the proxies after it lose what the first one said and
/// it does not repeat, such as Debian's logging and error pages.
fn shadowed_defaults(parsed: &Parsed, findings: &mut Vec<Finding>) {
    let key = |words: &[String]| -> String {
        match words[0].as_str() {
            "option" | "no" | "timeout" | "errorfile" | "http-error" | "errorloc" | "errorloc302" | "errorloc303" => {
                words.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
            }
            _ => words[0].clone(),
        }
    };
    let mut previous: Option<&Section> = None;
    for section in parsed.sections.iter().filter(|s| s.keyword == "defaults") {
        if let Some(earlier) = previous
            && section.from.is_none()
            && section.name.is_none()
            && earlier.name.is_none()
        {
            let kept: Vec<String> = section.lines.iter().map(|l| key(&l.words)).collect();
            let mut lost: Vec<String> = Vec::new();
            for line in &earlier.lines {
                let k = key(&line.words);
                if !kept.contains(&k) && !lost.contains(&k) {
                    lost.push(k);
                }
            }
            if !lost.is_empty() {
                findings.push(Finding::bad(
                    Item::Defaults,
                    Verdict::Duplicated,
                    Some(section.at.clone()),
                    format!(
                        "a second defaults section: every proxy after it takes it instead of the one at {}, and loses \
                         {}",
                        earlier.at,
                        lost.join(", ")
                    ),
                    format!(
                        "move what this section adds into the defaults at {} and remove it (or set it in the proxies \
                         that need it)",
                        earlier.at
                    ),
                ));
            }
        }
        previous = Some(section);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::haproxy_cfg::parse;

    /// The global and defaults sections of Debian's haproxy.cfg (bookworm's and trixie's are the same), in short.
    const DEBIAN: &str = "global\n\tlog /dev/log\tlocal0\n\tchroot /var/lib/haproxy\n\
        \tstats socket /run/haproxy/admin.sock mode 660 level admin\n\tstats timeout 30s\n\tcrt-base /etc/ssl/private\n\
        defaults\n\tlog\tglobal\n\tmode\thttp\n\toption\thttplog\n\ttimeout connect 5000\n\
        \terrorfile 503 /etc/haproxy/errors/503.http\n";

    /// What the example config expects: the tests judge Debian's file against it, as an operator's first run does.
    fn expect() -> Expect {
        crate::haproxy_check::example_expect()
    }

    fn findings(text: &str) -> Vec<Finding> {
        judge(&parse(&[("haproxy.cfg".into(), text.into())], &|_| None), &expect())
    }

    /// The findings that are not OK, as (item, verdict, line).
    fn bad(text: &str) -> Vec<(Item, Verdict, Option<usize>)> {
        findings(text)
            .into_iter()
            .filter(|f| f.verdict != Verdict::Ok)
            .map(|f| (f.item, f.verdict, f.at.map(|a| a.line)))
            .collect()
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn debian_with_the_debian_additions_has_everything() {
        let text = format!("{DEBIAN}{}", include_str!("../../deploy/haproxy-debian.cfg"));
        assert_eq!(bad(&text), []);
        let all = findings(&text);
        for item in [
            Item::ChallengeRoute,
            Item::ChallengeBackend,
            Item::AdminSocket,
            Item::IdleClose,
            Item::DefaultCertificate,
        ] {
            assert!(all.iter().any(|f| f.item == item), "{item:?} not reported: {all:#?}");
        }
    }

    #[test]
    fn debian_alone_misses_the_route_the_backend_and_the_default_certificate() {
        let verdicts = bad(DEBIAN);
        assert_eq!(
            verdicts,
            [
                (Item::ChallengeRoute, Verdict::Missing, None),
                (Item::ChallengeBackend, Verdict::Missing, None),
                (Item::DefaultCertificate, Verdict::Missing, None),
            ]
        );
    }

    #[test]
    fn debian_with_the_snippet_appended_doubles_the_socket_and_the_defaults() {
        let text = format!("{DEBIAN}{}", include_str!("../../deploy/haproxy-snippet.cfg"));
        // The line of the n-th line (from 0) that starts with `word`, indented or not.
        let nth = |word: &str, n: usize| {
            let mut hits = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_start().starts_with(word));
            hits.nth(n).map(|(i, _)| i + 1)
        };
        let verdicts = bad(&text);
        assert!(
            verdicts.contains(&(Item::AdminSocket, Verdict::Duplicated, nth("stats socket", 1))),
            "{verdicts:?}"
        );
        assert!(
            verdicts.contains(&(Item::Defaults, Verdict::Duplicated, nth("defaults", 1))),
            "{verdicts:?}"
        );
        let lost = findings(&text)
            .into_iter()
            .find(|f| f.item == Item::Defaults)
            .unwrap()
            .message;
        assert!(
            lost.contains("log, option httplog") && lost.contains("errorfile 503"),
            "{lost}"
        );
    }

    #[test]
    fn a_redirect_that_does_not_spare_the_challenge_path_is_named_with_its_line() {
        let text = "frontend f\n  bind :80\n  acl acme path_beg /.well-known/acme-challenge/\n\
            use_backend hapcert_challenge if acme\n  http-request redirect scheme https if !{ ssl_fc }\n\
            redirect scheme https code 301 if !acme\n  http-request deny unless acme { src 10.0.0.0/8 }\n\
            http-request deny unless acme or { src 10.0.0.0/8 }\n\
            http-request return status 200 unless acme\n\
            backend hapcert_challenge\n  server h 127.0.0.1:54321\n";
        let route: Vec<_> = bad(text).into_iter().filter(|b| b.0 == Item::ChallengeRoute).collect();
        assert_eq!(
            route,
            [
                (Item::ChallengeRoute, Verdict::Wrong, Some(5)),
                (Item::ChallengeRoute, Verdict::Wrong, Some(7))
            ]
        );
        let fix = &findings(text)[0].fix;
        assert_eq!(fix, "end that line with `unless acme`");
    }

    #[test]
    fn a_health_check_on_the_challenge_backend_is_found_on_the_server_or_a_default_server() {
        let route = "frontend f\n  bind *:80\n  acl a path_beg /.well-known/acme-challenge/\n  use_backend b if a\n";
        let on_server = format!("{route}backend b\n  server h 127.0.0.1:54321 check inter 2s\n");
        assert!(bad(&on_server).contains(&(Item::ChallengeBackend, Verdict::Wrong, Some(6))));
        let inherited =
            format!("defaults\n  mode http\n  default-server check\n{route}backend b\n  server h 127.0.0.1:54321\n");
        assert!(bad(&inherited).contains(&(Item::ChallengeBackend, Verdict::Wrong, Some(3))));
        let elsewhere = format!("{route}backend b\n  server h 127.0.0.1:8888\n");
        assert!(bad(&elsewhere).contains(&(Item::ChallengeBackend, Verdict::Wrong, Some(6))));
    }

    #[test]
    fn the_default_certificate_must_come_before_the_directory_resolved_from_crt_base() {
        let relative = "global\n  crt-base /etc/haproxy\nfrontend s\n  bind :443 ssl crt certs/ alpn h2\n";
        assert!(bad(relative).contains(&(Item::DefaultCertificate, Verdict::Missing, Some(4))));
        let explicit = "frontend s\n  bind :443 ssl crt /etc/haproxy/default.pem crt /etc/haproxy/certs\n";
        assert!(!bad(explicit).iter().any(|b| b.0 == Item::DefaultCertificate));
        let default_crt = "frontend s\n  bind :443 ssl crt /etc/haproxy/certs/ default-crt /d.pem\n";
        assert!(!bad(default_crt).iter().any(|b| b.0 == Item::DefaultCertificate));
    }

    #[test]
    fn idle_close_comes_from_the_frontend_or_the_defaults_it_takes() {
        let text = "defaults web\n  option idle-close-on-response\ndefaults\n  mode http\n\
            frontend a from web\n  bind :80\nfrontend b\n  bind :443 ssl crt /x.pem crt /etc/haproxy/certs/\n\
            frontend c\n  bind :8443 ssl crt /etc/haproxy/certs/\n  option idle-close-on-response\n";
        let idle: Vec<_> = bad(text).into_iter().filter(|b| b.0 == Item::IdleClose).collect();
        assert_eq!(
            idle,
            [(Item::IdleClose, Verdict::Missing, Some(line_of(text, "frontend b")))]
        );
    }

    #[test]
    fn the_admin_socket_is_matched_to_runtime_api_and_needs_level_admin() {
        let mut other = expect();
        other.runtime_api = Some("unix@/run/haproxy/other.sock".into());
        let text = "global\n  stats socket /run/haproxy/other.sock mode 600\n";
        let found = judge(&parse(&[("h".into(), text.into())], &|_| None), &other);
        let socket = found.iter().find(|f| f.item == Item::AdminSocket).unwrap();
        assert_eq!(
            (socket.verdict, socket.fix.as_str()),
            (Verdict::Wrong, "add `level admin` to that line")
        );
        other.runtime_api = None;
        other.master_socket = true;
        let found = judge(&parse(&[("h".into(), text.into())], &|_| None), &other);
        assert!(
            found
                .iter()
                .any(|f| f.item == Item::AdminSocket && f.verdict == Verdict::Ok)
        );
    }
}
