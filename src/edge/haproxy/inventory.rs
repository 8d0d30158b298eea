//! What HAProxy has loaded besides what hapcert manages: certificates, CA files and CRL files, as its Runtime API lists
//! them. This module only decides what to ask and in which order; `runtime.rs` asks and `reply.rs` reads the answers.
//! Judging them (thresholds, `ignore_paths`) is the caller's.
//!
//! The order: `show ssl cert`, then `show ssl cert <name>` for each certificate that is not hapcert's; `show ssl
//! ca-file`, then each CA file; `show ssl crl-file`, then each CRL file. One connection per command, and none for an
//! entry that hapcert manages.

use std::path::Path;

use time::OffsetDateTime;

use super::names::{self, Loaded};
use super::reply::openssl_time;
use super::runtime::{CertInfo, CertStatus, RuntimeApi, RuntimeError};

/// The distribution's trust store, loaded when a line says `ca-file @system-ca` (typically a `server` line that
/// verifies a backend). Its roots expire on the distribution's schedule and are replaced by its updates, not by the
/// operator, so they are not the operator's to be alerted about; and on a stock Debian it is 140-odd certificates.
const SYSTEM_CA: &str = "@system-ca";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub certificates: Vec<LoadedCert>,
    pub ca_files: Vec<LoadedCaFile>,
    /// One per CRL: a CRL file holding the CRLs of several CAs gives several, under the same name.
    pub crl_files: Vec<LoadedCrl>,
    /// Entries listed but not readable (name, why): reported, not fatal.
    pub unreadable: Vec<(String, String)>,
}

