//! The text of HAProxy's config, built from one function per section so that tests can swap a section
//! with `cfg.replace(&old_section, &new_section)`.
//!
//! Every section function returns its header line plus indented lines, each ending in `\n`; [`config`]
//! joins sections with one blank line. Keep it that way: [`http_frontend_of`] finds sections by their
//! unindented header lines, and the replacement texts must look like what they replace.

use std::path::Path;

use super::haproxy::{Layout, Ports};

/// Header of the plain-HTTP frontend, which tests replace together with [`CHALLENGE_BACKEND`].
pub const HTTP_FRONTEND: &str = "frontend plain";
/// Header of the backend that forwards the challenge path to hapcert's side port.
pub const CHALLENGE_BACKEND: &str = "backend hapcert_challenge";
/// Where the single-node sandbox's HAProxy listens and forwards to.
const LOOPBACK: &str = "127.0.0.1";
/// The line [`defaults_section`] writes (or not) for `option idle-close-on-response`.
const IDLE_CLOSE: &str = "    option idle-close-on-response\n";

/// The whole config of the sandbox's HAProxy.
///
/// Notes for the reader:
/// - An EMPTY cert dir is fine for HAProxy 2.6 (checked): the bind still has default.pem.
/// - No `check` on the challenge server: hapcert listens only while it has a challenge pending.
pub fn config(layout: &Layout, ports: &Ports, default_pem: &Path) -> String {
    [
        global_section(Some(&layout.admin_sock())),
        defaults_section(true),
        http_frontend_section(ports),
        https_frontend_section(ports.https, default_pem, &layout.cert_dir()),
    ]
    .join("\n")
}

/// `global`, with the admin stats socket at `admin_sock`, or without any stats socket (then only the
/// master socket remains, as on a host whose HAProxy has no runtime API socket).
pub fn global_section(admin_sock: Option<&Path>) -> String {
    let stats = admin_sock.map_or(String::new(), |sock| {
        format!("    stats socket {} level admin expose-fd listeners\n", sock.display())
    });
    // hard-stop-after bounds how long an old worker lingers after a reload, so a test's Drop never
    // waits on one holding a keep-alive connection.
    format!("global\n{stats}    hard-stop-after 5s\n    log stderr format raw local0\n")
}

/// `defaults`. `idle_close` writes `option idle-close-on-response`: without it, a reload closes idle
/// keep-alive connections at once, and a client that sends on one at that moment gets no answer
/// (measured in /work/shared/notes/haproxy.md §3); with it, the old worker answers one more request
/// with `Connection: close`.
pub fn defaults_section(idle_close: bool) -> String {
    let idle_close = if idle_close { IDLE_CLOSE } else { "" };
    format!(
        "\
defaults
    mode http
    log global
    option httplog
{idle_close}    timeout connect 2s
    timeout client 10s
    timeout server 10s
"
    )
}

/// The plain frontend (Pebble's httpPort): redirects to https except the challenge path, which goes to
/// hapcert's side port. The redirect is an http-request rule, which HAProxy always evaluates before
/// use_backend whatever the order in the file (it warns if written after), so it carries `unless acme`.
pub fn http_frontend_section(ports: &Ports) -> String {
    http_frontend_section_at(LOOPBACK, ports)
}

/// [`http_frontend_section`] bound to `addr`, forwarding the challenge path to `addr`:side (a fleet node's HAProxy and
/// hapcert both listen on the node's own 127.0.0.x).
pub fn http_frontend_section_at(addr: &str, ports: &Ports) -> String {
    plain_frontend_at(addr, ports, "http-request redirect scheme https unless acme", "")
}

/// A plain frontend for `[challenge] mode = "stateless"`, under the same header as [`http_frontend_section`] (so
/// `http_frontend_of` finds it): HAProxy answers `<token>.<thumbprint>` itself, with the rule `hapcert haproxy-config`
/// prints, and redirects everything else. No challenge backend: nothing listens on the side port in this mode.
pub fn stateless_frontend_section_at(addr: &str, http_port: u16, thumbprint: &str) -> String {
    format!(
        "\
{HTTP_FRONTEND}
    bind {addr}:{http_port}
    http-request return status 200 content-type text/plain lf-string \"%[path,field(-1,/)].{thumbprint}\" if {{ path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$ }}
    http-request redirect scheme https unless {{ path_beg /.well-known/acme-challenge/ }}
"
    )
}

