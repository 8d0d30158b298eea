//! Questions to name servers: the TXT values a server holds at a name, the zone a name belongs to (by its SOA), the
//! CNAME chain from `_acme-challenge.<name>` to where the record really goes, the zone's authoritative servers, and
//! their addresses. What is served is always asked of the authoritative servers with RD=0, never of a resolver: a
//! resolver may answer from its cache, or from an internal view the CA never sees.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::wire::exchange;

/// Longest CNAME chain followed: real delegations use one.
const MAX_CNAMES: usize = 8;

/// Asks `server` about `name`; `recursion` sets RD, which only discovery through the system's resolvers uses.
pub async fn ask(server: SocketAddr, name: &Name, kind: RecordType, recursion: bool) -> anyhow::Result<Message> {
    let mut message = Message::query();
    message.metadata.recursion_desired = recursion;
    message.add_query(Query::query(name.clone(), kind));
    exchange(server, message, None).await
}

/// What an authoritative server says about the TXT records at a name.
#[derive(Debug)]
pub struct TxtAnswer {
    pub values: Vec<String>,
    /// The AA bit: the server answers from its own copy of the zone.
    pub authoritative: bool,
    pub code: ResponseCode,
}

/// The TXT values `server` holds at `name` (RD=0).
pub async fn txt(server: SocketAddr, name: &Name) -> anyhow::Result<TxtAnswer> {
    let answer = ask(server, name, RecordType::TXT, false).await?;
    let values = answer
        .answers
        .iter()
        .filter(|r| r.name == *name)
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect()),
            _ => None,
        })
        .collect();
    Ok(TxtAnswer {
        values,
        authoritative: answer.authoritative,
        code: answer.response_code,
    })
}

/// A zone and its SOA's primary (MNAME).
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: Name,
    pub primary: Name,
}

/// The zone `name` is in, asked of `server` (an authoritative server with RD=0, or a resolver with RD=1): walking up
/// the labels until an answer holds a SOA, whose owner is the zone. `None` when no server holds one.
pub async fn zone_of(server: SocketAddr, name: &Name, recursion: bool) -> anyhow::Result<Option<Zone>> {
    let mut candidate = name.clone();
    loop {
        let answer = ask(server, &candidate, RecordType::SOA, recursion).await?;
        match answer.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::Refused | ResponseCode::NotAuth if !recursion => return Ok(None),
            code => bail!("{server} answered {code} when asked for the SOA of {candidate}"),
        }
        let soa = answer
            .answers
            .iter()
            .chain(answer.authorities.iter())
            .find_map(|r| match &r.data {
                RData::SOA(soa) if r.name.zone_of(name) => Some((r.name.clone(), soa.mname.clone())),
                _ => None,
            });
        if let Some((zone, primary)) = soa {
            return Ok(Some(Zone { name: zone, primary }));
        }
        if candidate.num_labels() <= 1 {
            return Ok(None);
        }
        candidate = candidate.base_name();
    }
}

/// The CNAME `server` holds at `name`, if any (RD=0).
pub async fn cname_at(server: SocketAddr, name: &Name) -> anyhow::Result<Option<Name>> {
    let answer = ask(server, name, RecordType::TXT, false).await?;
    Ok(answer.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(target) if r.name == *name => Some(target.0.clone()),
        _ => None,
    }))
}

/// Follows the CNAMEs from `name`, asking `server_for` each name's authoritative server. Returns the chain, `name`
/// first, the name the record must be written at last.
pub async fn follow_cnames<F, Fut>(name: &Name, mut server_for: F) -> anyhow::Result<Vec<Name>>
where
    F: FnMut(Name) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<SocketAddr>>,
{
    let mut chain = vec![name.clone()];
    loop {
        let current = chain.last().expect("the chain starts with the name").clone();
        let server = server_for(current.clone()).await?;
        let Some(target) = cname_at(server, &current).await? else {
            return Ok(chain);
        };
        if chain.contains(&target) || chain.len() > MAX_CNAMES {
            bail!(
                "the CNAMEs from {name} loop or run too long: {}",
                chain.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> ")
            );
        }
        chain.push(target);
    }
}

/// The names of the zone's authoritative servers (its NS records), asked of `server`.
pub async fn nameservers(server: SocketAddr, zone: &Name) -> anyhow::Result<Vec<Name>> {
    let answer = ask(server, zone, RecordType::NS, false).await?;
    let names: Vec<Name> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) if r.name == *zone => Some(ns.0.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        bail!("{server} lists no NS records for the zone {zone}");
    }
    Ok(names)
}

/// Every address (v4 and v6) of `host`: asked of `server` first (an in-zone name server's address is in the zone),
/// then the system's resolver.
pub async fn addresses(server: SocketAddr, host: &Name, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let mut found = Vec::new();
    for kind in [RecordType::A, RecordType::AAAA] {
        if let Ok(answer) = ask(server, host, kind, false).await {
            found.extend(
                answer
                    .answers
                    .iter()
                    .filter_map(address)
                    .map(|ip| SocketAddr::new(ip, port)),
            );
        }
    }
    if found.is_empty() {
        let text = host.to_string();
        let lookup = tokio::net::lookup_host((text.trim_end_matches('.'), port))
            .await
            .with_context(|| format!("cannot find the address of {host}"))?;
        found.extend(lookup);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn address(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// The name servers of /etc/resolv.conf, for finding a zone when no server is configured.
pub fn system_resolvers() -> anyhow::Result<Vec<SocketAddr>> {
    let text = std::fs::read_to_string("/etc/resolv.conf").context("cannot read /etc/resolv.conf")?;
    let servers: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        bail!("/etc/resolv.conf names no nameserver; set the provider's server (the zone's primary, host:port)");
    }
    Ok(servers)
}
