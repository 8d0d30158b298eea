//! Reading HAProxy's Runtime API replies. This is pure text parsing with no I/O, so every reply shape is tested against
//! text captured from HAProxy 2.6.12, and from 3.0, 3.2 and 3.4 where they answer differently (see the tests at the
//! bottom, and /work/shared/notes/haproxy.md and haproxy-versions.md).
//!
//! The CA-file and CRL-file replies (`show ssl ca-file`, `show ssl crl-file`, with or without a name) read the same on
//! 2.6, 3.0, 3.2 and 3.4, byte for byte, except `Status: Uncommitted` for a transaction on 3.2+ (as for certificates).
//!
//! Every reply ends with an empty line. A reply without one was cut off, for example because the connection dropped or the
//! command was never finished. None of these functions accepts such a reply, so a truncated list is never taken as the
//! whole list.

use time::{OffsetDateTime, PrimitiveDateTime};

/// What `show ssl cert` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertList {
    /// The certificate files HAProxy has in memory, in the order it lists them.
    pub files: Vec<String>,
    /// The path of the open transaction, if there is one. HAProxy 2.6 allows one per process.
    pub transaction: Option<String>,
}

/// `Status:` in `show ssl cert <path>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Served by at least one bind line.
    Used,
    /// Loaded, but no bind line refers to it yet (for example after `new` + `commit` but before `add ssl crt-list`).
    Unused,
    /// Created by `new ssl cert`, and nothing committed into it yet.
    Empty,
    /// 3.2 and later, for a transaction (`*<path>`): set, not committed.
    Uncommitted,
}

/// What `show ssl cert <path>` says about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// As HAProxy prints it. When a transaction is being shown, it has a `*` in front.
    pub filename: String,
    pub status: CertStatus,
    /// Lower-case hex in whole bytes without the DER sign byte, the same form openssl prints: `0abc`, `ff1002`.
    pub serial: Option<String>,
    /// SHA-1 of the leaf's DER, in lower-case hex without colons.
    pub sha1_fingerprint: Option<String>,
    /// As HAProxy prints it, e.g. `Nov 23 10:46:53 2027 GMT`; [`openssl_time`] reads it.
    pub not_after: Option<String>,
    /// As HAProxy prints it, like `not_after`.
    pub not_before: Option<String>,
    /// As HAProxy prints it, in its `/C=../CN=..` one-line form.
    pub subject: Option<String>,
    /// The DNS names only. HAProxy 2.6 leaves out IP addresses, and so does this list.
    pub sans: Vec<String>,
    /// E.g. `EC256`, `RSA2048`.
    pub algorithm: Option<String>,
    /// 3.2 and later: the file HAProxy read the certificate from, as the config wrote it. For a crt-store alias
    /// (`@store/alias`) that is relative to the store's `crt-base`, e.g. `a.pem`; 3.0 does not say it at all.
    pub crt_filename: Option<String>,
}

/// What the master's `show proc` says. Only its own line is read: the worker lists differ between versions (after a
/// failed reload, 3.2 and later list the worker that keeps serving under `# old workers`, with `# workers` empty, where
/// 2.6 and 3.0 keep it under `# workers`), and nothing hapcert decides needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// The master's reload counter, which goes up by one for every reload, whether it failed or not.
    pub reloads: u64,
    /// The `[failed: N]` counter of the master line, or 0 if the line has none. A successful reload sets it back to 0.
    pub failed: u64,
}

/// The reply's lines, without the empty line that ends it. None if the reply is not complete.
fn lines(reply: &str) -> Option<Vec<&str>> {
    let body = reply.strip_suffix("\n\n")?;
    Some(if body.is_empty() {
        Vec::new()
    } else {
        body.split('\n').collect()
    })
}

/// `show ssl cert`. An open transaction is listed first:
/// ```text
/// # transaction
/// */etc/haproxy/certs/a.pem
/// # filename
/// /etc/haproxy/certs/a.pem
/// ```
pub fn cert_list(reply: &str) -> Option<CertList> {
    let (files, transaction) = listing(reply)?;
    Some(CertList {
        files: files.into_iter().map(str::to_owned).collect(),
        transaction: transaction.map(str::to_owned),
    })
}

/// The shape `show ssl cert`, `show ssl ca-file` and `show ssl crl-file` share: the open transaction (one per kind and
/// process) under `# transaction` with a `*` in front, then every entry under `# filename`. The lines as they are,
/// the transaction's without its `*`.
fn listing(reply: &str) -> Option<(Vec<&str>, Option<&str>)> {
    enum Section {
        Transaction,
        Files,
    }
    let mut section = None;
    let (mut files, mut transaction) = (Vec::new(), None);
    for line in lines(reply)? {
        match (line, &section) {
            ("# transaction", _) => section = Some(Section::Transaction),
            ("# filename", _) => section = Some(Section::Files),
            // An unknown header or text before any header is a different reply, e.g. "Unknown command".
            (_, None) => return None,
            _ if line.starts_with('#') => return None,
            (_, Some(Section::Transaction)) => transaction = Some(line.strip_prefix('*').unwrap_or(line)),
            (_, Some(Section::Files)) => files.push(line),
        }
    }
    // Every such reply has the `# filename` header, even when it lists nothing.
    section.is_some().then_some((files, transaction))
}

/// `Status:` of a certificate, CA file or CRL file.
fn cert_status(value: &str) -> Option<CertStatus> {
    Some(match value {
        "Used" => CertStatus::Used,
        "Unused" => CertStatus::Unused,
        "Empty" => CertStatus::Empty,
        "Uncommitted" => CertStatus::Uncommitted,
        _ => return None,
    })
}

/// `show ssl cert <path>`: `Key: value` lines. Only `Filename` and `Status` are always there: an `Empty` certificate has
/// nothing else.
pub fn cert_info(reply: &str) -> Option<CertInfo> {
    let mut filename = None;
    let mut status = None;
    let mut info = CertInfo {
        filename: String::new(),
        status: CertStatus::Empty,
        serial: None,
        sha1_fingerprint: None,
        not_after: None,
        not_before: None,
        subject: None,
        sans: Vec::new(),
        algorithm: None,
        crt_filename: None,
    };
    for line in lines(reply)? {
        // The key never contains a colon; the value may (notAfter has a time of day).
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        let known = (!value.is_empty()).then(|| value.to_owned());
        match key {
            "Filename" => filename = Some(value.to_owned()),
            "Status" => status = Some(cert_status(value)?),
            "Serial" => info.serial = known.map(|hex| whole_bytes(&hex.to_ascii_lowercase())),
            "SHA1 FingerPrint" => info.sha1_fingerprint = known.map(|hex| hex.to_ascii_lowercase()),
            "notAfter" => info.not_after = known,
            "notBefore" => info.not_before = known,
            "Subject" => info.subject = known,
            "Algorithm" => info.algorithm = known,
            "Crt filename" => info.crt_filename = known,
            // "DNS:a.example, DNS:www.a.example, " (the trailing comma is where an IP address was left out).
            "Subject Alternative Name" => {
                info.sans = value
                    .split(',')
                    .filter_map(|name| name.trim().strip_prefix("DNS:"))
                    .map(str::to_owned)
                    .collect()
            }
            // Issuer, Chain Subject, Chain Issuer, OCSP Response Key: not needed; nor the rest of
            // what 3.2 and 3.4 add (`Key filename`, `OCSP filename`, `SCTL filename`, `Option: ...`).
            _ => {}
        }
    }
    info.filename = filename?;
    info.status = status?;
    Some(info)
}

/// HAProxy already prints whole bytes (`05`, `0ABC`). This is a guard so that the serial always compares equal to the
/// openssl form.
fn whole_bytes(hex: &str) -> String {
    if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    }
}

/// A time as HAProxy prints it, which is OpenSSL's `ASN1_TIME_print`: `Nov 23 10:46:53 2027 GMT`, the day padded with a
/// space (`Jan  5 10:00:00 2027 GMT`), and fractions of a second when the certificate has them. Always UTC.
pub fn openssl_time(text: &str) -> Option<OffsetDateTime> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second][optional [.[subsecond]]] [year] GMT"
    );
    PrimitiveDateTime::parse(text.trim(), FORMAT)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// What `show ssl ca-file` lists: each CA file with how many certificates it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFileList {
    pub files: Vec<CaFileEntry>,
    /// The CA file of the open transaction, if there is one (one per process).
    pub transaction: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFileEntry {
    /// A path, or `@system-ca` for the distribution's trust store.
    pub name: String,
    pub certificates: usize,
}

