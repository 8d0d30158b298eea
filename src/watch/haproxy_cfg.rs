//! HAProxy's configuration as far as `watch suggest` and `haproxy-config --check` need it, pure: every section with its
//! lines (`Parsed::sections`, and the `defaults` section each proxy takes), and the servers of its `backend` and
//! `listen` sections with their TLS settings, after `default-server` lines and `defaults` sections (named ones through
//! `from`) have been applied. Lines are split into words as HAProxy splits them: `#` starts a comment outside quotes, `'...'`
//! is literal, `"..."` expands `$VAR` and `${VAR}`, a backslash escapes outside single quotes. A server's address is
//! expanded once more afterwards, as HAProxy does, so `${VAR}` works there even inside single quotes.

use std::collections::HashMap;

/// Where a line is: the file as it was named, and its line number from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The section a server line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Backend,
    Listen,
}

impl ProxyKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ProxyKind::Backend => "backend",
            ProxyKind::Listen => "listen",
        }
    }
}

/// The TLS settings of a server: its own `server` words on top of its `default-server` lines. `None` is "not said".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `ssl` (true) or `no-ssl` (false).
    pub ssl: Option<bool>,
    /// `verify none|required`, as written.
    pub verify: Option<String>,
    /// `sni <expression>`, as written.
    pub sni: Option<String>,
    /// `ca-file <path>`, as written.
    pub ca_file: Option<String>,
    /// `check-ssl` (true) or `no-check-ssl` (false).
    pub check_ssl: Option<bool>,
    /// `crt <path>`: the client certificate HAProxy presents.
    pub crt: Option<String>,
}

impl TlsParams {
    /// `self` with what `over` says put on top.
    fn overlaid(&self, over: &TlsParams) -> TlsParams {
        TlsParams {
            ssl: over.ssl.or(self.ssl),
            verify: over.verify.clone().or_else(|| self.verify.clone()),
            sni: over.sni.clone().or_else(|| self.sni.clone()),
            ca_file: over.ca_file.clone().or_else(|| self.ca_file.clone()),
            check_ssl: over.check_ssl.or(self.check_ssl),
            crt: over.crt.clone().or_else(|| self.crt.clone()),
        }
    }
}

/// One `server` (or `server-template`) line of a `backend` or `listen` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub kind: ProxyKind,
    pub proxy: String,
    pub name: String,
    /// `server-template`: its servers are made at run time from a DNS name.
    pub template: bool,
    /// The address word after expansion, as HAProxy reads it.
    pub address: String,
    /// Its TLS settings, `default-server` lines included.
    pub tls: TlsParams,
    pub at: Location,
    /// The environment variables its words named, with their values: shown to the operator, since HAProxy's
    /// environment may differ from this command's.
    pub expanded: Vec<(String, String)>,
    /// The variables its words named that are set nowhere here.
    pub unset: Vec<String>,
    /// The `.if` it sits inside, which HAProxy may leave out; not evaluated here.
    pub conditional: Option<Location>,
}

/// What `global` says that matters to a server's TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    /// `ca-base`: where a relative `ca-file` is looked up.
    pub ca_base: Option<String>,
    /// `ssl-server-verify`: the `verify` of a server that says none.
    pub ssl_server_verify: Option<String>,
}

/// One line of a section, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub words: Vec<String>,
    pub at: Location,
    /// The `.if` it sits inside, which HAProxy may leave out; not evaluated here.
    pub conditional: Option<Location>,
}

/// A section (`global`, `defaults`, `frontend`, ...) as written: its keyword, name, `from`, and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub keyword: String,
    pub name: Option<String>,
    /// `from <defaults>`: the named defaults section it starts from.
    pub from: Option<String>,
    pub at: Location,
    pub lines: Vec<Line>,
}

