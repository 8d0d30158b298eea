//! Reading HAProxy's Runtime API replies. This is pure text parsing with no I/O, so every reply shape is tested against
//! text captured from HAProxy 2.6.12, and from 3.0, 3.2 and 3.4 where they answer differently (see the tests at the
//! bottom, and /work/shared/notes/haproxy.md and haproxy-versions.md).
//!
//! Every reply ends with an empty line. A reply without one was cut off, for example because the connection dropped or the
//! command was never finished. None of these functions accepts such a reply, so a truncated list is never taken as the
//! whole list.

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
    /// As HAProxy prints it, e.g. `Nov 23 10:46:53 2027 GMT`.
    pub not_after: Option<String>,
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
    enum Section {
        Transaction,
        Files,
    }
    let mut section = None;
    let mut list = CertList {
        files: Vec::new(),
        transaction: None,
    };
    for line in lines(reply)? {
        match (line, &section) {
            ("# transaction", _) => section = Some(Section::Transaction),
            ("# filename", _) => section = Some(Section::Files),
            // An unknown header or text before any header is a different reply, e.g. "Unknown command".
            (_, None) => return None,
            _ if line.starts_with('#') => return None,
            (_, Some(Section::Transaction)) => {
                list.transaction = Some(line.strip_prefix('*').unwrap_or(line).to_owned())
            }
            (_, Some(Section::Files)) => list.files.push(line.to_owned()),
        }
    }
    // Every reply to `show ssl cert` has the `# filename` header, even when it lists no file.
    section.is_some().then_some(list)
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
            "Status" => {
                status = Some(match value {
                    "Used" => CertStatus::Used,
                    "Unused" => CertStatus::Unused,
                    "Empty" => CertStatus::Empty,
                    "Uncommitted" => CertStatus::Uncommitted,
                    _ => return None,
                })
            }
            "Serial" => info.serial = known.map(|hex| whole_bytes(&hex.to_ascii_lowercase())),
            "SHA1 FingerPrint" => info.sha1_fingerprint = known.map(|hex| hex.to_ascii_lowercase()),
            "notAfter" => info.not_after = known,
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
            // notBefore, Subject, Issuer, Chain Subject, Chain Issuer, OCSP Response Key: not needed; nor the rest of
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
}
