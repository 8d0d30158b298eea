//! The rule before the CA is told to look: every authoritative server of the zone, each address of each NS name,
//! serves the new TXT value, asked with RD=0. A secondary that lags its primary is the most common reason DNS-01
//! "works sometimes"; one resolver's view proves nothing about the server the CA's validator happens to ask.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use super::lookup;
use hickory_proto::rr::Name;

use super::provider::{Placement, Server};

/// The pause between two rounds in the first second: NOTIFY and a zone transfer usually take a fraction of a second,
/// and a check that comes too late is time lost for every certificate of the run.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// How long rounds come every [`FIRST_PAUSE`] before the pauses double up to the interval.
const EAGER: Duration = Duration::from_secs(1);
/// How long servers may lag before the wait is logged at INFO.
const WORTH_REPORTING: Duration = Duration::from_secs(1);

/// Waits until every server of every placement serves its value. While waiting it logs which servers lag, when that
/// changes; after `timeout` it fails naming them.
pub async fn wait_until_served(
    records: &[(&Placement, &str)],
    timeout: Duration,
    interval: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut reported: Vec<String> = Vec::new();
    loop {
        let lagging = lagging(records).await;
        if lagging.is_empty() {
            tracing::debug!(
                records = records.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "every authoritative server serves the challenge records"
            );
            return Ok(());
        }
        if started.elapsed() >= timeout {
            bail!(
                "after {}, not every authoritative server serves the challenge record: {}; a secondary that gets no \
                 NOTIFY or cannot transfer the zone lags its primary (raise propagation_timeout only if it is just \
                 slow); nothing was sent to the CA",
                humantime::format_duration(timeout),
                lagging.join("; ")
            );
        }
        // NOTIFY and a transfer take a fraction of a second: a server is worth an operator's attention only when it
        // lags longer than that.
        if lagging != reported && started.elapsed() >= WORTH_REPORTING {
            for line in &lagging {
                tracing::info!("waiting for DNS propagation: {line}");
            }
            reported = lagging;
        } else if lagging != reported {
            tracing::debug!("waiting for DNS propagation: {}", lagging.join("; "));
        }
        tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
        pause = next_pause(pause, started.elapsed(), interval);
    }
}

/// The pause after `pause`, `elapsed` into the wait: [`FIRST_PAUSE`] for the first second, then doubling up to the
/// configured interval.
fn next_pause(pause: Duration, elapsed: Duration, interval: Duration) -> Duration {
    match elapsed < EAGER {
        true => FIRST_PAUSE,
        false => (pause * 2).min(interval.max(FIRST_PAUSE)),
    }
}

/// One line per server and name that lacks values yet: which server, which name, and what it said.
async fn lagging(records: &[(&Placement, &str)]) -> Vec<String> {
    // Apex and wildcard put two values at one name: one question per server and name answers for both.
    let mut wanted: Vec<(&Server, &Name, &Name, Vec<&str>)> = Vec::new();
    for (placement, value) in records {
        for server in &placement.servers {
            match wanted
                .iter_mut()
                .find(|(s, name, ..)| *s == server && *name == placement.record())
            {
                Some((.., values)) => values.push(value),
                None => wanted.push((server, placement.record(), &placement.zone, vec![value])),
            }
        }
    }
    let mut out = Vec::new();
    for (server, record, zone, values) in wanted {
        let shown = record.to_string();
        let shown = shown.trim_end_matches('.');
        let problem = match lookup::txt(server.address, record).await {
            Ok(answer) if !answer.authoritative => Some(format!(
                "answers for {shown} without authority ({}): is it a server of the zone {zone}?",
                answer.code
            )),
            Ok(answer) => {
                let missing = values.iter().filter(|v| !answer.values.iter().any(|a| a == *v)).count();
                (missing > 0).then(|| {
                    format!(
                        "does not serve {missing} of the {} new values at {shown} yet ({}, {} values there)",
                        values.len(),
                        answer.code,
                        answer.values.len()
                    )
                })
            }
            Err(err) => Some(format!("does not answer: {err:#}")),
        };
        if let Some(problem) = problem {
            out.push(format!("{} {problem}", server.label));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_short_for_a_second_then_double_up_to_the_interval() {
        let interval = Duration::from_secs(2);
        let (mut pause, mut elapsed) = (FIRST_PAUSE, Duration::ZERO);
        let mut seen = Vec::new();
        while elapsed < Duration::from_secs(10) {
            pause = next_pause(pause, elapsed, interval);
            elapsed += pause;
            seen.push(pause);
        }
        assert!(seen.iter().take(19).all(|p| *p == FIRST_PAUSE), "{seen:?}");
        assert_eq!(seen[20], Duration::from_millis(100), "{seen:?}");
        assert_eq!(*seen.last().unwrap(), interval);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        // An interval shorter than the first pause does not make the loop spin.
        assert_eq!(next_pause(FIRST_PAUSE, EAGER, Duration::ZERO), FIRST_PAUSE);
    }
}