impl Section {
    /// The lines whose first word is `keyword`.
    pub fn lines_of<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
        self.lines.iter().filter(move |l| l.words[0] == keyword)
    }

    /// `frontend http_in`, or the keyword alone for a section without a name.
    pub fn title(&self) -> String {
        match &self.name {
            Some(name) => format!("{} {name}", self.keyword),
            None => self.keyword.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub servers: Vec<Server>,
    pub global: Global,
    /// Every section in the order HAProxy reads them, the files one after the other.
    pub sections: Vec<Section>,
}

impl Parsed {
    /// The `defaults` section the section at `index` takes, as HAProxy picks it: the one its `from` names, else the
    /// last one before it, named or not. `None` when there is none.
    pub fn defaults_of(&self, index: usize) -> Option<&Section> {
        let before = &self.sections[..index];
        match &self.sections[index].from {
            Some(from) => before
                .iter()
                .rev()
                .find(|s| s.keyword == "defaults" && s.name.as_deref() == Some(from.as_str())),
            None => before.iter().rev().find(|s| s.keyword == "defaults"),
        }
    }
}

/// The section keywords HAProxy knows (up to 3.4). A line starting with one opens a new section; `server` lines of
/// the others (`peers`, `ring`, `resolvers`' `nameserver`) are not backend servers.
const SECTIONS: [&str; 18] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "crt-store",
    "log-forward",
    "traces",
    "acme",
    "fcgi-app",
];

/// The `server` keywords that take one argument: skipped with it, so that `cookie ssl` or `track ssl` is not read as
/// `ssl`. A keyword not listed is taken to have none.
const ONE_ARGUMENT: &[&str] = &[
    "addr",
    "agent-addr",
    "agent-inter",
    "agent-port",
    "agent-send",
    "alpn",
    "ca-file",
    "check-alpn",
    "check-proto",
    "check-sni",
    "ciphers",
    "ciphersuites",
    "client-sigalgs",
    "cookie",
    "crl-file",
    "crt",
    "curves",
    "downinter",
    "error-limit",
    "fall",
    "fastinter",
    "guid",
    "hash-key",
    "id",
    "idle-ping",
    "init-addr",
    "init-state",
    "inter",
    "interface",
    "log-bufsize",
    "log-proto",
    "max-reuse",
    "maxconn",
    "maxqueue",
    "minconn",
    "namespace",
    "npn",
    "observe",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "pool-conn-name",
    "pool-low-conn",
    "pool-max-conn",
    "pool-purge-delay",
    "port",
    "proto",
    "proxy-v2-options",
    "redir",
    "resolve-net",
    "resolve-opts",
    "resolve-prefer",
    "resolvers",
    "rise",
    "shard",
    "sigalgs",
    "slowstart",
    "sni",
    "socks4",
    "source",
    "ssl-max-ver",
    "ssl-min-ver",
    "tcp-ut",
    "track",
    "usesrc",
    "verify",
    "verifyhost",
    "weight",
    "ws",
];

/// Parses the files in the order HAProxy loads them, each `(name, text)`. `env` answers for the process environment;
/// `global`'s `setenv`, `presetenv`, `unsetenv` and `resetenv` are applied on top of it, as HAProxy does.
pub fn parse(files: &[(String, String)], env: &dyn Fn(&str) -> Option<String>) -> Parsed {
    let mut parser = Parser {
        env,
        overrides: HashMap::new(),
        cleared: false,
        parsed: Parsed::default(),
        named_defaults: HashMap::new(),
        last_defaults: TlsParams::default(),
    };
    for (file, text) in files {
        parser.file(file, text);
    }
    parser.parsed
}

/// Which section the lines being read belong to.
enum Reading {
    /// Before any section, or one whose lines do not matter here.
    Other,
    Global,
    Defaults {
        name: Option<String>,
        params: TlsParams,
    },
    Proxy {
        kind: ProxyKind,
        name: String,
        params: TlsParams,
    },
}

struct Parser<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    /// `setenv` and `presetenv` (Some), `unsetenv` (None).
    overrides: HashMap<String, Option<String>>,
    /// `resetenv` with no names kept: the process environment no longer counts.
    cleared: bool,
    parsed: Parsed,
    named_defaults: HashMap<String, TlsParams>,
    /// The `default-server` settings of the last `defaults` section, which a proxy without `from` takes.
    last_defaults: TlsParams,
}

