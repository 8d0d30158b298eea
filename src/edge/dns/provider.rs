//! A `[[dns_provider]]` at work: where a challenge's TXT record goes (following CNAMEs, finding the zone, its primary
//! and its authoritative servers), and putting it there and taking it away again, by an RFC 2136 update signed with
//! TSIG or by the operator's script.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as WireAlgorithm;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType, TSigner};

use super::lookup::{self, Zone};
use super::wire::exchange;
use crate::core::config::{DnsProvider, DnsProviderKind, TsigAlgorithm};

/// The clock difference a signed update tolerates (RFC 8945's recommended fudge).
const TSIG_FUDGE: u16 = 300;

/// An authoritative server, as an operator recognizes it in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `ns2.example.com (192.0.2.2:53)`, or just the address when configured as one.
    pub label: String,
    pub address: SocketAddr,
}

/// Where a challenge's TXT record goes.
#[derive(Debug, Clone)]
pub struct Placement {
    /// `_acme-challenge.<name>` first, then each CNAME target: the record goes at the last.
    pub chain: Vec<Name>,
    pub zone: Name,
    /// Where updates go (and the record is read back from); for an exec provider, the zone's primary as found.
    pub primary: SocketAddr,
    /// Every authoritative server of the zone, each of which must serve the record before the CA is told.
    pub servers: Vec<Server>,
}

impl Placement {
    /// The placement of a record as the journal names it, enough to remove it: no servers to check.
    pub fn journaled(challenge: &str, record: &str, zone: &str, primary: &str) -> anyhow::Result<Placement> {
        let mut chain = vec![fqdn(challenge)?];
        let record = fqdn(record)?;
        if record != chain[0] {
            chain.push(record);
        }
        Ok(Placement {
            chain,
            zone: fqdn(zone)?,
            primary: primary
                .parse()
                .map_err(|_| anyhow::anyhow!("'{primary}' in the journal of added records is not ip:port"))?,
            servers: Vec::new(),
        })
    }

    pub fn record(&self) -> &Name {
        self.chain.last().expect("a chain holds at least the challenge name")
    }

    /// ` (through the CNAME a -> b)`, or nothing: for messages about a record that is not where the operator expects.
    fn through(&self) -> String {
        match self.chain.len() {
            1 => String::new(),
            _ => format!(
                " (reached through the CNAME {})",
                self.chain
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        }
    }
}

/// A provider ready to update: its TSIG key read, its primary's address resolved.
pub struct Provider {
    pub config: DnsProvider,
    how: How,
}

enum How {
    Rfc2136 {
        signer: TSigner,
        server: Option<SocketAddr>,
        zone: Option<Name>,
        ttl: u32,
    },
    Exec {
        command: String,
        timeout: Duration,
    },
}

impl Provider {
    /// Reads the TSIG secret (refused when other users can read it) and resolves the configured server.
    pub async fn open(config: &DnsProvider) -> anyhow::Result<Provider> {
        let how = match &config.kind {
            DnsProviderKind::Exec { command, timeout } => How::Exec {
                command: command.clone(),
                timeout: *timeout,
            },
            DnsProviderKind::Rfc2136(rfc) => {
                let file = &rfc.secret_file;
                let secret = crate::edge::config_secrets::tsig_secret(&file.value)
                    .map_err(|why| anyhow::anyhow!("{}: {why}", file.key))?;
                let key_name = Name::from_ascii(format!("{}.", rfc.key_name))
                    .map_err(|err| anyhow::anyhow!("tsig_key_name '{}' is not a DNS name: {err}", rfc.key_name))?;
                let signer = TSigner::new(secret, wire_algorithm(rfc.algorithm), key_name, TSIG_FUDGE)
                    .map_err(|err| anyhow::anyhow!("cannot sign with {}: {err}", rfc.algorithm.name()))?;
                let server = match &rfc.server {
                    Some(text) => Some(resolve(text).await?),
                    None => None,
                };
                let zone = rfc.zone.as_deref().map(fqdn).transpose()?;
                How::Rfc2136 {
                    signer,
                    server,
                    zone,
                    ttl: rfc.ttl,
                }
            }
        };
        Ok(Provider {
            config: config.clone(),
            how,
        })
    }