/// Like [`http_frontend_section`] but the redirect has no `unless acme`: the challenge path is
/// shadowed, every request gets a redirect and hapcert's responder is never reached.
pub fn frontend_redirect_shadowing(ports: &Ports) -> String {
    plain_frontend(ports, "http-request redirect scheme https", "")
}

/// Like [`http_frontend_section`] but the challenge server is health-checked. With `fall 1` the first
/// failed check (a refused connect, run right after start) marks it DOWN, and with `rise 2` at
/// `inter 10s` it stays DOWN for 20 s after something starts listening: meanwhile HAProxy answers the
/// challenge path with 503 itself. See `Sandbox::wait_challenge_backend_down`.
pub fn frontend_health_checked(ports: &Ports) -> String {
    plain_frontend(
        ports,
        "http-request redirect scheme https unless acme",
        " check inter 10s fall 1 rise 2",
    )
}

fn plain_frontend(ports: &Ports, redirect: &str, server_options: &str) -> String {
    plain_frontend_at(LOOPBACK, ports, redirect, server_options)
}

fn plain_frontend_at(addr: &str, ports: &Ports, redirect: &str, server_options: &str) -> String {
    let Ports { http, side, .. } = ports;
    format!(
        "\
{HTTP_FRONTEND}
    bind {addr}:{http}
    acl acme path_beg /.well-known/acme-challenge/
    {redirect}
    use_backend hapcert_challenge if acme

{CHALLENGE_BACKEND}
    server hapcert {addr}:{side}{server_options}
"
    )
}

/// The TLS frontend, answering every request with 200 "ok".
/// - default.pem comes first so it stays the certificate for clients without (or unknown) SNI;
///   otherwise the alphabetically first file of the directory would be.
/// - HAProxy names the directory's implicit crt-list without the trailing slash (`.../certs`),
///   which is what `add ssl crt-list` expects.
pub fn https_frontend_section(https_port: u16, default_pem: &Path, cert_dir: &Path) -> String {
    https_frontend_section_at(LOOPBACK, https_port, default_pem, cert_dir)
}

/// [`https_frontend_section`] bound to `addr`.
pub fn https_frontend_section_at(addr: &str, https_port: u16, default_pem: &Path, cert_dir: &Path) -> String {
    format!(
        "\
frontend https
    bind {addr}:{https_port} ssl crt {default} crt {certs}/
    http-request return status 200 content-type text/plain string ok
",
        default = default_pem.display(),
        certs = cert_dir.display()
    )
}

/// The exact text of the plain frontend and the challenge backend in `cfg`: from the
/// [`HTTP_FRONTEND`] header line to the end of the section after it if that is [`CHALLENGE_BACKEND`],
/// ending with the last line's `\n` but without the blank line before the next section (the same shape
/// as [`http_frontend_section`]). None if `cfg` has no such frontend.
pub fn http_frontend_of(cfg: &str) -> Option<&str> {
    let mut start = None;
    let mut end = cfg.len();
    let mut offset = 0;
    for line in cfg.split_inclusive('\n') {
        let header = line.trim_end();
        let is_header = !header.is_empty() && !line.starts_with([' ', '\t', '#']);
        match start {
            None if header == HTTP_FRONTEND => start = Some(offset),
            // The first header after the frontend that is not the challenge backend ends the span.
            Some(_) if is_header && header != CHALLENGE_BACKEND => {
                end = offset;
                break;
            }
            _ => {}
        }
        offset += line.len();
    }
    let span = &cfg[start?..end];
    let kept = span.trim_end_matches('\n').len();
    Some(&span[..(kept + 1).min(span.len())])
}