impl Parser<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        match self.overrides.get(name) {
            Some(value) => value.clone(),
            None if self.cleared => None,
            None => (self.env)(name),
        }
    }

    fn file(&mut self, file: &str, text: &str) {
        // A section does not go on into the next file; the defaults and `global` do.
        let mut section = Reading::Other;
        let mut conditionals: Vec<Location> = Vec::new();
        let mut in_section = false;
        for (index, raw) in text.lines().enumerate() {
            let at = Location {
                file: file.to_owned(),
                line: index + 1,
            };
            let mut vars = Vars::default();
            let words = split_line(raw, &|name| self.lookup(name), &mut vars);
            let Some(first) = words.first() else { continue };
            match first.as_str() {
                ".if" => conditionals.push(at),
                ".endif" => {
                    conditionals.pop();
                }
                // `.elif`, `.else` and the messages (`.notice`, `.warning`, ...) stay within the block.
                other if other.starts_with('.') => {}
                keyword if SECTIONS.contains(&keyword) => {
                    self.close(&mut section);
                    section = self.open(keyword, &words);
                    self.parsed.sections.push(Section {
                        keyword: keyword.to_owned(),
                        name: words.get(1).filter(|w| *w != "from").cloned(),
                        from: words
                            .iter()
                            .position(|w| w == "from")
                            .and_then(|i| words.get(i + 1))
                            .cloned(),
                        at,
                        lines: Vec::new(),
                    });
                    in_section = true;
                }
                _ => {
                    // A line before the file's first section belongs to none.
                    if in_section && let Some(open) = self.parsed.sections.last_mut() {
                        open.lines.push(Line {
                            words: words.clone(),
                            at: at.clone(),
                            conditional: conditionals.first().cloned(),
                        });
                    }
                    self.line(&mut section, &words, at, vars, conditionals.first())
                }
            }
        }
        self.close(&mut section);
    }

    /// The end of a section: a `defaults` becomes the one the next proxies take.
    fn close(&mut self, section: &mut Reading) {
        if let Reading::Defaults { name, params } = std::mem::replace(section, Reading::Other) {
            if let Some(name) = name {
                self.named_defaults.insert(name, params.clone());
            }
            self.last_defaults = params;
        }
    }

    fn open(&mut self, keyword: &str, words: &[String]) -> Reading {
        // `<keyword> [<name>] [from <defaults>]`
        let from = words
            .iter()
            .position(|w| w == "from")
            .and_then(|i| words.get(i + 1))
            .map(|name| self.named_defaults.get(name).cloned().unwrap_or_default());
        let name = words.get(1).filter(|w| *w != "from").cloned();
        match keyword {
            "global" => Reading::Global,
            // A defaults section starts empty, or from the one it names.
            "defaults" => Reading::Defaults {
                name,
                params: from.unwrap_or_default(),
            },
            "backend" | "listen" => Reading::Proxy {
                kind: if keyword == "backend" {
                    ProxyKind::Backend
                } else {
                    ProxyKind::Listen
                },
                name: name.unwrap_or_default(),
                params: from.unwrap_or_else(|| self.last_defaults.clone()),
            },
            _ => Reading::Other,
        }
    }

    fn line(
        &mut self,
        section: &mut Reading,
        words: &[String],
        at: Location,
        vars: Vars,
        conditional: Option<&Location>,
    ) {
        match section {
            Reading::Global => self.global(words),
            Reading::Defaults { params, .. } if words[0] == "default-server" => {
                *params = params.overlaid(&tls_params(&words[1..]));
            }
            Reading::Proxy { params, .. } if words[0] == "default-server" => {
                *params = params.overlaid(&tls_params(&words[1..]));
            }
            Reading::Proxy { kind, name, params } if matches!(words[0].as_str(), "server" | "server-template") => {
                let template = words[0] == "server-template";
                // `server <name> <address> [params]`; `server-template <prefix> <count> <fqdn>[:<port>] [params]`.
                let (address_at, params_from) = if template { (3, 4) } else { (2, 3) };
                let Some(address) = words.get(address_at) else { return };
                let mut vars = vars;
                let address = expand_address(address, &|n| self.lookup(n), &mut vars);
                self.parsed.servers.push(Server {
                    kind: *kind,
                    proxy: name.clone(),
                    name: words.get(1).cloned().unwrap_or_default(),
                    template,
                    address,
                    tls: params.overlaid(&tls_params(words.get(params_from..).unwrap_or_default())),
                    at,
                    expanded: vars.expanded,
                    unset: vars.unset,
                    conditional: conditional.cloned(),
                });
            }
            _ => {}
        }
    }

    fn global(&mut self, words: &[String]) {
        let arg = |i: usize| words.get(i).cloned();
        match words[0].as_str() {
            "ca-base" => self.parsed.global.ca_base = arg(1),
            "ssl-server-verify" => self.parsed.global.ssl_server_verify = arg(1),
            "setenv" => {
                if let (Some(name), Some(value)) = (arg(1), arg(2)) {
                    self.overrides.insert(name, Some(value));
                }
            }
            "presetenv" => {
                if let (Some(name), Some(value)) = (arg(1), arg(2))
                    && self.lookup(&name).is_none()
                {
                    self.overrides.insert(name, Some(value));
                }
            }
            "unsetenv" => {
                for name in &words[1..] {
                    self.overrides.insert(name.clone(), None);
                }
            }
            "resetenv" => {
                let kept: Vec<(String, Option<String>)> = words[1..]
                    .iter()
                    .map(|name| (name.clone(), self.lookup(name)))
                    .collect();
                self.cleared = true;
                self.overrides = kept.into_iter().collect();
            }
            _ => {}
        }
    }
}