/// A certificate HAProxy has loaded and hapcert does not manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedCert {
    /// As `show ssl cert` lists it: a path, or a crt-store alias `@store/alias` (3.0+).
    pub name: String,
    /// 3.2+: the file it was read from, as the config wrote it (for an alias, relative to its store's `crt-base`).
    pub crt_filename: Option<String>,
    pub serial: Option<String>,
    /// Lower-case hex. On 3.0 an alias does not say which file it holds, so one that serves a managed file's leaf is
    /// listed here too: its SHA-1 is how the caller can tell.
    pub sha1: Option<String>,
    pub subject: Option<String>,
    pub sans: Vec<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// Served by at least one bind line (`Status: Used`).
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedCaFile {
    pub name: String,
    pub certificates: Vec<CaCert>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    pub subject: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedCrl {
    pub name: String,
    pub issuer: Option<String>,
    pub last_update: Option<OffsetDateTime>,
    /// None when the CRL has no nextUpdate.
    pub next_update: Option<OffsetDateTime>,
}

/// Asks HAProxy for everything it has loaded, leaving out what hapcert manages (`managed`: the certificate files of its
/// config):
/// - a name equal to a managed path, without asking about it;
/// - a crt-store alias that `names::loaded_as` places at a managed path (3.2+ says which file an alias holds);
/// - `@system-ca` (see [`SYSTEM_CA`]).
///
/// An open transaction (`*<name>`) is not an entry: what HAProxy serves is the committed one. An entry HAProxy lists
/// but does not describe (a reply this client cannot read, a name it cannot send, a time that is no time) goes into
/// `unreadable`. Losing HAProxy itself (no connection, a timeout, a dropped connection) ends the whole inventory.
pub async fn read(api: &RuntimeApi, managed: &[&Path]) -> Result<Inventory, RuntimeError> {
    let mut inventory = Inventory {
        certificates: Vec::new(),
        ca_files: Vec::new(),
        crl_files: Vec::new(),
        unreadable: Vec::new(),
    };
    let is_managed = |name: &str| managed.iter().any(|path| path.as_os_str() == name);

    // Certificates. An alias must be asked about before it is known to be managed or not.
    let loaded = api.loaded_certs().await?;
    let mut infos: Vec<CertInfo> = Vec::new();
    for name in loaded.files.iter().filter(|name| !is_managed(name)) {
        if let Some(info) = entry(api.cert_info(name).await, name, &mut inventory.unreadable)? {
            infos.push(info);
        }
    }
    let aliases: Vec<CertInfo> = infos
        .iter()
        .filter(|info| info.filename.starts_with('@'))
        .cloned()
        .collect();
    let managed_aliases: Vec<String> = managed
        .iter()
        .flat_map(|path| match names::loaded_as(path, &loaded.files, &aliases, &[]) {
            Loaded::As(names) => names,
            Loaded::Unsure { .. } | Loaded::Not => Vec::new(),
        })
        .collect();
    for info in infos
        .into_iter()
        .filter(|info| !managed_aliases.contains(&info.filename))
    {
        match loaded_cert(info) {
            Ok(cert) => inventory.certificates.push(cert),
            Err(unreadable) => inventory.unreadable.push(unreadable),
        }
    }

    // CA files.
    for file in api.ca_files().await?.files {
        if file.name == SYSTEM_CA || is_managed(&file.name) {
            continue;
        }
        // An empty CA file is answered with a bare newline on every version: its count says enough.
        if file.certificates == 0 {
            inventory.ca_files.push(LoadedCaFile {
                name: file.name,
                certificates: Vec::new(),
            });
            continue;
        }
        let Some(info) = entry(api.ca_file(&file.name).await, &file.name, &mut inventory.unreadable)? else {
            continue;
        };
        let certificates = info
            .certificates
            .into_iter()
            .map(|cert| CaCert {
                subject: cert.subject,
                serial: cert.serial,
                not_before: cert.not_before,
                not_after: cert.not_after,
            })
            .collect();
        inventory.ca_files.push(LoadedCaFile {
            name: file.name,
            certificates,
        });
    }

    // CRL files.
    for name in api.crl_files().await?.files {
        if is_managed(&name) {
            continue;
        }
        let Some(info) = entry(api.crl_file(&name).await, &name, &mut inventory.unreadable)? else {
            continue;
        };
        if info.crls.is_empty() {
            // Made by `new ssl crl-file` and never filled: no CRL, so no date to watch, but not nothing either.
            inventory.unreadable.push((
                name,
                format!("HAProxy holds no CRL under this name (Status: {:?})", info.status),
            ));
            continue;
        }
        inventory.crl_files.extend(info.crls.into_iter().map(|crl| LoadedCrl {
            name: name.clone(),
            issuer: crl.issuer,
            last_update: crl.last_update,
            next_update: crl.next_update,
        }));
    }
    Ok(inventory)
}

/// One entry's answer: its value, or its error noted in `unreadable`; an error that means HAProxy cannot be reached at
/// all is returned, since every later command would fail the same way after its own timeout.
fn entry<T>(
    result: Result<T, RuntimeError>,
    name: &str,
    unreadable: &mut Vec<(String, String)>,
) -> Result<Option<T>, RuntimeError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err @ (RuntimeError::Connect { .. } | RuntimeError::Timeout { .. } | RuntimeError::Io { .. })) => Err(err),
        Err(err) => {
            unreadable.push((name.to_owned(), err.to_string()));
            Ok(None)
        }
    }
}