/// What `show ssl crl-file` lists: the same as `show ssl cert`, with the same headers.
pub type CrlFileList = CertList;

/// What `show ssl ca-file <name>` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFileInfo {
    /// As HAProxy prints it: a `*` in front for a transaction.
    pub filename: String,
    pub status: CertStatus,
    pub certificates: Vec<CaCertInfo>,
}

/// One certificate of a CA file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertInfo {
    /// Lower-case hex in whole bytes, as in [`CertInfo::serial`].
    pub serial: Option<String>,
    /// `/C=../CN=..`, as HAProxy prints it.
    pub subject: Option<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

/// What `show ssl crl-file <name>` says. One file may hold several CRLs: HAProxy checks revocation for the whole chain,
/// so a file usually has one CRL per CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFileInfo {
    pub filename: String,
    pub status: CertStatus,
    pub crls: Vec<CrlInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub issuer: Option<String>,
    pub last_update: Option<OffsetDateTime>,
    /// None when the CRL has no nextUpdate.
    pub next_update: Option<OffsetDateTime>,
}

/// `show ssl ca-file`: `<name> - <n> certificate(s)` per line, under the same headers as `show ssl cert`.
pub fn ca_file_list(reply: &str) -> Option<CaFileList> {
    // The name may hold " - " itself; the count is after the last one.
    let entry = |line: &str| -> Option<CaFileEntry> {
        let (name, count) = line.rsplit_once(" - ")?;
        let certificates = count.strip_suffix(" certificate(s)")?.parse().ok()?;
        Some(CaFileEntry {
            name: name.to_owned(),
            certificates,
        })
    };
    let (files, transaction) = listing(reply)?;
    Some(CaFileList {
        files: files.into_iter().map(entry).collect::<Option<_>>()?,
        transaction: match transaction {
            Some(line) => Some(entry(line)?.name),
            None => None,
        },
    })
}

/// `show ssl crl-file`: one name per line, under the same headers as `show ssl cert`.
pub fn crl_file_list(reply: &str) -> Option<CrlFileList> {
    cert_list(reply)
}

/// The `Filename:` and `Status:` lines that open the detail of a CA file or CRL file, and the lines after them. These
/// two lines come first, always: anything else (such as "Can't display the CA file : Not found!") is another reply.
fn file_detail(reply: &str) -> Option<(String, CertStatus, Vec<&str>)> {
    let lines = lines(reply)?;
    let [first, second, rest @ ..] = lines.as_slice() else {
        return None;
    };
    let filename = first.strip_prefix("Filename: ")?;
    let status = cert_status(second.strip_prefix("Status: ")?)?;
    Some((filename.to_owned(), status, rest.to_vec()))
}

/// A time line's value: empty is no time, anything else must read as one, or the whole reply is refused.
fn time_value(value: &str) -> Option<Option<OffsetDateTime>> {
    match value.trim() {
        "" => Some(None),
        text => openssl_time(text).map(Some),
    }
}

/// `show ssl ca-file <name>`: after `Filename:` and `Status:`, a block per certificate, each opened by a line holding
/// one space and `Certificate #<n>:`, then `Key: value` lines. (An empty CA file is answered with a bare newline on
/// every version tried, which is not a complete reply: its count in the list says it is empty.)
pub fn ca_file_info(reply: &str) -> Option<CaFileInfo> {
    let (filename, status, rest) = file_detail(reply)?;
    let mut certificates: Vec<CaCertInfo> = Vec::new();
    for line in rest {
        if line.trim().is_empty() {
            continue;
        }
        // Numbered by the store's objects, so a CRL inside a CA file leaves a gap: the number is not checked.
        if line.starts_with("Certificate #") && line.ends_with(':') {
            certificates.push(CaCertInfo {
                serial: None,
                subject: None,
                not_before: None,
                not_after: None,
            });
            continue;
        }
        let (key, value) = line.split_once(':')?;
        let cert = certificates.last_mut()?;
        let value = value.trim();
        let known = (!value.is_empty()).then(|| value.to_owned());
        match key {
            "Serial" => cert.serial = known.map(|hex| whole_bytes(&hex.to_ascii_lowercase())),
            "Subject" => cert.subject = known,
            "notBefore" => cert.not_before = time_value(value)?,
            "notAfter" => cert.not_after = time_value(value)?,
            // Subject Alternative Name, Algorithm, SHA1 FingerPrint, Issuer.
            _ => {}
        }
    }
    Some(CaFileInfo {
        filename,
        status,
        certificates,
    })
}

/// `show ssl crl-file <name>`: after `Filename:` and `Status:`, a block per CRL opened by `Certificate Revocation List
/// #<n>:`, with `Version 2`, `Issuer:`, `Last Update:`, `Next Update:`, then the revoked serials indented (or `No
/// Revoked Certificates.`).
pub fn crl_file_info(reply: &str) -> Option<CrlFileInfo> {
    let (filename, status, rest) = file_detail(reply)?;
    let mut crls: Vec<CrlInfo> = Vec::new();
    for line in rest {
        // The separator line (one space) and the revoked entries are indented.
        if line.is_empty() || line.starts_with(' ') {
            continue;
        }
        if line.starts_with("Certificate Revocation List #") && line.ends_with(':') {
            crls.push(CrlInfo {
                issuer: None,
                last_update: None,
                next_update: None,
            });
            continue;
        }
        let crl = crls.last_mut()?;
        let Some((key, value)) = line.split_once(':') else {
            // `Version 2`, `No Revoked Certificates.`
            continue;
        };
        match key {
            "Issuer" => crl.issuer = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            "Last Update" => crl.last_update = time_value(value)?,
            // HAProxy stops the CRL's text right after `Next Update: ` when it has none.
            "Next Update" => crl.next_update = time_value(value)?,
            // Signature Algorithm, Revoked Certificates.
            _ => {}
        }
    }
    Some(CrlFileInfo { filename, status, crls })
}

/// `show ssl crt-list`: one crt-list name per line. A `crt <dir>/` bind counts as a crt-list named `<dir>`.
pub fn crt_lists(reply: &str) -> Option<Vec<String>> {
    let lines = lines(reply)?;
    // A header or a help text means some other reply, e.g. the master's answer to a command without `@1`.
    if lines
        .iter()
        .any(|line| line.starts_with('#') || line.starts_with("Unknown command"))
    {
        return None;
    }
    Some(lines.into_iter().map(str::to_owned).collect())
}

/// `show ssl crt-list <list>`: the certificate files of one crt-list, after its `# <list>` header. An entry may carry
/// `[options]` and SNI filters after its file, and a file name's spaces are escaped with a backslash:
/// ```text
/// # @https
/// /etc/haproxy/certs/a.pem
/// /etc/haproxy/certs/b.pem [alpn h2] b.example
/// ```
pub fn crt_list_files(reply: &str) -> Option<Vec<String>> {
    let lines = lines(reply)?;
    let (header, entries) = lines.split_first()?;
    header.strip_prefix("# ")?;
    let file = |entry: &str| {
        let mut name = String::new();
        let mut chars = entry.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => name.extend(chars.next()),
                ' ' => break,
                c => name.push(c),
            }
        }
        name
    };
    Some(entries.iter().map(|entry| file(entry)).collect())
}

/// The master's `show proc` in 2.6:
/// ```text
/// #<PID>          <type>          <reloads>       <uptime>        <version>
/// 25465           master          1 [failed: 0]   0d00h01m14s     2.6.12-1+deb12u4
/// # workers
/// 27305           worker          0               0d00h00m00s     2.6.12-1+deb12u4
/// # old workers
/// 25468           worker          1               0d00h01m14s     2.6.12-1+deb12u4
/// # programs
/// ```
pub fn proc_info(reply: &str) -> Option<ProcInfo> {
    let mut master = None;
    for line in lines(reply)? {
        let mut fields = line.split_whitespace();
        if line.starts_with('#') || fields.nth(1) != Some("master") {
            continue;
        }
        let reloads = fields.next()?.parse().ok()?;
        let failed = match line.split_once("[failed:") {
            Some((_, rest)) => rest.trim_start().split(']').next()?.trim().parse().ok()?,
            None => 0,
        };
        master = Some(ProcInfo { reloads, failed });
    }
    master
}

