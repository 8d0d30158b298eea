//! Reading HAProxy's Runtime API replies. This is pure text parsing with no I/O, so every reply shape is tested against
//! text captured from HAProxy 2.6.12 (see the tests at the bottom, and /work/shared/notes/haproxy.md).
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
}

/// What the master's `show proc` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// The master's reload counter, which goes up by one for every reload, whether it failed or not.
    pub reloads: u64,
    /// The `[failed: N]` counter of the master line, or 0 if the line has none. HAProxy 2.6 sets it back to 0 after a
    /// successful reload.
    pub failed: u64,
    /// The current workers. Old workers that are still finishing their connections after a reload are not listed.
    pub workers: Vec<u32>,
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
            // "DNS:a.example, DNS:www.a.example, " (the trailing comma is where an IP address was left out).
            "Subject Alternative Name" => {
                info.sans = value
                    .split(',')
                    .filter_map(|name| name.trim().strip_prefix("DNS:"))
                    .map(str::to_owned)
                    .collect()
            }
            // notBefore, Subject, Issuer, Chain Subject, Chain Issuer, OCSP Response Key: not needed; nor what 3.2 and
            // 3.4 add (`Crt filename`, `Key filename`, `OCSP filename`, `SCTL filename`, `Option: ...`).
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
    let mut workers = Vec::new();
    let mut in_workers = false;
    for line in lines(reply)? {
        if line.starts_with('#') {
            // "# old workers" and "# programs" end the current workers.
            in_workers = line == "# workers";
            continue;
        }
        let mut fields = line.split_whitespace();
        let (pid, kind) = (fields.next()?, fields.next());
        if kind == Some("master") {
            let reloads = fields.next()?.parse().ok()?;
            let failed = match line.split_once("[failed:") {
                Some((_, rest)) => rest.trim_start().split(']').next()?.trim().parse().ok()?,
                None => 0,
            };
            master = Some((reloads, failed));
        } else if in_workers {
            workers.push(pid.parse().ok()?);
        }
    }
    let (reloads, failed) = master?;
    Some(ProcInfo {
        reloads,
        failed,
        workers,
    })
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
    //! The fixtures were captured byte for byte with socat from HAProxy 2.6.12-1+deb12u4, on a scratch instance with
    //! certificates in /tmp/hx/certs. Two are shortened or made up, and their comments say so.

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

    #[test]
    fn cert_info_reads_what_3_2_and_3_4_add_and_their_uncommitted_status() {
        // Made up after the lines 3.2 and 3.4 add (shared/notes/haproxy-versions.md); the rest as 2.6 writes it.
        let reply = "Filename: */tmp/hx/certs/a.example.pem\nStatus: Uncommitted\n\
                     Crt filename: /tmp/hx/certs/a.example.pem\nKey filename: /tmp/hx/certs/a.example.pem\n\
                     Serial: 0A1B\nnotAfter: Mar  1 00:00:00 2031 GMT\n\
                     Subject Alternative Name: DNS:a.example, \nAlgorithm: EC256\n\
                     SHA1 FingerPrint: ABCDEF\nOCSP filename: \nSCTL filename: \n\
                     Option: ocsp-update off\nOption: jwt off\n\n";
        let info = cert_info(reply).unwrap();
        assert_eq!(info.status, CertStatus::Uncommitted);
        assert_eq!(info.serial.as_deref(), Some("0a1b"));
        assert_eq!(info.sans, ["a.example"]);
        assert_eq!(info.sha1_fingerprint.as_deref(), Some("abcdef"));
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
    }

    #[test]
    fn proc_info_after_start() {
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            25465           master          0 [failed: 0]   0d00h00m01s     2.6.12-1+deb12u4\n\
            # workers\n25468           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n\
            # programs\n\n";
        assert_eq!(
            proc_info(reply).unwrap(),
            ProcInfo {
                reloads: 0,
                failed: 0,
                workers: vec![25468]
            }
        );
    }

    #[test]
    fn proc_info_leaves_out_old_workers() {
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            25465           master          1 [failed: 0]   0d00h01m14s     2.6.12-1+deb12u4\n\
            # workers\n27305           worker          0               0d00h00m00s     2.6.12-1+deb12u4\n\
            # old workers\n25468           worker          1               0d00h01m14s     2.6.12-1+deb12u4\n\
            # programs\n\n";
        let info = proc_info(reply).unwrap();
        assert_eq!((info.reloads, info.failed, info.workers), (1, 0, vec![27305]));
    }

    #[test]
    fn a_reload_reply_is_done_busy_or_failed_with_its_alerts_first() {
        // 2.6 answers nothing; 3.0 and later `Success=1` and the startup log.
        assert_eq!(reload_reply(""), ReloadReply::Done);
        assert_eq!(
            reload_reply("Success=1\n--\n[NOTICE]   (1) : Loading success.\n"),
            ReloadReply::Done
        );
        // Made up after the shape 3.2 and 3.4 answer with (shared/notes/haproxy-versions.md).
        assert_eq!(
            reload_reply("Success=0\n--\nAnother reload is still in progress.\n"),
            ReloadReply::Busy
        );
        let failed = "Success=0\n--\n\
            [NOTICE]   (1) : haproxy version is 3.2.26-1\n\
            [NOTICE]   (1) : path to executable is /usr/sbin/haproxy\n\
            [NOTICE]   (1) : New worker (42) forked\n\
            [ALERT]    (1) : config : parsing [/etc/haproxy/haproxy.cfg:12] : unknown keyword 'bnd' in 'frontend' section\n\
            [ALERT]    (1) : config : Fatal errors found in configuration.\n";
        let ReloadReply::Failed(log) = reload_reply(failed) else {
            panic!("a failed reload")
        };
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].contains("unknown keyword 'bnd'"), "{log}");
        assert!(lines[1].contains("Fatal errors found"), "{log}");
        assert!(lines[2].contains("haproxy version is"), "{log}");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn proc_info_after_a_failed_reload() {
        // The old worker keeps serving and stays in "# workers"; its own reload column went up.
        let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
            25465           master          2 [failed: 1]   0d00h01m21s     2.6.12-1+deb12u4\n\
            # workers\n27305           worker          1               0d00h00m07s     2.6.12-1+deb12u4\n\
            # programs\n\n";
        let info = proc_info(reply).unwrap();
        assert_eq!((info.reloads, info.failed, info.workers), (2, 1, vec![27305]));
    }

    #[test]
    fn proc_info_without_failed_column() {
        // Made up: a master line without `[failed: N]`, which 2.6 always prints.
        let reply = "#<PID> <type> <reloads> <uptime> <version>\n1 master 4 0d00h00m01s 2.4.0\n# workers\n7 worker 0 \
                     0d00h00m01s 2.4.0\n\n";
        let info = proc_info(reply).unwrap();
        assert_eq!((info.reloads, info.failed, info.workers), (4, 0, vec![7]));
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