/// `show ssl cert <name>` as an inventory entry, its times read; a time HAProxy printed that is not one makes the entry
/// unreadable rather than one without an end.
fn loaded_cert(info: CertInfo) -> Result<LoadedCert, (String, String)> {
    let time = |field: &str, text: &Option<String>| match text {
        None => Ok(None),
        Some(text) => openssl_time(text).map(Some).ok_or_else(|| {
            (
                info.filename.clone(),
                format!("`show ssl cert` gives {field} `{text}`, which is not a time"),
            )
        }),
    };
    Ok(LoadedCert {
        not_before: time("notBefore", &info.not_before)?,
        not_after: time("notAfter", &info.not_after)?,
        used: info.status == CertStatus::Used,
        name: info.filename,
        crt_filename: info.crt_filename,
        serial: info.serial,
        sha1: info.sha1_fingerprint,
        subject: info.subject,
        sans: info.sans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Endpoint;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CLI socket that answers each command from a table of captured replies (HAProxy 3.2.26, 2026-12-06, shortened
    /// to the lines read here), and records the commands in the order they came.
    fn fake_haproxy(
        dir: &tempfile::TempDir,
        replies: Vec<(&'static str, String)>,
    ) -> (RuntimeApi, tokio::task::JoinHandle<Vec<String>>) {
        let sock = dir.path().join("admin.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let mut asked = Vec::new();
            while let Ok(Ok((mut stream, _))) =
                tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await
            {
                let mut request = String::new();
                stream.read_to_string(&mut request).await.unwrap();
                let command = request.trim_end().to_owned();
                let reply = replies
                    .iter()
                    .find(|(asked, _)| *asked == command)
                    .map(|(_, reply)| reply.clone())
                    .unwrap_or_else(|| "Unknown command: 'show'\n\n".to_owned());
                asked.push(command);
                stream.write_all(reply.as_bytes()).await.unwrap();
            }
            asked
        });
        (RuntimeApi::admin(Endpoint::Unix(sock)), server)
    }

    fn cert(name: &str, crt_filename: Option<&str>, not_after: &str) -> String {
        let crt = crt_filename.map(|f| format!("Crt filename: {f}\n")).unwrap_or_default();
        format!(
            "Filename: {name}\n{crt}Status: Used\nSerial: 0ABC01\nnotBefore: Dec  6 07:59:11 2026 GMT\n\
             notAfter: {not_after}\nSubject Alternative Name: DNS:a.test\nAlgorithm: EC256\n\
             SHA1 FingerPrint: FA5AB2A48E8C5A71924CCFC49BB1467E9857C40C\nSubject: /CN=a.test\nOCSP Response Key: \n\n"
        )
    }

    const CA_FILE: &str = "Filename: /hx/clients-ca.pem\nStatus: Used\n \nCertificate #1:\nSerial: 51\n\
        notBefore: Dec  6 07:59:11 2026 GMT\nnotAfter: Dec  6 07:59:11 2027 GMT\nSubject: /CN=Client CA One\n\n";
    const CRL_FILE: &str = "Filename: /hx/clients.crl\nStatus: Used\n \nCertificate Revocation List #1:\nVersion 2\n\
        Issuer: /CN=Client CA One\nLast Update: Dec  6 07:59:11 2026 GMT\nNext Update: Jan  5 07:59:11 2027 GMT\n\
        No Revoked Certificates.\n \nCertificate Revocation List #2:\nVersion 2\nIssuer: /CN=Client CA Two\n\
        Last Update: Dec  6 08:00:48 2026 GMT\nNext Update: Dec 13 08:00:48 2026 GMT\nNo Revoked Certificates.\n\n";

    #[tokio::test]
    async fn managed_entries_are_never_asked_about_and_the_rest_is_read() {
        use time::macros::datetime;
        let dir = tempfile::tempdir().unwrap();
        let (api, server) = fake_haproxy(
            &dir,
            vec![
                (
                    "show ssl cert",
                    "# transaction\n*/hx/legacy.pem\n# filename\n/etc/haproxy/certs/a.pem\n/hx/legacy.pem\n\
                     @web/site\n@web/bought\n/hx/odd.pem\n\n"
                        .into(),
                ),
                (
                    "show ssl cert /hx/legacy.pem",
                    cert("/hx/legacy.pem", None, "Dec 16 07:59:11 2026 GMT"),
                ),
                (
                    "show ssl cert @web/site",
                    cert("@web/site", Some("site.pem"), "Mar  6 07:59:11 2027 GMT"),
                ),
                (
                    "show ssl cert @web/bought",
                    cert("@web/bought", Some("bought.pem"), "Jan  5 10:00:00 2027 GMT"),
                ),
                ("show ssl cert /hx/odd.pem", cert("/hx/odd.pem", None, "in a while")),
                (
                    "show ssl ca-file",
                    "# transaction\n*/hx/clients-ca.pem - 1 certificate(s)\n# filename\n/hx/clients-ca.pem - 1 \
                     certificate(s)\n/hx/empty-ca.pem - 0 certificate(s)\n/hx/gone.pem - 1 certificate(s)\n\
                     @system-ca - 145 certificate(s)\n\n"
                        .into(),
                ),
                ("show ssl ca-file /hx/clients-ca.pem", CA_FILE.into()),
                (
                    "show ssl ca-file /hx/gone.pem",
                    "Can't display the CA file : Not found!\n\n".into(),
                ),
                (
                    "show ssl crl-file",
                    "# filename\n/hx/clients.crl\n/hx/empty.crl\n\n".into(),
                ),
                ("show ssl crl-file /hx/clients.crl", CRL_FILE.into()),
                (
                    "show ssl crl-file /hx/empty.crl",
                    "Filename: /hx/empty.crl\nStatus: Empty\n\n".into(),
                ),
            ],
        );
        let managed = [
            Path::new("/etc/haproxy/certs/a.pem"),
            Path::new("/etc/haproxy/certs/site.pem"),
        ];
        let inventory = read(&api, &managed).await.unwrap();
        let asked = server.await.unwrap();

        assert!(
            !asked.iter().any(|c| c.contains("/etc/haproxy/certs/a.pem")),
            "{asked:?}"
        );
        assert!(
            !asked.iter().any(|c| c.contains("@system-ca") || c.contains("empty-ca")),
            "{asked:?}"
        );
        assert!(
            !asked.iter().any(|c| c.contains('*')),
            "a transaction is no entry: {asked:?}"
        );

        let names: Vec<&str> = inventory.certificates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["/hx/legacy.pem", "@web/bought"],
            "@web/site holds a managed file"
        );
        let bought = &inventory.certificates[1];
        assert_eq!(bought.not_after, Some(datetime!(2027-01-05 10:00:00 UTC)));
        assert_eq!(bought.not_before, Some(datetime!(2026-12-06 07:59:11 UTC)));
        assert_eq!(bought.crt_filename.as_deref(), Some("bought.pem"));
        assert_eq!(bought.sha1.as_deref(), Some("fa5ab2a48e8c5a71924ccfc49bb1467e9857c40c"));
        assert_eq!((bought.subject.as_deref(), bought.used), (Some("/CN=a.test"), true));

        assert_eq!(
            inventory.ca_files,
            [
                LoadedCaFile {
                    name: "/hx/clients-ca.pem".into(),
                    certificates: vec![CaCert {
                        subject: Some("/CN=Client CA One".into()),
                        serial: Some("51".into()),
                        not_before: Some(datetime!(2026-12-06 07:59:11 UTC)),
                        not_after: Some(datetime!(2027-12-06 07:59:11 UTC)),
                    }],
                },
                LoadedCaFile {
                    name: "/hx/empty-ca.pem".into(),
                    certificates: vec![],
                },
            ]
        );
        let crls: Vec<(&str, Option<&str>, Option<OffsetDateTime>)> = inventory
            .crl_files
            .iter()
            .map(|c| (c.name.as_str(), c.issuer.as_deref(), c.next_update))
            .collect();
        assert_eq!(
            crls,
            [
                (
                    "/hx/clients.crl",
                    Some("/CN=Client CA One"),
                    Some(datetime!(2027-01-05 07:59:11 UTC))
                ),
                (
                    "/hx/clients.crl",
                    Some("/CN=Client CA Two"),
                    Some(datetime!(2026-12-13 08:00:48 UTC))
                ),
            ]
        );
        let unreadable: Vec<&str> = inventory.unreadable.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(unreadable, ["/hx/odd.pem", "/hx/gone.pem", "/hx/empty.crl"]);
        assert!(
            inventory.unreadable[0].1.contains("notAfter `in a while`"),
            "{:?}",
            inventory.unreadable
        );
        assert!(
            inventory.unreadable[1].1.contains("Not found"),
            "{:?}",
            inventory.unreadable
        );
    }

    #[tokio::test]
    async fn a_haproxy_that_is_not_there_ends_the_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let api = RuntimeApi::admin(Endpoint::Unix(dir.path().join("none.sock")));
        assert!(matches!(read(&api, &[]).await, Err(RuntimeError::Connect { .. })));
    }

    #[tokio::test]
    async fn a_truncated_list_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (api, server) = fake_haproxy(&dir, vec![("show ssl cert", "# filename\n/hx/a.pem\n".into())]);
        assert!(matches!(read(&api, &[]).await, Err(RuntimeError::Unexpected { .. })));
        assert_eq!(server.await.unwrap(), ["show ssl cert"]);
    }
}