/// `set ssl cert <path> <<`: `Transaction created for certificate <path>!`, or `... updated ...` when a transaction for
/// this path was open already. With 2.6's bug, a `set` for B while A's transaction is open answers `Transaction updated
/// for certificate A!`. That names a different path, so it does not count as accepted.
pub fn set_accepted(reply: &str, path: &str) -> bool {
    lines(reply).is_some_and(|lines| {
        lines == [format!("Transaction created for certificate {path}!")]
            || lines == [format!("Transaction updated for certificate {path}!")]
    })
}

/// `commit ssl cert <path>`: `Committing <path>` and one dot per bind line that uses the certificate, then `Success!`.
pub fn commit_succeeded(reply: &str, path: &str) -> bool {
    progress_then_success(reply, &format!("Committing {path}"))
}

/// `abort ssl cert <path>`: `Transaction aborted for certificate '<path>'!`.
pub fn abort_succeeded(reply: &str, path: &str) -> bool {
    lines(reply).is_some_and(|lines| lines == [format!("Transaction aborted for certificate '{path}'!")])
}

/// `new ssl cert <path>`: `New empty certificate store '<path>'!`.
pub fn new_succeeded(reply: &str, path: &str) -> bool {
    lines(reply).is_some_and(|lines| lines == [format!("New empty certificate store '{path}'!")])
}

/// `add ssl crt-list <list> <path>`: `Inserting certificate '<path>' in crt-list '<list>'` and one dot per bind line,
/// then `Success!`. HAProxy prints the list name without a trailing slash even when the command had one.
pub fn crt_list_add_succeeded(reply: &str, path: &str, list: &str) -> bool {
    let list = list.trim_end_matches('/');
    progress_then_success(reply, &format!("Inserting certificate '{path}' in crt-list '{list}'"))
}

/// `del ssl crt-list <list> <path>`: `Entry '<path>' deleted in crtlist '<list>'!` (the list without a trailing slash, as
/// in `add`). An entry that is not there is `Can't delete the entry: certificate '<path>' can't be found in crt-list
/// '<list>'!`, the same in 2.6, 3.0 and 3.4.
pub fn crt_list_del_succeeded(reply: &str, path: &str, list: &str) -> bool {
    let list = list.trim_end_matches('/');
    lines(reply).is_some_and(|lines| lines == [format!("Entry '{path}' deleted in crtlist '{list}'!")])
}

/// What `del ssl cert <path>` answered.
#[derive(Debug, PartialEq, Eq)]
pub enum CertDelReply {
    /// `Certificate '<path>' deleted!`.
    Deleted,
    /// `Can't remove the certificate: certificate '<path>' doesn't exist!`: nothing of it is loaded.
    Absent,
    /// Anything else, such as `... in use, can't be deleted!` while a crt-list or a bind still names it.
    Other,
}

/// `del ssl cert <path>`. 2.6 ends its refusals with one more empty line than 3.x; both are read.
pub fn cert_del(reply: &str, path: &str) -> CertDelReply {
    let text = reply.trim_end_matches('\n');
    if !reply.ends_with("\n\n") {
        return CertDelReply::Other;
    }
    if text == format!("Certificate '{path}' deleted!") {
        CertDelReply::Deleted
    } else if text == format!("Can't remove the certificate: certificate '{path}' doesn't exist!") {
        CertDelReply::Absent
    } else {
        CertDelReply::Other
    }
}

/// What the master's `reload` answered.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadReply {
    /// `Success=1` (3.0 and later, once the new worker has loaded), or 2.6's empty reply.
    Done,
    /// 3.1 and later: another reload is still loading its configuration, and this one was not started. Asking again a
    /// little later is right.
    Busy,
    /// `Success=0` and the new worker's startup log, its `[ALERT]` lines first: they hold the cause, and come after
    /// many `[NOTICE]` lines in the log, where a one-line summary would cut them off.
    Failed(String),
}

/// The master's answer to `reload`.
pub fn reload_reply(reply: &str) -> ReloadReply {
    let text = reply.trim();
    if text.is_empty() || text.starts_with("Success=1") {
        return ReloadReply::Done;
    }
    let log: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && *line != "--" && !line.starts_with("Success="))
        .collect();
    if log
        .iter()
        .any(|line| line.contains("Another reload is still in progress"))
    {
        return ReloadReply::Busy;
    }
    let (alerts, rest): (Vec<&str>, Vec<&str>) = log.into_iter().partition(|line| line.contains("[ALERT]"));
    ReloadReply::Failed(alerts.into_iter().chain(rest).collect::<Vec<_>>().join("\n"))
}