/// The TLS settings among a server's words, the arguments of other keywords skipped.
fn tls_params(words: &[String]) -> TlsParams {
    let mut params = TlsParams::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let next = words.get(i + 1).cloned();
        match word {
            "ssl" => params.ssl = Some(true),
            "no-ssl" => params.ssl = Some(false),
            "check-ssl" => params.check_ssl = Some(true),
            "no-check-ssl" => params.check_ssl = Some(false),
            "verify" => params.verify = next,
            "sni" => params.sni = next,
            "ca-file" => params.ca_file = next,
            "crt" => params.crt = next,
            _ => {}
        }
        let takes_argument = ONE_ARGUMENT.contains(&word) || word.starts_with("set-proxy-v2-tlv-fmt(");
        i += if takes_argument { 2 } else { 1 };
    }
    params
}

/// The environment variables a line named.
#[derive(Debug, Default)]
struct Vars {
    expanded: Vec<(String, String)>,
    unset: Vec<String>,
}

impl Vars {
    fn note(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(value) if !self.expanded.iter().any(|(n, _)| n == name) => {
                self.expanded.push((name.to_owned(), value.to_owned()))
            }
            None if !self.unset.iter().any(|n| n == name) => self.unset.push(name.to_owned()),
            _ => {}
        }
    }
}

/// The words of a line, as HAProxy's config parser splits them. An unset variable expands to nothing, as in HAProxy,
/// and is noted in `vars`.
fn split_line(line: &str, env: &dyn Fn(&str) -> Option<String>, vars: &mut Vars) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started even when it is empty so far (`""` is an empty argument).
    let mut started = false;
    let (mut squote, mut dquote) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' if !squote && !dquote => break,
            '"' if !squote => {
                dquote = !dquote;
                started = true;
            }
            '\'' if !dquote => {
                squote = !squote;
                started = true;
            }
            '\\' if !squote => {
                let next = chars.get(i + 1).copied();
                let (out, used) = match next {
                    Some(' ' | '\\' | '#' | '\'' | '"') => (next.unwrap(), 1),
                    Some('t') => ('\t', 1),
                    Some('n') => ('\n', 1),
                    Some('r') => ('\r', 1),
                    Some('$') if dquote => ('$', 1),
                    Some('x') => match chars.get(i + 2..i + 4).map(|h| h.iter().collect::<String>()) {
                        Some(hex) if u8::from_str_radix(&hex, 16).is_ok() => {
                            (char::from(u8::from_str_radix(&hex, 16).unwrap_or_default()), 3)
                        }
                        _ => ('\\', 0),
                    },
                    _ => ('\\', 0),
                };
                word.push(out);
                started = true;
                i += used;
            }
            c if c.is_whitespace() && !squote && !dquote => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '$' if dquote => {
                let (value, used) = variable(&chars[i + 1..], env, vars);
                word.push_str(&value);
                started = true;
                i += used;
            }
            c => {
                word.push(c);
                started = true;
            }
        }
        i += 1;
    }
    if started {
        words.push(word);
    }
    words
}