    /// Where the challenge record for `base` (a certificate's name without its wildcard label) goes.
    pub async fn locate(&self, base: &str) -> anyhow::Result<Placement> {
        let name = fqdn(&format!("_acme-challenge.{base}"))?;
        let chain = lookup::follow_cnames(&name, |name| async move { self.asked_about(&name).await }).await?;
        let record = chain.last().expect("the chain starts with the name").clone();
        let zone = self.zone(&record).await?;
        let primary = match &self.how {
            How::Rfc2136 {
                server: Some(server), ..
            } => *server,
            _ => *lookup::addresses(self.asked_about(&record).await?, &zone.primary, 53)
                .await?
                .first()
                .with_context(|| format!("the primary {} of zone {} has no address", zone.primary, zone.name))?,
        };
        let servers = match self.config.nameservers.is_empty() {
            false => {
                let mut servers = Vec::new();
                for text in &self.config.nameservers {
                    servers.push(Server {
                        label: text.clone(),
                        address: resolve(text).await?,
                    });
                }
                servers
            }
            true => {
                let mut servers = Vec::new();
                for host in lookup::nameservers(primary, &zone.name).await? {
                    for address in lookup::addresses(primary, &host, 53).await? {
                        servers.push(Server {
                            label: format!("{} ({address})", host.to_string().trim_end_matches('.')),
                            address,
                        });
                    }
                }
                servers
            }
        };
        Ok(Placement {
            chain,
            zone: zone.name,
            primary,
            servers,
        })
    }

    /// The server asked about `name`: the configured primary, else the first configured nameserver, else the
    /// primary of its zone as the system's resolver finds it.
    async fn asked_about(&self, name: &Name) -> anyhow::Result<SocketAddr> {
        if let How::Rfc2136 {
            server: Some(server), ..
        } = &self.how
        {
            return Ok(*server);
        }
        if let Some(first) = self.config.nameservers.first() {
            return resolve(first).await;
        }
        let zone = discover(name).await?;
        lookup::addresses(lookup::system_resolvers()?[0], &zone.primary, 53)
            .await?
            .first()
            .copied()
            .with_context(|| format!("the primary {} of zone {} has no address", zone.primary, zone.name))
    }

    /// The zone `record` is in, with its primary: the configured zone's SOA, else the SOA found above `record`.
    async fn zone(&self, record: &Name) -> anyhow::Result<Zone> {
        let start = match &self.how {
            How::Rfc2136 { zone: Some(zone), .. } if !zone.zone_of(record) => {
                bail!("{record} is not in the configured zone {zone}; remove `zone`, or point the CNAME into it")
            }
            How::Rfc2136 { zone: Some(zone), .. } => zone.clone(),
            _ => record.clone(),
        };
        let server = self.asked_about(&start).await?;
        match lookup::zone_of(server, &start, false).await? {
            Some(zone) => Ok(zone),
            None => discover(&start).await,
        }
    }

    /// Puts `value` in place at the placement's record: appended to what is there, so that an apex and its wildcard
    /// can hold their two values at once. An RFC 2136 update is read back from the primary.
    pub async fn add(&self, placement: &Placement, value: &str) -> anyhow::Result<()> {
        match &self.how {
            How::Rfc2136 { .. } => {
                self.update(placement, value, true).await?;
                let answer = lookup::txt(placement.primary, placement.record()).await?;
                if !answer.values.iter().any(|v| v == value) {
                    bail!(
                        "the primary {} accepted the update but does not serve the value at {}{}: is there a CNAME or \
                         another record type at that name, which RFC 2136 silently skips?",
                        placement.primary,
                        placement.record(),
                        placement.through()
                    );
                }
                Ok(())
            }
            How::Exec { .. } => self.exec("present", placement, value).await,
        }
    }

    /// Whether the placement's primary serves `value` at its record now.
    pub async fn serves(&self, placement: &Placement, value: &str) -> anyhow::Result<bool> {
        let answer = lookup::txt(placement.primary, placement.record()).await?;
        Ok(answer.values.iter().any(|v| v == value))
    }

    /// Takes exactly `value` away from the placement's record; other values at the name stay.
    pub async fn remove(&self, placement: &Placement, value: &str) -> anyhow::Result<()> {
        match &self.how {
            How::Rfc2136 { .. } => self.update(placement, value, false).await,
            How::Exec { .. } => self.exec("cleanup", placement, value).await,
        }
    }

