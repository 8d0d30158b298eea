//! The address of a HAProxy CLI socket (`[haproxy] runtime_api`, `master_socket`), in HAProxy's own syntax. Parsed
//! here, with the config; connected to by `edge::haproxy::runtime`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a HAProxy CLI socket listens. The text forms are HAProxy's own address syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Endpoint {
    /// Accepts `/run/haproxy/admin.sock`, `unix@<path>`, `ipv4@127.0.0.1:9999`, `ipv6@[::1]:9999` and `127.0.0.1:9999`
    /// (or `[::1]:9999`). Host names are rejected, because resolving one could quietly reach another machine.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let expected = "expected a socket path (/run/haproxy/admin.sock, unix@<path>) or an IP address and port \
                        (127.0.0.1:9999, ipv4@127.0.0.1:9999, ipv6@[::1]:9999)";
        if let Some(path) = text.strip_prefix("unix@") {
            return match path {
                "" => Err(format!("`{text}`: no path after unix@; {expected}")),
                path => Ok(Endpoint::Unix(PathBuf::from(path))),
            };
        }
        let family = |rest: &str, v4: bool| match rest.parse::<SocketAddr>() {
            Ok(addr) if addr.is_ipv4() == v4 => Ok(Endpoint::Tcp(addr)),
            _ => Err(format!("`{text}`: {expected}")),
        };
        if let Some(rest) = text.strip_prefix("ipv4@") {
            return family(rest, true);
        }
        if let Some(rest) = text.strip_prefix("ipv6@") {
            return family(rest, false);
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Endpoint::Tcp(addr));
        }
        // Any other text with a slash is a path, relative ones included (`run/admin.sock`).
        if text.contains('/') {
            return Ok(Endpoint::Unix(PathBuf::from(text)));
        }
        Err(format!("`{text}`: {expected}"))
    }
}

/// The form [`Endpoint::parse`] reads back: an absolute path as it is, other paths as `unix@<path>`, addresses as
/// `127.0.0.1:9999` or `[::1]:9999`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) if path.is_absolute() => write!(f, "{}", path.display()),
            Endpoint::Unix(path) => write!(f, "unix@{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_display() {
        let cases = [
            ("/run/haproxy/admin.sock", "/run/haproxy/admin.sock"),
            ("unix@/run/haproxy/admin.sock", "/run/haproxy/admin.sock"),
            ("unix@admin.sock", "unix@admin.sock"),
            ("run/admin.sock", "unix@run/admin.sock"),
            ("ipv4@127.0.0.1:9999", "127.0.0.1:9999"),
            ("ipv6@[::1]:9999", "[::1]:9999"),
            ("127.0.0.1:9999", "127.0.0.1:9999"),
            ("[::1]:9999", "[::1]:9999"),
        ];
        for (text, shown) in cases {
            let endpoint = Endpoint::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(endpoint.to_string(), shown, "{text}");
            assert_eq!(Endpoint::parse(shown).unwrap(), endpoint, "{shown} reads back");
        }
        for bad in [
            "",
            "unix@",
            "admin.sock",
            "localhost:9999",
            "ipv4@[::1]:9999",
            "ipv6@127.0.0.1:1",
            "ipv4@1.2.3.4",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