/// `<start>` and any number of progress dots on the first line, then `Success!`.
fn progress_then_success(reply: &str, start: &str) -> bool {
    match lines(reply).as_deref() {
        Some([first, "Success!"]) => first
            .strip_prefix(start)
            .is_some_and(|dots| dots.bytes().all(|b| b == b'.')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! The fixtures were captured byte for byte with socat from HAProxy 2.6.12-1+deb12u4, and from 3.0, 3.2 and 3.4 in
    //! their test trees, on scratch instances with certificates in /tmp/hx. A few are shortened or made up, and their
    //! comments say so.

    use super::*;

    const A: &str = "/tmp/hx/certs/a.example.pem";
    const B: &str = "/tmp/hx/certs/b.example.pem";

    #[test]
    fn cert_list_without_transaction() {
        let reply = "# filename\n/tmp/hx/certs/a.example.pem\n/tmp/hx/certs/b.example.pem\n/tmp/hx/default.pem\n\n";
        let list = cert_list(reply).unwrap();
        assert_eq!(list.files, [A, B, "/tmp/hx/default.pem"]);
        assert_eq!(list.transaction, None);
    }

    #[test]
    fn cert_list_with_transaction() {
        let reply = "# transaction\n*/tmp/hx/certs/a.example.pem\n# filename\n/tmp/hx/certs/a.example.pem\n\
                     /tmp/hx/certs/b.example.pem\n/tmp/hx/default.pem\n\n";
        let list = cert_list(reply).unwrap();
        assert_eq!(list.files, [A, B, "/tmp/hx/default.pem"]);
        assert_eq!(list.transaction.as_deref(), Some(A));
    }

    #[test]
    fn cert_list_keeps_unusual_names() {
        // A file name with a space and a semicolon; on the command line they are escaped with a backslash.
        let reply = "# filename\n/tmp/hx/certs/sp ace;x.pem\n\n";
        assert_eq!(cert_list(reply).unwrap().files, ["/tmp/hx/certs/sp ace;x.pem"]);
    }

    #[test]
    fn cert_list_rejects_other_and_cut_replies() {
        assert_eq!(cert_list("# filename\n/tmp/hx/certs/a.example.pem\n"), None);
        assert_eq!(cert_list(""), None);
        assert_eq!(cert_list(UNKNOWN_COMMAND), None);
    }

    /// The start of what the master answers to a worker command sent without `@1`.
    const UNKNOWN_COMMAND: &str = "Unknown command, but maybe one of the following ones is a better match:\n  \
        show cli level                          : display the level of the current CLI session\n  \
        quit                                    : disconnect\n\n";

    #[test]
    fn cert_info_used() {
        let reply = "Filename: /tmp/hx/certs/b.example.pem\nStatus: Used\nSerial: 7F01\n\
            notBefore: Nov 23 10:49:26 2026 GMT\nnotAfter: Feb 21 10:49:26 2027 GMT\n\
            Subject Alternative Name: DNS:b.example, DNS:www.b.example\nAlgorithm: EC256\n\
            SHA1 FingerPrint: 8DD663EE8663359A512169D4330E60E7E6C561C8\nSubject: /CN=b.example\n\
            Issuer: /CN=Scratch CA\nChain Subject: /CN=Scratch CA\nChain Issuer: /CN=Scratch CA\nOCSP Response Key: \n\n";
        let info = cert_info(reply).unwrap();
        assert_eq!(
            info,
            CertInfo {
                filename: B.to_owned(),
                status: CertStatus::Used,
                serial: Some("7f01".to_owned()),
                sha1_fingerprint: Some("8dd663ee8663359a512169d4330e60e7e6c561c8".to_owned()),
                not_after: Some("Feb 21 10:49:26 2027 GMT".to_owned()),
                not_before: Some("Nov 23 10:49:26 2026 GMT".to_owned()),
                subject: Some("/CN=b.example".to_owned()),
                sans: vec!["b.example".to_owned(), "www.b.example".to_owned()],
                algorithm: Some("EC256".to_owned()),
                crt_filename: None,
            }
        );
    }

    #[test]
    fn cert_info_of_a_transaction_with_an_ip_san_and_a_leading_zero_serial() {
        // `show ssl cert *<path>`; the certificate's SANs were DNS:a.example, DNS:www.a.example, IP:127.0.0.1.
        let reply = "Filename: */tmp/hx/certs/a.example.pem\nStatus: Unused\nSerial: 0ABC\n\
            notBefore: Nov 23 10:47:15 2026 GMT\nnotAfter: Nov 23 10:47:15 2027 GMT\n\
            Subject Alternative Name: DNS:a.example, DNS:www.a.example, \nAlgorithm: EC256\n\
            SHA1 FingerPrint: 2EE7EF61D16556346882DD9986FF2FDEDBC20710\nSubject: /CN=a.example\n\
            Issuer: /CN=a.example\nOCSP Response Key: \n\n";
        let info = cert_info(reply).unwrap();
        assert_eq!(info.filename, format!("*{A}"));
        assert_eq!(info.status, CertStatus::Unused);
        assert_eq!(info.serial.as_deref(), Some("0abc"));
        assert_eq!(info.sans, ["a.example", "www.a.example"]);
    }

    #[test]
    fn cert_info_serials_are_whole_bytes_without_sign_byte() {
        // DER serial 00 ff 10 02 (openssl: serial=FF1002), and serial 5 of an RSA certificate. Shortened to the lines
        // that matter here.
        let reply = "Filename: /tmp/hx/certs/a.example.pem\nStatus: Used\nSerial: FF1002\nAlgorithm: RSA2048\n\n";
        assert_eq!(cert_info(reply).unwrap().serial.as_deref(), Some("ff1002"));
        let reply = "Filename: /tmp/hx/certs/a.example.pem\nStatus: Unused\nSerial: 05\nAlgorithm: RSA2048\n\n";
        let info = cert_info(reply).unwrap();
        assert_eq!(info.serial.as_deref(), Some("05"));
        assert_eq!(info.algorithm.as_deref(), Some("RSA2048"));
    }

    // Captured from HAProxy 3.0.11-1+deb13u4 (trixie), 3.2.26-1 (sid) and 3.4 (experimental), each in its test tree
    // (scripts/lib/tools.sh), with `crt-store web` holding `load crt "a.pem" alias "site"` under `crt-base
    // /tmp/hx/certs`; notBefore, Subject and Issuer lines left out.
    const STORE_ALIAS_3_0: &str = "Filename: @web/site\nStatus: Used\n\
        Serial: 75A26CA69EAEBB5D1F23CB0A05FB1AD417148C89\nnotAfter: Dec  9 04:44:27 2026 GMT\n\
        Subject Alternative Name: DNS:a.test\nAlgorithm: EC256\n\
        SHA1 FingerPrint: 5339F19DB5D4C34056E8A12B9010606B682D4CEE\nOCSP Response Key: \n\n";
    const STORE_ALIAS_3_4: &str = "Filename: @web/site\nCrt filename: a.pem\nOption: ocsp-update off\n\
        Option: jwt off\nStatus: Used\nSerial: 75A26CA69EAEBB5D1F23CB0A05FB1AD417148C89\n\
        notAfter: Dec  9 04:44:27 2026 GMT\nSubject Alternative Name: DNS:a.test\nAlgorithm: EC256\n\
        SHA1 FingerPrint: 5339F19DB5D4C34056E8A12B9010606B682D4CEE\nOCSP Response Key: \n\n";

    #[test]
    fn cert_info_of_a_crt_store_alias_on_3_0_and_3_4() {
        let old = cert_info(STORE_ALIAS_3_0).unwrap();
        assert_eq!((old.filename.as_str(), old.status), ("@web/site", CertStatus::Used));
        assert_eq!(old.crt_filename, None, "3.0 does not say which file an alias holds");
        let new = cert_info(STORE_ALIAS_3_4).unwrap();
        assert_eq!(
            new.crt_filename.as_deref(),
            Some("a.pem"),
            "relative to the store's crt-base"
        );
        assert_eq!(new.sha1_fingerprint, old.sha1_fingerprint);
        assert_eq!(new.sans, ["a.test"]);
    }

    #[test]
    fn cert_info_of_a_3_2_transaction_is_uncommitted() {
        // 3.2.26 after `set ssl cert @web/site`, shown as `show ssl cert *@web/site` (3.0 says `Unused` here).
        let reply = "Filename: *@web/site\nCrt filename: a.pem\nStatus: Uncommitted\n\
            Serial: 327BC8FF44F5806E746ED803B2D55228B5D9F0F6\nnotAfter: Dec  9 04:44:27 2026 GMT\n\
            Subject Alternative Name: DNS:c.test\nAlgorithm: EC256\n\
            SHA1 FingerPrint: 2DB149B09990CFB81014BB8263A463D45008F51F\nOCSP Response Key: \n\n";
        let info = cert_info(reply).unwrap();
        assert_eq!(info.status, CertStatus::Uncommitted);
        assert_eq!(info.serial.as_deref(), Some("327bc8ff44f5806e746ed803b2d55228b5d9f0f6"));
    }

    #[test]
    fn cert_list_with_a_transaction_on_an_alias() {
        // 3.0.11 and 3.2.26 alike.
        let reply = "# transaction\n*@web/site\n# filename\n/tmp/hx/b.pem\n@web/site\n\n";
        let list = cert_list(reply).unwrap();
        assert_eq!(list.files, ["/tmp/hx/b.pem", "@web/site"]);
        assert_eq!(list.transaction.as_deref(), Some("@web/site"));
    }

    #[test]
    fn cert_info_empty_store() {
        let reply = "Filename: /tmp/hx/certs/new.example.pem\nStatus: Empty\nOCSP Response Key: \n\n";
        let info = cert_info(reply).unwrap();
        assert_eq!(info.status, CertStatus::Empty);
        assert_eq!((info.serial, info.sha1_fingerprint, info.not_after), (None, None, None));
        assert!(info.sans.is_empty());
    }

    #[test]
    fn cert_info_unknown_path() {
        assert_eq!(
            cert_info("Can't display the certificate: Not found or the certificate is a bundle!\n\n"),
            None
        );
    }

    #[test]
    fn crt_lists_of_a_cert_dir() {
        assert_eq!(crt_lists("/tmp/hx/certs\n\n").unwrap(), ["/tmp/hx/certs"]);
        assert_eq!(crt_lists(UNKNOWN_COMMAND), None);
        assert_eq!(crt_lists("/tmp/hx/certs\n"), None);
        // 3.2.26 with `ssl-f-use crt ...` lines in `frontend f`: an implicit crt-list named after the frontend.
        assert_eq!(crt_lists("@f\n\n").unwrap(), ["@f"]);
    }

    #[test]
    fn crt_list_files_of_an_ssl_f_use_frontend() {
        // 3.2.26 and 3.4, the same.
        let reply = "# @f\n/tmp/hx/b.pem\n/tmp/hx/certs/a.pem\n\n";
        assert_eq!(crt_list_files(reply).unwrap(), ["/tmp/hx/b.pem", "/tmp/hx/certs/a.pem"]);
        // Options and filters after the file, and an escaped space in its name.
        let reply = "# /tmp/hx/list\n/tmp/hx/sp\\ ace.pem [alpn h2] b.example\n\n";
        assert_eq!(crt_list_files(reply).unwrap(), ["/tmp/hx/sp ace.pem"]);
        assert_eq!(crt_list_files(UNKNOWN_COMMAND), None);
        assert_eq!(crt_list_files("# @f\n/tmp/hx/b.pem\n"), None);
    }

    #[test]
    fn proc_info_after_start() {
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            25465           master          0 [failed: 0]   0d00h00m01s     2.6.12-1+deb12u4\n\
            # workers\n25468           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n\
            # programs\n\n";
        assert_eq!(proc_info(reply).unwrap(), ProcInfo { reloads: 0, failed: 0 });
    }

    #[test]
    fn proc_info_reads_the_master_line_only() {
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            25465           master          1 [failed: 0]   0d00h01m14s     2.6.12-1+deb12u4\n\
            # workers\n27305           worker          0               0d00h00m00s     2.6.12-1+deb12u4\n\
            # old workers\n25468           worker          1               0d00h01m14s     2.6.12-1+deb12u4\n\
            # programs\n\n";
        let info = proc_info(reply).unwrap();
        assert_eq!((info.reloads, info.failed), (1, 0));
    }

    #[test]
    fn a_reload_reply_is_done_busy_or_failed_with_its_alerts_first() {
        // 2.6 answers nothing. The rest captured from 3.0.11 and 3.2.26 through the master socket.
        assert_eq!(reload_reply(""), ReloadReply::Done);
        let done_3_2 = "Success=1\n--\n[NOTICE]   (18656) : Initializing new worker (18670)\n\
            [NOTICE]   (18656) : Loading success.\n[NOTICE]   (18656) : haproxy version is 3.2.26-1\n\
            [NOTICE]   (18656) : path to executable is /usr/sbin/haproxy\n\
            [WARNING]  (18656) : Former worker (18663) exited with code 0 (Exit)\n\n";
        assert_eq!(reload_reply(done_3_2), ReloadReply::Done);
        // 3.2.26, sent while a reload of 3,000 certificates was loading.
        assert_eq!(
            reload_reply("Success=0\n--\nAnother reload is still in progress.\n\n"),
            ReloadReply::Busy
        );
        let failed_3_0 = "Success=0\n--\n[NOTICE]   (18628) : haproxy version is 3.0.11-1+deb13u4\n\
            [NOTICE]   (18628) : path to executable is /usr/sbin/haproxy\n\
            [ALERT]    (18628) : config : parsing [/tmp/hx/r.cfg:19] : 'bind 127.0.0.1:18444' in section 'frontend' : \
            unable to stat SSL certificate from file '/nonexistent.pem' : No such file or directory.\n\
            [ALERT]    (18628) : config : Error(s) found in configuration file : /tmp/hx/r.cfg\n\
            [ALERT]    (18628) : config : Fatal errors found in configuration.\n\
            [WARNING]  (18628) : Loading failure!\n\n";
        let failed_3_2 = "Success=0\n--\n[NOTICE]   (18656) : Initializing new worker (18675)\n\
            [NOTICE]   (18675) : haproxy version is 3.2.26-1\n\
            [NOTICE]   (18675) : path to executable is /usr/sbin/haproxy\n\
            [ALERT]    (18675) : config : parsing [/tmp/hx/r.cfg:19] : 'bind 127.0.0.1:18444' in section 'frontend' : \
            unable to stat SSL certificate from file '/nonexistent.pem' : No such file or directory.\n\
            [ALERT]    (18675) : config : Error(s) found in configuration file : /tmp/hx/r.cfg\n\
            [ALERT]    (18675) : config : Fatal errors found in configuration.\n\
            [NOTICE]   (18656) : haproxy version is 3.2.26-1\n\
            [NOTICE]   (18656) : path to executable is /usr/sbin/haproxy\n\
            [WARNING]  (18656) : Failed to load worker (18675) exited with code 1 (Exit)\n\n";
        for (reply, lines) in [(failed_3_0, 6), (failed_3_2, 9)] {
            let ReloadReply::Failed(log) = reload_reply(reply) else {
                panic!("a failed reload: {reply}")
            };
            let first: Vec<&str> = log.lines().collect();
            assert!(
                first[0].contains("unable to stat SSL certificate from file '/nonexistent.pem'"),
                "{log}"
            );
            assert!(first[2].contains("Fatal errors found"), "{log}");
            assert!(first[3].starts_with("[NOTICE]"), "{log}");
            assert_eq!(first.len(), lines, "{log}");
        }
    }

    #[test]
    fn proc_info_after_a_failed_reload() {
        // The old worker keeps serving and stays in "# workers"; its own reload column went up.
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            25465           master          2 [failed: 1]   0d00h01m21s     2.6.12-1+deb12u4\n\
            # workers\n27305           worker          1               0d00h00m07s     2.6.12-1+deb12u4\n\
            # programs\n\n";
        let info = proc_info(reply).unwrap();
        assert_eq!((info.reloads, info.failed), (2, 1));
    }

    #[test]
    fn proc_info_after_a_failed_reload_on_3_0_and_3_2() {
        // Captured: 3.0.11 keeps the serving worker under `# workers`; 3.2.26 moves it to `# old workers`, drops
        // `# programs` and pads the version column. The master line says the same on both.
        let on_3_0 = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            18628           master          2 [failed: 1]   0d00h00m00s     3.0.11-1+deb13u4\n\
            # workers\n18643           worker          1               0d00h00m00s     3.0.11-1+deb13u4\n\
            # programs\n\n";
        let on_3_2 = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            18656           master          2 [failed: 1]   0d00h00m01s     3.2.26-1       \n\
            # workers\n# old workers\n\
            18670           worker          1               0d00h00m00s     3.2.26-1       \n\n";
        for reply in [on_3_0, on_3_2] {
            assert_eq!(proc_info(reply).unwrap(), ProcInfo { reloads: 2, failed: 1 }, "{reply}");
        }
    }

    #[test]
    fn proc_info_without_failed_column() {
        // Made up: a master line without `[failed: N]`, which 2.6 always prints.
        let reply = "#<PID> <type> <reloads> <uptime> <version>\n1 master 4 0d00h00m01s 2.4.0\n# workers\n7 worker 0 \
                     0d00h00m01s 2.4.0\n\n";
        let info = proc_info(reply).unwrap();
        assert_eq!((info.reloads, info.failed), (4, 0));
    }

    #[test]
    fn proc_info_rejects_other_replies() {
        assert_eq!(proc_info(UNKNOWN_COMMAND), None);
        assert_eq!(proc_info(""), None);
    }

    #[test]
    fn set_replies() {
        assert!(set_accepted(
            &format!("Transaction created for certificate {A}!\n\n"),
            A
        ));
        // A second `set` for the same path.
        assert!(set_accepted(
            &format!("Transaction updated for certificate {A}!\n\n"),
            A
        ));
        // The 2.6 bug: `set ssl cert B` while A's transaction is open.
        assert!(!set_accepted(
            &format!("Transaction updated for certificate {A}!\n\n"),
            B
        ));
        // Garbage payload.
        let garbage =
            format!("unable to load certificate from file '{A}'.\nCan't load the payload\nCan't update {A}!\n\n");
        assert!(!set_accepted(&garbage, A));
        // A path HAProxy has not loaded.
        let unknown = "Can't replace a certificate which is not referenced by the configuration!\n\
                       Can't update /tmp/hx/certs/zzz.pem!\n\n";
        assert!(!set_accepted(unknown, "/tmp/hx/certs/zzz.pem"));
        // A blank line inside the PEM: the certificate is taken, then every key line is an unknown command.
        let split = format!("Transaction created for certificate {A}!\n\n{UNKNOWN_COMMAND}");
        assert!(!set_accepted(&split, A));
        // Cut off before the empty line.
        assert!(!set_accepted(&format!("Transaction created for certificate {A}!\n"), A));
    }

    #[test]
    fn commit_replies() {
        assert!(commit_succeeded(&format!("Committing {A}.\nSuccess!\n\n"), A));
        // One dot per bind line: none for a certificate no bind uses yet, three for three binds.
        assert!(commit_succeeded(
            "Committing /tmp/hx/certs/n.pem\nSuccess!\n\n",
            "/tmp/hx/certs/n.pem"
        ));
        assert!(commit_succeeded(&format!("Committing {B}...\nSuccess!\n\n"), B));
        assert!(!commit_succeeded(&format!("Committing {B}.\nSuccess!\n\n"), A));
        let mismatch =
            format!("inconsistencies between private key and certificate loaded '{A}'.\nCan't commit {A}!\n\n");
        assert!(!commit_succeeded(&mismatch, A));
        let no_key =
            format!("The transaction must contain at least a certificate and a private key!\nCan't commit {A}!\n\n");
        assert!(!commit_succeeded(&no_key, A));
        assert!(!commit_succeeded(
            &format!("No ongoing transaction! !\nCan't commit {A}!\n\n"),
            A
        ));
        let other =
            format!("The ongoing transaction is about '{A}' but you are trying to set '{B}'\nCan't commit {B}!\n\n");
        assert!(!commit_succeeded(&other, B));
        assert!(!commit_succeeded(&format!("Committing {A}.\n"), A));
    }

    #[test]
    fn abort_replies() {
        assert!(abort_succeeded(
            &format!("Transaction aborted for certificate '{A}'!\n\n"),
            A
        ));
        assert!(!abort_succeeded("No ongoing transaction!\n\n", A));
        let other =
            format!("The ongoing transaction is about '{A}' but you are trying to abort a transaction for '{B}'\n\n");
        assert!(!abort_succeeded(&other, B));
    }

    #[test]
    fn new_replies() {
        let new = "/tmp/hx/certs/new.example.pem";
        assert!(new_succeeded(&format!("New empty certificate store '{new}'!\n\n"), new));
        assert!(!new_succeeded(&format!("Certificate '{new}' already exists!\n\n"), new));
    }

    #[test]
    fn del_replies_on_2_6_and_3_x() {
        // Captured from 2.6.12, 3.0.11 and 3.4.7 (the same bytes but for 2.6's extra empty line after a refusal):
        // `new` + `set` + `commit` + `add ssl crt-list`, then `del ssl cert` while in use, `del ssl crt-list` twice,
        // `del ssl cert` twice.
        let new = "/tmp/ds-cap/v26/certs/new.pem";
        let list = "/tmp/ds-cap/v26/certs";
        let in_use_2_6 = format!("Can't remove the certificate: certificate '{new}' in use, can't be deleted!\n\n\n");
        let in_use_3_x = format!("Can't remove the certificate: certificate '{new}' in use, can't be deleted!\n\n");
        let deleted_entry = format!("Entry '{new}' deleted in crtlist '{list}'!\n\n");
        let no_entry = format!("Can't delete the entry: certificate '{new}' can't be found in crt-list '{list}'!\n\n");
        let deleted = format!("Certificate '{new}' deleted!\n\n");
        let absent_2_6 = format!("Can't remove the certificate: certificate '{new}' doesn't exist!\n\n\n");
        let absent_3_x = format!("Can't remove the certificate: certificate '{new}' doesn't exist!\n\n");

        assert!(crt_list_del_succeeded(&deleted_entry, new, list));
        assert!(crt_list_del_succeeded(&deleted_entry, new, &format!("{list}/")));
        assert!(!crt_list_del_succeeded(&no_entry, new, list));
        assert!(!crt_list_del_succeeded(
            &deleted_entry,
            "/tmp/ds-cap/v26/certs/other.pem",
            list
        ));
        assert!(
            !crt_list_del_succeeded(&deleted_entry[..deleted_entry.len() - 1], new, list),
            "cut short"
        );

        assert_eq!(cert_del(&deleted, new), CertDelReply::Deleted);
        assert_eq!(cert_del(&absent_2_6, new), CertDelReply::Absent);
        assert_eq!(cert_del(&absent_3_x, new), CertDelReply::Absent);
        assert_eq!(cert_del(&in_use_2_6, new), CertDelReply::Other);
        assert_eq!(cert_del(&in_use_3_x, new), CertDelReply::Other);
        assert_eq!(
            cert_del(&deleted, "/tmp/ds-cap/v26/certs/other.pem"),
            CertDelReply::Other
        );
        assert_eq!(
            cert_del(&deleted[..deleted.len() - 1], new),
            CertDelReply::Other,
            "cut short"
        );
    }

    #[test]
    fn crt_list_add_replies() {
        let new = "/tmp/hx/certs/new.example.pem";
        let ok = format!("Inserting certificate '{new}' in crt-list '/tmp/hx/certs'.\nSuccess!\n\n");
        assert!(crt_list_add_succeeded(&ok, new, "/tmp/hx/certs"));
        assert!(crt_list_add_succeeded(&ok, new, "/tmp/hx/certs/"));
        assert!(!crt_list_add_succeeded(&ok, new, "/tmp/hx/other"));
        let three_binds = "Inserting certificate '/tmp/hx/certs/n.pem' in crt-list '/tmp/hx/certs'...\nSuccess!\n\n";
        assert!(crt_list_add_succeeded(
            three_binds,
            "/tmp/hx/certs/n.pem",
            "/tmp/hx/certs"
        ));
        for refusal in [
            format!("Can't edit the crt-list: certificate '{new}' does not exist!\n\n"),
            format!("Can't edit the crt-list: certificate '{new}' is empty!\n\n"),
            "Can't edit the crt-list: crt-list '/tmp/hx/nolist' does not exist!\n\n".to_owned(),
            "Can't edit the crt-list: file already exists in this directory!\n\n".to_owned(),
        ] {
            assert!(!crt_list_add_succeeded(&refusal, new, "/tmp/hx/certs"), "{refusal}");
        }
    }

    // The inventory's replies, captured with socat on 2026-12-06 from 2.6.12-1+deb12u4 (the host), and from 3.0.11,
    // 3.2.26 and 3.4.7 in their test trees, for a config with `bind ... ssl crt /tmp/hx-inv/a.test.pem` (leaf, one
    // intermediate, key) `crt <legacy>` `ca-file /tmp/hx-inv/clients-ca.pem` (two CAs) `verify optional crl-file
    // /tmp/hx-inv/clients.crl`, and a server line with `ca-file @system-ca`. On 3.x `<legacy>` was a crt-store alias
    // `@web/legacy` (`crt-base /tmp/hx-inv`, `load crt "legacy.pem"`), on 2.6 its path. Between versions:
    // - the CA-file and CRL-file replies are the same bytes on all four, but for `@system-ca`'s count (the trust store
    //   of each tree; 3.4's tree had none, so its config had no `@system-ca`) and `Status: Uncommitted` for a
    //   transaction on 3.2+ (`Unused` on 2.6 and 3.0);
    // - `show ssl cert <path>` gains `Crt filename:` and the other file lines on 3.2, and `Option:` lines on 3.4;
    // - an empty CA file (`new ssl ca-file`) is answered with a bare newline on every version.
    // The `*_TRANSACTION_*`, `CRL_FILE_TWO_2_6` and `CRL_EMPTY_2_6` replies were taken after `new ssl ca-file
    // /tmp/hx-inv/empty-ca.pem`, `set ssl ca-file /tmp/hx-inv/clients-ca.pem` (the second CA alone), `new ssl crl-file
    // /tmp/hx-inv/empty.crl` and `set ssl crl-file /tmp/hx-inv/clients.crl`, with a second CRL (of the second CA) in
    // the file on disk.
    const CERT_CHAIN_2_6: &str = "Filename: /tmp/hx-inv/a.test.pem\n\
        Status: Used\n\
        Serial: 0ABC01\n\
        notBefore: Dec  6 07:59:11 2026 GMT\n\
        notAfter: Mar  6 07:59:11 2027 GMT\n\
        Subject Alternative Name: DNS:a.test, DNS:www.a.test\n\
        Algorithm: EC256\n\
        SHA1 FingerPrint: FA5AB2A48E8C5A71924CCFC49BB1467E9857C40C\n\
        Subject: /CN=a.test\n\
        Issuer: /CN=Inventory Intermediate\n\
        Chain Subject: /CN=Inventory Intermediate\n\
        Chain Issuer: /CN=Inventory Root\n\
        OCSP Response Key: \n\
        \n";
    const CERT_CHAIN_3_2: &str = "Filename: /tmp/hx-inv/a.test.pem\n\
        Crt filename: /tmp/hx-inv/a.test.pem\n\
        Key filename: /tmp/hx-inv/a.test.pem\n\
        OCSP filename: /tmp/hx-inv/a.test.pem.ocsp\n\
        SCTL filename: /tmp/hx-inv/a.test.pem.sctl\n\
        Status: Used\n\
        Serial: 0ABC01\n\
        notBefore: Dec  6 07:59:11 2026 GMT\n\
        notAfter: Mar  6 07:59:11 2027 GMT\n\
        Subject Alternative Name: DNS:a.test, DNS:www.a.test\n\
        Algorithm: EC256\n\
        SHA1 FingerPrint: FA5AB2A48E8C5A71924CCFC49BB1467E9857C40C\n\
        Subject: /CN=a.test\n\
        Issuer: /CN=Inventory Intermediate\n\
        Chain Subject: /CN=Inventory Intermediate\n\
        Chain Issuer: /CN=Inventory Root\n\
        OCSP Response Key: \n\
        \n";
    const ALIAS_3_4: &str = "Filename: @web/legacy\n\
        Crt filename: legacy.pem\n\
        Option: ocsp-update off\n\
        Option: jwt off\n\
        Status: Used\n\
        Serial: 7CF3179C78F3C9C690273025B399099FAD96420F\n\
        notBefore: Dec  6 07:59:11 2026 GMT\n\
        notAfter: Dec 16 07:59:11 2026 GMT\n\
        Subject Alternative Name: DNS:legacy.test\n\
        Algorithm: EC256\n\
        SHA1 FingerPrint: D76570B98A6F95D6EE8247B9577CB36C376F3BFF\n\
        Subject: /CN=legacy.test\n\
        Issuer: /CN=legacy.test\n\
        OCSP Response Key: \n\
        \n";
    const CA_LIST_2_6: &str = "# filename\n\
        /tmp/hx-inv/clients-ca.pem - 2 certificate(s)\n\
        @system-ca - 145 certificate(s)\n\
        \n";
    const CA_LIST_3_0: &str = "# filename\n\
        /tmp/hx-inv/clients-ca.pem - 2 certificate(s)\n\
        @system-ca - 2 certificate(s)\n\
        \n";
    const CA_LIST_3_4: &str = "# filename\n\
        /tmp/hx-inv/clients-ca.pem - 2 certificate(s)\n\
        \n";
    const CA_LIST_TRANSACTION_2_6: &str = "# transaction\n\
        */tmp/hx-inv/clients-ca.pem - 1 certificate(s)\n\
        # filename\n\
        /tmp/hx-inv/clients-ca.pem - 2 certificate(s)\n\
        /tmp/hx-inv/empty-ca.pem - 0 certificate(s)\n\
        @system-ca - 145 certificate(s)\n\
        \n";
    const CA_FILE_2_6: &str = "Filename: /tmp/hx-inv/clients-ca.pem\n\
        Status: Used\n\
        \x20\n\
        Certificate #1:\n\
        Serial: 51\n\
        notBefore: Dec  6 07:59:11 2026 GMT\n\
        notAfter: Dec  6 07:59:11 2027 GMT\n\
        Subject Alternative Name: \n\
        Algorithm: EC256\n\
        SHA1 FingerPrint: A4EBD0C00DB75F0CC71EAA04814AB4891D11CE32\n\
        Subject: /C=FR/O=Inventory/CN=Client CA One\n\
        Issuer: /C=FR/O=Inventory/CN=Client CA One\n\
        \x20\n\
        Certificate #2:\n\
        Serial: FF1002\n\
        notBefore: Dec  6 07:59:11 2026 GMT\n\
        notAfter: Dec  3 07:59:11 2036 GMT\n\
        Subject Alternative Name: \n\
        Algorithm: EC256\n\
        SHA1 FingerPrint: 9C6756966670B8A17A654E9C9ADBDC0FD0F9A9DA\n\
        Subject: /CN=Client CA Two\n\
        Issuer: /CN=Client CA Two\n\
        \n";
    const CA_TRANSACTION_3_2: &str = "Filename: */tmp/hx-inv/clients-ca.pem\n\
        Status: Uncommitted\n\
        \x20\n\
        Certificate #1:\n\
        Serial: FF1002\n\
        notBefore: Dec  6 07:59:11 2026 GMT\n\
        notAfter: Dec  3 07:59:11 2036 GMT\n\
        Subject Alternative Name: \n\
        Algorithm: EC256\n\
        SHA1 FingerPrint: 9C6756966670B8A17A654E9C9ADBDC0FD0F9A9DA\n\
        Subject: /CN=Client CA Two\n\
        Issuer: /CN=Client CA Two\n\
        \n";
    const CRL_LIST_2_6: &str = "# filename\n\
        /tmp/hx-inv/clients.crl\n\
        \n";
    const CRL_LIST_TRANSACTION_2_6: &str = "# transaction\n\
        */tmp/hx-inv/clients.crl\n\
        # filename\n\
        /tmp/hx-inv/clients.crl\n\
        /tmp/hx-inv/empty.crl\n\
        \n";
    const CRL_FILE_2_6: &str = "Filename: /tmp/hx-inv/clients.crl\n\
        Status: Used\n\
        \x20\n\
        Certificate Revocation List #1:\n\
        Version 2\n\
        Signature Algorithm: ecdsa-with-SHA256\n\
        Issuer: /C=FR/O=Inventory/CN=Client CA One\n\
        Last Update: Dec  6 07:59:11 2026 GMT\n\
        Next Update: Jan  5 07:59:11 2027 GMT\n\
        Revoked Certificates:\n\
        \x20   Serial Number: 01\n\
        \x20       Revocation Date: Dec  6 07:59:11 2026 GMT\n\
        \n";
    const CRL_FILE_TWO_2_6: &str = "Filename: /tmp/hx-inv/clients.crl\n\
        Status: Used\n\
        \x20\n\
        Certificate Revocation List #1:\n\
        Version 2\n\
        Signature Algorithm: ecdsa-with-SHA256\n\
        Issuer: /C=FR/O=Inventory/CN=Client CA One\n\
        Last Update: Dec  6 07:59:11 2026 GMT\n\
        Next Update: Jan  5 07:59:11 2027 GMT\n\
        Revoked Certificates:\n\
        \x20   Serial Number: 01\n\
        \x20       Revocation Date: Dec  6 07:59:11 2026 GMT\n\
        \x20\n\
        Certificate Revocation List #2:\n\
        Version 2\n\
        Signature Algorithm: ecdsa-with-SHA256\n\
        Issuer: /CN=Client CA Two\n\
        Last Update: Dec  6 08:00:48 2026 GMT\n\
        Next Update: Dec 13 08:00:48 2026 GMT\n\
        No Revoked Certificates.\n\
        \n";
    const CRL_EMPTY_2_6: &str = "Filename: /tmp/hx-inv/empty.crl\n\
        Status: Empty\n\
        \n";
    /// Whether a parser takes a reply.
    type Reads = fn(&str) -> bool;

    /// Every fixture of the inventory, with the parser that reads it.
    fn inventory_fixtures() -> Vec<(&'static str, Reads)> {
        let cert: Reads = |r| cert_info(r).is_some();
        let ca_list: Reads = |r| ca_file_list(r).is_some();
        let ca: Reads = |r| ca_file_info(r).is_some();
        let crl_list: Reads = |r| crl_file_list(r).is_some();
        let crl: Reads = |r| crl_file_info(r).is_some();
        vec![
            (CERT_CHAIN_2_6, cert),
            (CERT_CHAIN_3_2, cert),
            (ALIAS_3_4, cert),
            (CA_LIST_2_6, ca_list),
            (CA_LIST_3_0, ca_list),
            (CA_LIST_3_4, ca_list),
            (CA_LIST_TRANSACTION_2_6, ca_list),
            (CA_FILE_2_6, ca),
            (CA_TRANSACTION_3_2, ca),
            (CRL_LIST_2_6, crl_list),
            (CRL_LIST_TRANSACTION_2_6, crl_list),
            (CRL_FILE_2_6, crl),
            (CRL_FILE_TWO_2_6, crl),
            (CRL_EMPTY_2_6, crl),
        ]
    }

    #[test]
    fn openssl_times_are_read_as_utc() {
        use time::macros::datetime;
        assert_eq!(
            openssl_time("Nov 23 10:46:53 2027 GMT"),
            Some(datetime!(2027-11-23 10:46:53 UTC))
        );
        assert_eq!(
            openssl_time("Jan  5 10:00:00 2027 GMT"),
            Some(datetime!(2027-01-05 10:00:00 UTC))
        );
        assert_eq!(
            openssl_time("Jan  1 00:00:00 1970 GMT"),
            Some(datetime!(1970-01-01 00:00:00 UTC))
        );
        assert_eq!(
            openssl_time("Feb 29 12:00:00.25 2028 GMT"),
            Some(datetime!(2028-02-29 12:00:00.25 UTC))
        );
        for bad in [
            "",
            "Jan 5 10:00:00 2027 GMT",
            "Jan  5 10:00:00 2027",
            "2027-01-05T10:00:00Z",
            "Feb 30 10:00:00 2027 GMT",
        ] {
            assert_eq!(openssl_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cert_info_has_not_before_and_subject() {
        for reply in [CERT_CHAIN_2_6, CERT_CHAIN_3_2] {
            let info = cert_info(reply).unwrap();
            assert_eq!(info.not_before.as_deref(), Some("Dec  6 07:59:11 2026 GMT"));
            assert_eq!(info.not_after.as_deref(), Some("Mar  6 07:59:11 2027 GMT"));
            assert_eq!(info.subject.as_deref(), Some("/CN=a.test"));
            assert_eq!(info.serial.as_deref(), Some("0abc01"));
        }
        assert_eq!(cert_info(CERT_CHAIN_2_6).unwrap().crt_filename, None);
        let alias = cert_info(ALIAS_3_4).unwrap();
        assert_eq!(
            (alias.filename.as_str(), alias.crt_filename.as_deref()),
            ("@web/legacy", Some("legacy.pem"))
        );
        assert_eq!(alias.subject.as_deref(), Some("/CN=legacy.test"));
    }

    #[test]
    fn ca_file_lists_on_2_6_and_3_x() {
        let entry = |name: &str, certificates| CaFileEntry {
            name: name.to_owned(),
            certificates,
        };
        assert_eq!(
            ca_file_list(CA_LIST_2_6).unwrap(),
            CaFileList {
                files: vec![entry("/tmp/hx-inv/clients-ca.pem", 2), entry("@system-ca", 145)],
                transaction: None,
            }
        );
        assert_eq!(
            ca_file_list(CA_LIST_3_0).unwrap().files,
            [entry("/tmp/hx-inv/clients-ca.pem", 2), entry("@system-ca", 2)]
        );
        assert_eq!(
            ca_file_list(CA_LIST_3_4).unwrap().files,
            [entry("/tmp/hx-inv/clients-ca.pem", 2)]
        );
        let open = ca_file_list(CA_LIST_TRANSACTION_2_6).unwrap();
        assert_eq!(open.transaction.as_deref(), Some("/tmp/hx-inv/clients-ca.pem"));
        assert_eq!(
            open.files,
            [
                entry("/tmp/hx-inv/clients-ca.pem", 2),
                entry("/tmp/hx-inv/empty-ca.pem", 0),
                entry("@system-ca", 145)
            ]
        );
        // Made up: a name with " - " in it.
        let odd = ca_file_list("# filename\n/etc/ca - old.pem - 3 certificate(s)\n\n").unwrap();
        assert_eq!(odd.files, [entry("/etc/ca - old.pem", 3)]);
        assert_eq!(
            ca_file_list("# filename\n/etc/ca.pem\n\n"),
            None,
            "a line without its count"
        );
        assert_eq!(ca_file_list(UNKNOWN_COMMAND), None);
    }

    #[test]
    fn ca_file_detail_has_each_certificate() {
        use time::macros::datetime;
        let info = ca_file_info(CA_FILE_2_6).unwrap();
        assert_eq!(
            (info.filename.as_str(), info.status),
            ("/tmp/hx-inv/clients-ca.pem", CertStatus::Used)
        );
        assert_eq!(
            info.certificates,
            [
                CaCertInfo {
                    serial: Some("51".into()),
                    subject: Some("/C=FR/O=Inventory/CN=Client CA One".into()),
                    not_before: Some(datetime!(2026-12-06 07:59:11 UTC)),
                    not_after: Some(datetime!(2027-12-06 07:59:11 UTC)),
                },
                CaCertInfo {
                    serial: Some("ff1002".into()),
                    subject: Some("/CN=Client CA Two".into()),
                    not_before: Some(datetime!(2026-12-06 07:59:11 UTC)),
                    not_after: Some(datetime!(2036-12-03 07:59:11 UTC)),
                },
            ]
        );
        let open = ca_file_info(CA_TRANSACTION_3_2).unwrap();
        assert_eq!(
            (open.filename.as_str(), open.status),
            ("*/tmp/hx-inv/clients-ca.pem", CertStatus::Uncommitted)
        );
        assert_eq!(open.certificates.len(), 1);
    }

    #[test]
    fn ca_file_detail_refuses_other_replies() {
        assert_eq!(ca_file_info("Can't display the CA file : Not found!\n\n"), None);
        // What every version answers for an empty CA file.
        assert_eq!(ca_file_info("\n"), None);
        assert_eq!(ca_file_info(UNKNOWN_COMMAND), None);
        // A time that is not one: the reply is refused rather than read without it.
        let garbled = CA_FILE_2_6.replace("notAfter: Dec  6 07:59:11 2027 GMT", "notAfter: soon");
        assert_eq!(ca_file_info(&garbled), None);
    }

    #[test]
    fn crl_file_lists() {
        assert_eq!(
            crl_file_list(CRL_LIST_2_6).unwrap(),
            CrlFileList {
                files: vec!["/tmp/hx-inv/clients.crl".into()],
                transaction: None
            }
        );
        let open = crl_file_list(CRL_LIST_TRANSACTION_2_6).unwrap();
        assert_eq!(open.files, ["/tmp/hx-inv/clients.crl", "/tmp/hx-inv/empty.crl"]);
        assert_eq!(open.transaction.as_deref(), Some("/tmp/hx-inv/clients.crl"));
        assert_eq!(crl_file_list(UNKNOWN_COMMAND), None);
    }

    #[test]
    fn crl_file_detail_has_each_crl() {
        use time::macros::datetime;
        let one = crl_file_info(CRL_FILE_2_6).unwrap();
        assert_eq!(
            (one.filename.as_str(), one.status),
            ("/tmp/hx-inv/clients.crl", CertStatus::Used)
        );
        assert_eq!(
            one.crls,
            [CrlInfo {
                issuer: Some("/C=FR/O=Inventory/CN=Client CA One".into()),
                last_update: Some(datetime!(2026-12-06 07:59:11 UTC)),
                next_update: Some(datetime!(2027-01-05 07:59:11 UTC)),
            }]
        );
        let two = crl_file_info(CRL_FILE_TWO_2_6).unwrap();
        assert_eq!(two.crls.len(), 2);
        assert_eq!(two.crls[1].issuer.as_deref(), Some("/CN=Client CA Two"));
        assert_eq!(two.crls[1].next_update, Some(datetime!(2026-12-13 08:00:48 UTC)));
        let empty = crl_file_info(CRL_EMPTY_2_6).unwrap();
        assert_eq!((empty.status, empty.crls.len()), (CertStatus::Empty, 0));
        // Made up from HAProxy's code: a CRL without nextUpdate stops right after `Next Update: `.
        let none = CRL_FILE_TWO_2_6.replace(
            "Next Update: Jan  5 07:59:11 2027 GMT\nRevoked Certificates:\n\x20   Serial Number: 01\n\
             \x20       Revocation Date: Dec  6 07:59:11 2026 GMT\n",
            "Next Update: \n",
        );
        let none = crl_file_info(&none).unwrap();
        assert_eq!((none.crls[0].next_update, none.crls.len()), (None, 2));
        assert_eq!(crl_file_info("Can't display the CRL file : Not found!\n\n"), None);
    }

    #[test]
    fn every_inventory_fixture_is_read_whole_and_refused_cut() {
        for (reply, parses) in inventory_fixtures() {
            assert!(parses(reply), "{reply}");
            for cut in (0..reply.len()).filter(|&cut| reply.is_char_boundary(cut)) {
                assert!(!parses(&reply[..cut]), "accepted cut at {cut}: {:?}", &reply[..cut]);
            }
        }
    }
}