/// The variable after a `$` (`NAME`, `{NAME}` or `{NAME-default}`): its value, and how many characters it took.
/// Something that is no variable is kept as written.
fn variable(rest: &[char], env: &dyn Fn(&str) -> Option<String>, vars: &mut Vars) -> (String, usize) {
    let braced = rest.first() == Some(&'{');
    let start = usize::from(braced);
    let name: String = rest[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return ("$".to_owned(), 0);
    }
    let mut used = start + name.chars().count();
    let mut default = None;
    if braced {
        let tail: String = rest[used..].iter().collect();
        if let Some(after) = tail.strip_prefix('-')
            && let Some(end) = after.find('}')
        {
            default = Some(after[..end].to_owned());
            used += 1 + after[..end].chars().count();
        }
        if rest.get(used) != Some(&'}') {
            return ("$".to_owned(), 0);
        }
        used += 1;
    }
    let value = env(&name);
    match (&value, default) {
        (Some(value), _) => {
            vars.note(&name, Some(value));
            (value.clone(), used)
        }
        (None, Some(default)) => (default, used),
        (None, None) => {
            vars.note(&name, None);
            (String::new(), used)
        }
    }
}

/// A server's address, expanded again as HAProxy expands addresses (`$NAME` and `${NAME}`, wherever they are).
fn expand_address(address: &str, env: &dyn Fn(&str) -> Option<String>, vars: &mut Vars) -> String {
    let chars: Vec<char> = address.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            let (value, used) = variable(&chars[i + 1..], env, vars);
            out.push_str(&value);
            i += used + 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let env = |name: &str| (name == "HOST").then(|| "10.0.0.5".to_owned());
        split_line(line, &env, &mut Vars::default())
    }

    #[test]
    fn a_line_is_split_as_haproxy_splits_it() {
        assert_eq!(
            words("  server a 10.0.0.1:443 ssl # comment"),
            ["server", "a", "10.0.0.1:443", "ssl"]
        );
        assert_eq!(words("server a 10.0.0.1#:443"), ["server", "a", "10.0.0.1"]);
        assert_eq!(words("sni \"str(a b)\" x'#y' z\\#w"), ["sni", "str(a b)", "x#y", "z#w"]);
        assert_eq!(words("a \"\" b"), ["a", "", "b"]);
        assert_eq!(
            words("a \"$HOST:1\" '$HOST' ${HOST}"),
            ["a", "10.0.0.5:1", "$HOST", "${HOST}"]
        );
        assert_eq!(
            words("a \"${HOST}\" \"${NOPE-d}\" \"x${NOPE}y\""),
            ["a", "10.0.0.5", "d", "xy"]
        );
        assert_eq!(words("a\\ b c\\:d \\x41"), ["a b", "c\\:d", "A"]);
        assert!(words("   # only a comment").is_empty());
    }

    fn parse_one(text: &str) -> Parsed {
        let env = |name: &str| match name {
            "API_ADDR" => Some("10.1.1.1".to_owned()),
            _ => None,
        };
        parse(&[("haproxy.cfg".to_owned(), text.to_owned())], &env)
    }

    fn find<'a>(parsed: &'a Parsed, proxy: &str, name: &str) -> &'a Server {
        parsed
            .servers
            .iter()
            .find(|s| s.proxy == proxy && s.name == name)
            .unwrap_or_else(|| panic!("no server {proxy}/{name} in {parsed:#?}"))
    }

    #[test]
    fn default_server_lines_apply_from_the_last_defaults_or_the_named_one() {
        let parsed = parse_one(
            "defaults tls\n  default-server ssl verify required ca-file /ca.pem\n\
             defaults\n  mode tcp\n  default-server check\n\
             backend plain\n  server p1 10.0.0.1:80\n\
             backend secure from tls\n  server s1 10.0.0.2:443 sni str(s.internal)\n\
             defaults more from tls\n  default-server verify none\n\
             backend inherited\n  server i1 10.0.0.3:443\n",
        );
        assert_eq!(find(&parsed, "plain", "p1").tls.ssl, None);
        let secure = &find(&parsed, "secure", "s1").tls;
        assert_eq!(secure.ssl, Some(true));
        assert_eq!(secure.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(secure.sni.as_deref(), Some("str(s.internal)"));
        let inherited = &find(&parsed, "inherited", "i1").tls;
        assert_eq!((inherited.ssl, inherited.verify.as_deref()), (Some(true), Some("none")));
    }

    #[test]
    fn no_ssl_on_a_server_undoes_its_default_server() {
        let parsed = parse_one(
            "backend b\n  default-server ssl verify none check-ssl\n  server tls 10.0.0.1:443\n\
               server plain 10.0.0.2:80 no-ssl no-check-ssl\n",
        );
        assert_eq!(find(&parsed, "b", "tls").tls.ssl, Some(true));
        assert_eq!(find(&parsed, "b", "tls").tls.check_ssl, Some(true));
        assert_eq!(find(&parsed, "b", "plain").tls.ssl, Some(false));
        assert_eq!(find(&parsed, "b", "plain").tls.check_ssl, Some(false));
    }

    #[test]
    fn the_arguments_of_other_keywords_are_not_read_as_tls_words() {
        let parsed =
            parse_one("backend b\n  server a 10.0.0.1:80 cookie ssl track ssl/x id 3 source 10.0.0.9 usesrc ssl\n");
        assert_eq!(find(&parsed, "b", "a").tls, TlsParams::default());
    }

    #[test]
    fn servers_of_listen_sections_count_and_those_of_other_sections_do_not() {
        let parsed = parse_one(
            "peers mine\n  server lb1 10.0.0.1:10000 ssl\n\
             listen web\n  bind :443\n  server w1 10.0.0.2:443 ssl verify none\n\
             ring logs\n  server syslog 10.0.0.3:6514 ssl\n\
             frontend f\n  bind :80\n",
        );
        let names: Vec<_> = parsed
            .servers
            .iter()
            .map(|s| (s.kind, s.proxy.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(names, [(ProxyKind::Listen, "web", "w1")]);
    }

    #[test]
    fn comments_and_quotes_hide_or_keep_what_they_should() {
        let parsed = parse_one(
            "# backend commented\n#  server c1 10.0.0.9:443 ssl\nbackend b\n  server a 10.0.0.1:443 # ssl\n\
               server q 10.0.0.2:443 \"ssl\" sni 'str(x)'\n",
        );
        assert_eq!(parsed.servers.len(), 2);
        assert_eq!(find(&parsed, "b", "a").tls.ssl, None);
        assert_eq!(find(&parsed, "b", "q").tls.ssl, Some(true));
        assert_eq!(find(&parsed, "b", "q").tls.sni.as_deref(), Some("str(x)"));
    }

    #[test]
    fn addresses_are_expanded_from_the_environment_and_global_setenv() {
        let parsed = parse_one(
            "global\n  setenv DB_ADDR 10.2.2.2\n  ca-base /etc/haproxy/ca\n  ssl-server-verify none\n\
             backend b\n  server api '${API_ADDR}:443' ssl\n  server db $DB_ADDR:5432 ssl\n\
               server lost ${NOWHERE}:443 ssl\n",
        );
        let api = find(&parsed, "b", "api");
        assert_eq!(api.address, "10.1.1.1:443");
        assert_eq!(api.expanded, [("API_ADDR".to_owned(), "10.1.1.1".to_owned())]);
        assert_eq!(find(&parsed, "b", "db").address, "10.2.2.2:5432");
        let lost = find(&parsed, "b", "lost");
        assert_eq!(
            (lost.address.as_str(), lost.unset.as_slice()),
            (":443", &["NOWHERE".to_owned()][..])
        );
        assert_eq!(parsed.global.ca_base.as_deref(), Some("/etc/haproxy/ca"));
        assert_eq!(parsed.global.ssl_server_verify.as_deref(), Some("none"));
    }

    #[test]
    fn a_section_ends_with_its_file_and_conditional_blocks_are_noted() {
        let files = [
            ("a.cfg".to_owned(), "defaults\n  default-server ssl\nbackend b\n".to_owned()),
            (
                "b.cfg".to_owned(),
                "  server orphan 10.0.0.1:443\nbackend c\n.if defined(X)\n  server x 10.0.0.2:443\n.endif\n  server y 10.0.0.3:443\n"
                    .to_owned(),
            ),
        ];
        let parsed = parse(&files, &|_| None);
        let names: Vec<_> = parsed.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(
            parsed.servers[0].tls.ssl,
            Some(true),
            "the defaults of a.cfg go on into b.cfg"
        );
        assert_eq!(
            parsed.servers[0].conditional.as_ref().map(|l| l.to_string()).as_deref(),
            Some("b.cfg:3")
        );
        assert_eq!(parsed.servers[1].conditional, None);
        assert_eq!(parsed.servers[1].at.to_string(), "b.cfg:6");
    }
}