    async fn update(&self, placement: &Placement, value: &str, add: bool) -> anyhow::Result<()> {
        let How::Rfc2136 { signer, ttl, .. } = &self.how else {
            unreachable!("only an rfc2136 provider sends updates");
        };
        let record = placement.record();
        let mut rrset = RecordSet::new(record.clone(), RecordType::TXT, 0);
        rrset.set_ttl(*ttl);
        rrset.add_rdata(RData::TXT(TXT::new(vec![value.to_owned()])));
        let message = match add {
            true => update_message::append(rrset, placement.zone.clone(), false, false),
            false => update_message::delete_by_rdata(rrset, placement.zone.clone(), false),
        };
        let what = match add {
            true => "add",
            false => "remove",
        };
        let primary = placement.primary;
        let answer = exchange(primary, message, Some(signer))
            .await
            .with_context(|| format!("cannot {what} the TXT record at {record}{}", placement.through()))?;
        let key = signer.signer_name().to_string();
        let key = key.trim_end_matches('.');
        match answer.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => bail!(
                "{primary} refused to {what} the TXT record at {record}{} (REFUSED): the zone {}'s update policy does \
                 not grant the key '{key}' that name; grant it, like `update-policy {{ grant {key} name {record} TXT; }};`",
                placement.through(),
                placement.zone
            ),
            ResponseCode::NotAuth => bail!(
                "{primary} is not authoritative for the zone {} (NOTAUTH), so it cannot update {record}{}; point \
                 `server` at the zone's primary",
                placement.zone,
                placement.through()
            ),
            ResponseCode::NotZone => bail!(
                "{record} is not in the zone {} (NOTZONE){}; check `zone`",
                placement.zone,
                placement.through()
            ),
            code => bail!(
                "{primary} answered {code} to the update of the TXT record at {record}{}",
                placement.through()
            ),
        }
    }

    /// `command present|cleanup <fqdn> <value>`, lego's convention, with the same values in `HAPCERT_*` variables.
    async fn exec(&self, action: &str, placement: &Placement, value: &str) -> anyhow::Result<()> {
        let How::Exec { command, timeout } = &self.how else {
            unreachable!("only an exec provider runs a command");
        };
        let env = [
            ("HAPCERT_ACTION".to_owned(), action.to_owned()),
            ("HAPCERT_FQDN".to_owned(), placement.record().to_string()),
            ("HAPCERT_VALUE".to_owned(), value.to_owned()),
            ("HAPCERT_ZONE".to_owned(), placement.zone.to_string()),
        ];
        let line = format!("{command} \"$HAPCERT_ACTION\" \"$HAPCERT_FQDN\" \"$HAPCERT_VALUE\"");
        crate::edge::shell::run_shell(&line, &env, *timeout)
            .await
            .map_err(|why| anyhow::anyhow!("the DNS provider's command `{command} {action}` {why}"))
    }
}

/// The zone of `name` as the system's resolver finds it: for a name no configured server answers for.
async fn discover(name: &Name) -> anyhow::Result<Zone> {
    let mut last = None;
    for resolver in lookup::system_resolvers()? {
        match lookup::zone_of(resolver, name, true).await {
            Ok(Some(zone)) => return Ok(zone),
            Ok(None) => {}
            Err(err) => last = Some(err),
        }
    }
    match last {
        Some(err) => Err(err.context(format!("cannot find the zone of {name}"))),
        None => bail!(
            "no zone found for {name}: no server answers with its SOA; set the provider's `server` (and `zone`), \
             or check the name"
        ),
    }
}

/// `host:port` as an address, by the system's resolver for a host name.
async fn resolve(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    tokio::net::lookup_host(text)
        .await
        .with_context(|| format!("cannot resolve the DNS server {text}"))?
        .next()
        .with_context(|| format!("the DNS server {text} has no address"))
}

/// A fully qualified name from one written without the root dot.
fn fqdn(text: &str) -> anyhow::Result<Name> {
    Name::from_ascii(format!("{}.", text.trim_end_matches('.')))
        .map_err(|err| anyhow::anyhow!("'{text}' is not a DNS name: {err}"))
}

fn wire_algorithm(algorithm: TsigAlgorithm) -> WireAlgorithm {
    match algorithm {
        TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
    }
}
