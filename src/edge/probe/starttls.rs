//! The plain-text dialogue that turns a TCP connection into one ready for a TLS handshake, for the `[[watch]]`
//! endpoints with `starttls`: SMTP (RFC 3207), IMAP (RFC 9051), POP3 (RFC 2595) and PostgreSQL's SSLRequest.
//!
//! The steps that read a server's words and judge them are pure functions, tested without sockets; [`upgrade`] only
//! sends, reads and calls them. Every line is read with a length limit and every reply with a line limit, so a hostile
//! server cannot make hapcert buffer without end (and the probe's timeout bounds the time). A failure names the step,
//! quotes what the server said on one line, and says what to look at.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use anyhow::{anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::config::StartTls;

/// The longest line taken from a server, its line end included. SMTP caps a reply line at 512 octets (RFC 5321
/// 4.5.3.1.5); an IMAP greeting that lists its capabilities runs longer, but no honest one near this.
const MAX_LINE: usize = 4096;
/// The most lines of one reply: an SMTP multi-line reply, or the untagged IMAP lines before the tagged answer.
const MAX_LINES: usize = 100;
/// How much of what a server said an error quotes.
const QUOTE_CHARS: usize = 160;
/// The tag of hapcert's one IMAP command.
const IMAP_TAG: &str = "a1";
/// PostgreSQL's SSLRequest: length 8, then the request code 80877103 (1234 << 16 | 5679), both big-endian.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// What a dialogue is waiting for, kept outside it so that a timeout, which drops the dialogue, can still say which
/// step the server never answered.
#[derive(Debug, Default)]
pub(super) struct Progress(Mutex<Option<(StartTls, &'static str)>>);

impl Progress {
    fn waiting_for(&self, protocol: StartTls, step: &'static str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((protocol, step));
    }

    fn done(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The error for a probe that ran out of time in the middle of a dialogue; `None` once the dialogue is over (the
    /// TLS handshake's own timeout message applies then).
    pub(super) fn timeout_error(&self, endpoint: &str, limit: std::time::Duration) -> Option<anyhow::Error> {
        let (protocol, step) = (*self.0.lock().unwrap_or_else(PoisonError::into_inner))?;
        Some(anyhow!(
            "{endpoint} did not answer within {limit:?} while hapcert waited for {step}: {}",
            port_hint(protocol)
        ))
    }
}

/// Speaks `protocol`'s upgrade on `stream` up to the point where the TLS handshake begins. `local` is this end's
/// address, which SMTP's EHLO names.
pub(super) async fn upgrade<S>(
    stream: &mut S,
    protocol: StartTls,
    endpoint: &str,
    local: IpAddr,
    progress: &Progress,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut dialogue = Dialogue {
        stream,
        buffer: Vec::new(),
        endpoint,
        protocol,
        progress,
    };
    match protocol {
        StartTls::Smtp => smtp(&mut dialogue, &ehlo_name(local)).await?,
        StartTls::Imap => imap(&mut dialogue).await?,
        StartTls::Pop3 => pop3(&mut dialogue).await?,
        StartTls::Postgres => postgres(&mut dialogue).await?,
    }
    dialogue.nothing_more()?;
    progress.done();
    Ok(())
}

async fn smtp<S: AsyncRead + AsyncWrite + Unpin>(d: &mut Dialogue<'_, S>, client: &str) -> anyhow::Result<()> {
    let endpoint = d.endpoint;
    d.progress.waiting_for(StartTls::Smtp, "the SMTP greeting (220)");
    let (code, lines) = d.smtp_reply("the SMTP greeting").await?;
    if code != 220 {
        bail!(
            "{endpoint} turned the SMTP session away in its greeting ({}): does the mail server accept connections \
             from this host?",
            quote(&lines)
        );
    }
    d.send(&format!("EHLO {client}"), "the answer to EHLO (250)").await?;
    let (code, lines) = d.smtp_reply("the answer to EHLO").await?;
    if code != 250 {
        bail!(
            "{endpoint} refused EHLO {client} ({}): does the mail server accept this host?",
            quote(&lines)
        );
    }
    if !ehlo_offers_starttls(&lines) {
        bail!(
            "{endpoint} does not offer STARTTLS after EHLO ({}): is this the mail server's SMTP port (25) or \
             submission port (587), and is TLS set up in it?",
            quote(&lines)
        );
    }
    d.send("STARTTLS", "the answer to STARTTLS (220)").await?;
    let (code, lines) = d.smtp_reply("the answer to STARTTLS").await?;
    if code != 220 {
        bail!(
            "{endpoint} refused STARTTLS ({}): is TLS set up in the mail server (its certificate and key)?",
            quote(&lines)
        );
    }
    Ok(())
}

async fn imap<S: AsyncRead + AsyncWrite + Unpin>(d: &mut Dialogue<'_, S>) -> anyhow::Result<()> {
    let endpoint = d.endpoint;
    d.progress.waiting_for(StartTls::Imap, "the IMAP greeting (* OK)");
    let greeting = d.line("the IMAP greeting").await?;
    match imap_greeting(&greeting) {
        Answer::Yes => {}
        Answer::No => bail!(
            "{endpoint} opened no IMAP session that STARTTLS can follow ({}): a greeting of * BYE turns the client \
             away, and after * PREAUTH STARTTLS is not allowed",
            quote_line(&greeting)
        ),
        Answer::Skip | Answer::Garbled => return Err(d.garbled("the IMAP greeting", &greeting)),
    }
    d.send(&format!("{IMAP_TAG} STARTTLS"), "the answer to STARTTLS (a1 OK)")
        .await?;
    for _ in 0..MAX_LINES {
        let line = d.line("the answer to STARTTLS").await?;
        match imap_tagged(&line) {
            Answer::Yes => return Ok(()),
            Answer::Skip => continue,
            Answer::No => bail!(
                "{endpoint} refused STARTTLS ({}): is TLS set up in the IMAP server (its certificate and key)?",
                quote_line(&line)
            ),
            Answer::Garbled => return Err(d.garbled("the answer to STARTTLS", &line)),
        }
    }
    Err(d.endless("the answer to STARTTLS"))
}

async fn pop3<S: AsyncRead + AsyncWrite + Unpin>(d: &mut Dialogue<'_, S>) -> anyhow::Result<()> {
    let endpoint = d.endpoint;
    d.progress.waiting_for(StartTls::Pop3, "the POP3 greeting (+OK)");
    let greeting = d.line("the POP3 greeting").await?;
    match pop3_status(&greeting) {
        Answer::Yes => {}
        Answer::No => bail!(
            "{endpoint} turned the POP3 session away in its greeting ({}): does the server accept connections \
             from this host?",
            quote_line(&greeting)
        ),
        Answer::Skip | Answer::Garbled => return Err(d.garbled("the POP3 greeting", &greeting)),
    }
    d.send("STLS", "the answer to STLS (+OK)").await?;
    let answer = d.line("the answer to STLS").await?;
    match pop3_status(&answer) {
        Answer::Yes => Ok(()),
        Answer::No => bail!(
            "{endpoint} refused STLS ({}): is TLS set up in the POP3 server (its certificate and key)?",
            quote_line(&answer)
        ),
        Answer::Skip | Answer::Garbled => Err(d.garbled("the answer to STLS", &answer)),
    }
}

async fn postgres<S: AsyncRead + AsyncWrite + Unpin>(d: &mut Dialogue<'_, S>) -> anyhow::Result<()> {
    let endpoint = d.endpoint;
    d.progress
        .waiting_for(StartTls::Postgres, "the answer to PostgreSQL's SSLRequest (S)");
    d.stream.write_all(&SSL_REQUEST).await?;
    d.stream.flush().await?;
    // One byte and no more: what follows an S belongs to the TLS handshake.
    let mut answer = [0u8; 1];
    let read = d.stream.read(&mut answer).await?;
    if read == 0 {
        bail!(
            "{endpoint} closed the connection instead of answering PostgreSQL's SSLRequest: {}",
            port_hint(StartTls::Postgres)
        );
    }
    match postgres_answer(answer[0]) {
        Answer::Yes => Ok(()),
        Answer::No => bail!(
            "{endpoint} answered PostgreSQL's SSLRequest with N: the server has no TLS; set ssl = on, with \
             ssl_cert_file and ssl_key_file, in its postgresql.conf"
        ),
        Answer::Skip | Answer::Garbled => bail!(
            "{endpoint} answered PostgreSQL's SSLRequest with {}, not S or N: {}",
            describe_byte(answer[0]),
            port_hint(StartTls::Postgres)
        ),
    }
}

/// One dialogue: the stream, the bytes read and not yet taken as lines, and whom to name in errors.
struct Dialogue<'a, S> {
    stream: &'a mut S,
    buffer: Vec<u8>,
    endpoint: &'a str,
    protocol: StartTls,
    progress: &'a Progress,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dialogue<'_, S> {
    /// Sends one command line, then records what hapcert waits for next.
    async fn send(&mut self, command: &str, next: &'static str) -> anyhow::Result<()> {
        self.stream.write_all(format!("{command}\r\n").as_bytes()).await?;
        self.stream.flush().await?;
        self.progress.waiting_for(self.protocol, next);
        Ok(())
    }

    /// The next line, without its line end; `step` names it in errors.
    async fn line(&mut self, step: &str) -> anyhow::Result<String> {
        let endpoint = self.endpoint;
        loop {
            match take_line(&mut self.buffer) {
                Some(Ok(line)) => return Ok(line),
                Some(Err(TooLong)) => bail!(
                    "{endpoint} sent a line longer than {MAX_LINE} bytes as {step} of the {} dialogue: {}",
                    self.protocol.name(),
                    port_hint(self.protocol)
                ),
                None => {}
            }
            let mut chunk = [0u8; 1024];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                let partial = String::from_utf8_lossy(&self.buffer).into_owned();
                let said = if partial.trim().is_empty() {
                    String::new()
                } else {
                    format!(" after '{}'", quote_line(&partial))
                };
                bail!(
                    "{endpoint} closed the connection while hapcert waited for {step}{said}: {}",
                    port_hint(self.protocol)
                );
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// A whole SMTP reply: its code and its lines (at most [`MAX_LINES`]).
    async fn smtp_reply(&mut self, step: &str) -> anyhow::Result<(u16, Vec<String>)> {
        let mut lines: Vec<String> = Vec::new();
        let mut code = None;
        while lines.len() < MAX_LINES {
            let line = self.line(step).await?;
            let Some(parsed) = smtp_line(&line) else {
                return Err(self.garbled(step, &line));
            };
            if code.is_some_and(|c| c != parsed.code) {
                return Err(self.garbled(step, &line));
            }
            let (this, last) = (parsed.code, parsed.last);
            code = Some(this);
            lines.push(line);
            if last {
                return Ok((this, lines));
            }
        }
        Err(self.endless(step))
    }

    /// The server said something that is not this protocol at `step`.
    fn garbled(&self, step: &str, said: &str) -> anyhow::Error {
        anyhow!(
            "{} did not answer {step} in {} ('{}'): {}",
            self.endpoint,
            self.protocol.name().to_uppercase(),
            quote_line(said),
            port_hint(self.protocol)
        )
    }

    fn endless(&self, step: &str) -> anyhow::Error {
        anyhow!(
            "{} sent more than {MAX_LINES} lines as {step}, with no end: {}",
            self.endpoint,
            port_hint(self.protocol)
        )
    }

    /// The server's last answer must be the last thing it sent before the handshake: anything more would be read as
    /// the start of TLS, or is text that something on the path slipped in (the STARTTLS injection of CVE-2011-0411).
    fn nothing_more(&self) -> anyhow::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        bail!(
            "{} sent more after its answer to STARTTLS, before the TLS handshake ('{}'): a server sends nothing \
             there, so something between hapcert and it may be injecting text",
            self.endpoint,
            quote_line(&String::from_utf8_lossy(&self.buffer))
        )
    }
}

/// A line longer than [`MAX_LINE`].
#[derive(Debug, PartialEq, Eq)]
struct TooLong;

/// The first whole line in `buffer`, removed from it, without its line end (CRLF, or a bare LF); `None` when the
/// buffer holds no whole line yet and may still grow; `TooLong` when the line is or would be over [`MAX_LINE`].
fn take_line(buffer: &mut Vec<u8>) -> Option<Result<String, TooLong>> {
    let Some(end) = buffer.iter().position(|&b| b == b'\n') else {
        return (buffer.len() >= MAX_LINE).then_some(Err(TooLong));
    };
    if end + 1 > MAX_LINE {
        return Some(Err(TooLong));
    }
    let line: Vec<u8> = buffer.drain(..=end).collect();
    let text = String::from_utf8_lossy(&line);
    Some(Ok(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// How a server answered one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Go on.
    Yes,
    /// It speaks the protocol and says no.
    No,
    /// A line to pass over on the way to the answer (IMAP's untagged lines).
    Skip,
    /// Not this protocol's words.
    Garbled,
}

/// One line of an SMTP reply (RFC 5321 4.2): three digits, then `-` when more lines follow, or a space or nothing on
/// the last.
#[derive(Debug, PartialEq, Eq)]
struct SmtpLine<'a> {
    code: u16,
    last: bool,
    text: &'a str,
}

fn smtp_line(line: &str) -> Option<SmtpLine<'_>> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&digits.as_bytes()[0]) {
        return None;
    }
    let code = digits.parse().ok()?;
    let rest = &line[3..];
    let (last, text) = match rest.as_bytes().first() {
        None => (true, ""),
        Some(b' ') => (true, &rest[1..]),
        Some(b'-') => (false, &rest[1..]),
        Some(_) => return None,
    };
    Some(SmtpLine { code, last, text })
}

/// Whether the lines of a 250 answer to EHLO list the STARTTLS extension (the first line is the server's name, each
/// other one keyword and its parameters).
fn ehlo_offers_starttls(lines: &[String]) -> bool {
    lines.iter().skip(1).filter_map(|line| smtp_line(line)).any(|line| {
        line.text
            .split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("STARTTLS"))
    })
}

/// The name hapcert gives itself in EHLO: an address literal of its own end of the connection (RFC 5321 4.1.3), which
/// is true whatever the host is called.
fn ehlo_name(local: IpAddr) -> String {
    match local {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    }
}

/// The first word after `*` or a tag, upper-cased: `* ok [CAPABILITY ...] ready` → `OK`.
fn imap_status(line: &str, tag: &str) -> Option<String> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    rest.split_whitespace().next().map(str::to_ascii_uppercase)
}

/// An IMAP greeting (RFC 9051 7.1): `* OK` opens a session STARTTLS may follow; `* PREAUTH` (no STARTTLS allowed
/// after it) and `* BYE` do not.
fn imap_greeting(line: &str) -> Answer {
    match imap_status(line, "*").as_deref() {
        Some("OK") => Answer::Yes,
        Some("PREAUTH" | "BYE") => Answer::No,
        _ => Answer::Garbled,
    }
}

/// A line after `a1 STARTTLS`: the tagged `OK`, `NO` or `BAD`, or an untagged line before it.
fn imap_tagged(line: &str) -> Answer {
    if line.starts_with("* ") {
        return Answer::Skip;
    }
    match imap_status(line, IMAP_TAG).as_deref() {
        Some("OK") => Answer::Yes,
        Some("NO" | "BAD") => Answer::No,
        _ => Answer::Garbled,
    }
}

/// A POP3 status line (RFC 1939 3): `+OK` or `-ERR`, alone or before a space.
fn pop3_status(line: &str) -> Answer {
    let word = line.split_whitespace().next().unwrap_or("");
    if word.eq_ignore_ascii_case("+OK") {
        Answer::Yes
    } else if word.eq_ignore_ascii_case("-ERR") {
        Answer::No
    } else {
        Answer::Garbled
    }
}

/// The one byte a PostgreSQL server answers an SSLRequest with: `S` to go on with TLS, `N` when it has none.
fn postgres_answer(byte: u8) -> Answer {
    match byte {
        b'S' => Answer::Yes,
        b'N' => Answer::No,
        _ => Answer::Garbled,
    }
}

fn describe_byte(byte: u8) -> String {
    match byte {
        b'E' => "an error message (E)".to_owned(),
        b if b.is_ascii_graphic() => format!("'{}'", b as char),
        b => format!("byte 0x{b:02x}"),
    }
}

/// Where a dialogue that went wrong from the start most likely went wrong: the wrong port.
fn port_hint(protocol: StartTls) -> &'static str {
    match protocol {
        StartTls::Smtp => {
            "is this a port where SMTP offers STARTTLS (25, 587)? Where TLS starts with the connection (465), leave \
             starttls out"
        }
        StartTls::Imap => {
            "is this a port where IMAP offers STARTTLS (143)? Where TLS starts with the connection (993), leave \
             starttls out"
        }
        StartTls::Pop3 => {
            "is this a port where POP3 offers STLS (110)? Where TLS starts with the connection (995), leave starttls \
             out"
        }
        StartTls::Postgres => "is this a PostgreSQL port (5432, or a pooler's such as 6432)?",
    }
}

/// A reply of several lines on one line, for an error message.
fn quote(lines: &[String]) -> String {
    quote_line(&lines.join(" "))
}

/// A server's words made safe and short for one line of a message: trimmed, control characters shown as `?` (a
/// hostile server must not drive the operator's terminal), cut at [`QUOTE_CHARS`] characters.
fn quote_line(said: &str) -> String {
    let clean: String = said
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    match clean.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}...", &clean[..cut]),
        None => clean,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_smtp_reply_line_has_a_code_and_says_whether_more_follow() {
        assert_eq!(
            smtp_line("250-mx.example.com Hello"),
            Some(SmtpLine {
                code: 250,
                last: false,
                text: "mx.example.com Hello"
            })
        );
        assert_eq!(
            smtp_line("220 ready"),
            Some(SmtpLine {
                code: 220,
                last: true,
                text: "ready"
            })
        );
        assert_eq!(
            smtp_line("250"),
            Some(SmtpLine {
                code: 250,
                last: true,
                text: ""
            })
        );
        for garbled in [
            "",
            "25",
            "* OK ready",
            "+OK",
            "2500 x",
            "250x",
            "HTTP/1.1 400",
            "\u{16}\u{3}\u{1}",
            "099 x",
        ] {
            assert_eq!(smtp_line(garbled), None, "{garbled:?}");
        }
    }

    #[test]
    fn starttls_counts_only_as_a_keyword_of_an_extension_line() {
        let offered = lines(&["250-mx.example.com", "250-PIPELINING", "250-starttls", "250 8BITMIME"]);
        assert!(ehlo_offers_starttls(&offered));
        let last = lines(&["250-mx.example.com", "250 STARTTLS"]);
        assert!(ehlo_offers_starttls(&last));
        // The greeting line is the server's name, whatever it says; a keyword must be the whole first word.
        let absent = lines(&["250-STARTTLS.example.com", "250-XSTARTTLS", "250 AUTH STARTTLS"]);
        assert!(!ehlo_offers_starttls(&absent));
        assert!(!ehlo_offers_starttls(&lines(&["250 mx.example.com"])));
    }

    #[test]
    fn ehlo_names_this_end_by_an_address_literal() {
        assert_eq!(ehlo_name(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))), "[192.0.2.7]");
        assert_eq!(ehlo_name(IpAddr::V6(Ipv6Addr::LOCALHOST)), "[IPv6:::1]");
        let mapped = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped();
        assert_eq!(ehlo_name(IpAddr::V6(mapped)), "[127.0.0.1]");
    }

    #[test]
    fn imap_goes_on_after_an_ok_greeting_and_its_tagged_ok() {
        assert_eq!(imap_greeting("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready"), Answer::Yes);
        assert_eq!(imap_greeting("* ok ready"), Answer::Yes);
        assert_eq!(imap_greeting("* PREAUTH logged in as you"), Answer::No);
        assert_eq!(imap_greeting("* BYE too many connections"), Answer::No);
        assert_eq!(imap_greeting("+OK POP3 ready"), Answer::Garbled);
        assert_eq!(imap_greeting("*OK"), Answer::Garbled);

        assert_eq!(imap_tagged("a1 OK Begin TLS negotiation now"), Answer::Yes);
        assert_eq!(imap_tagged("a1 ok"), Answer::Yes);
        assert_eq!(imap_tagged("* CAPABILITY IMAP4rev1"), Answer::Skip);
        assert_eq!(imap_tagged("a1 BAD unknown command"), Answer::No);
        assert_eq!(imap_tagged("a1 NO TLS not configured"), Answer::No);
        assert_eq!(imap_tagged("a2 OK"), Answer::Garbled);
        assert_eq!(imap_tagged("+ go ahead"), Answer::Garbled);
    }

    #[test]
    fn pop3_reads_its_status_word_and_postgres_its_one_byte() {
        assert_eq!(pop3_status("+OK Dovecot ready."), Answer::Yes);
        assert_eq!(pop3_status("+OK"), Answer::Yes);
        assert_eq!(pop3_status("-ERR STLS not available"), Answer::No);
        assert_eq!(pop3_status("+OKAY"), Answer::Garbled);
        assert_eq!(pop3_status("220 smtp"), Answer::Garbled);

        assert_eq!(postgres_answer(b'S'), Answer::Yes);
        assert_eq!(postgres_answer(b'N'), Answer::No);
        assert_eq!(postgres_answer(b'E'), Answer::Garbled);
        assert_eq!(describe_byte(b'E'), "an error message (E)");
        assert_eq!(describe_byte(b'2'), "'2'");
        assert_eq!(describe_byte(0x16), "byte 0x16");
    }

    #[test]
    fn the_ssl_request_is_length_8_and_code_80877103() {
        assert_eq!(u32::from_be_bytes(SSL_REQUEST[..4].try_into().unwrap()), 8);
        assert_eq!(u32::from_be_bytes(SSL_REQUEST[4..].try_into().unwrap()), 80877103);
    }

    #[test]
    fn lines_are_taken_whole_and_never_past_the_limit() {
        let mut buffer = b"220-first\r\n220 second\npartial".to_vec();
        assert_eq!(take_line(&mut buffer), Some(Ok("220-first".to_owned())));
        assert_eq!(take_line(&mut buffer), Some(Ok("220 second".to_owned())));
        assert_eq!(take_line(&mut buffer), None, "a partial line waits for more");
        assert_eq!(buffer, b"partial");

        let mut endless = vec![b'x'; MAX_LINE];
        assert_eq!(take_line(&mut endless), Some(Err(TooLong)));
        let mut long = vec![b'x'; MAX_LINE];
        long.extend_from_slice(b"\r\n");
        assert_eq!(take_line(&mut long), Some(Err(TooLong)));
        let mut fits = vec![b'x'; MAX_LINE - 2];
        fits.extend_from_slice(b"\r\n");
        assert_eq!(take_line(&mut fits).unwrap().unwrap().len(), MAX_LINE - 2);
    }

    /// A scripted server on an in-memory pipe: each (expected command, answer) in turn, after `greeting`.
    async fn dialogue_with(protocol: StartTls, greeting: &str, script: &[(&str, &str)]) -> anyhow::Result<()> {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let script: Vec<(String, String)> = script.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let greeting = greeting.to_owned();
        let server = tokio::spawn(async move {
            server.write_all(greeting.as_bytes()).await.unwrap();
            let mut reader = tokio::io::BufReader::new(server);
            for (expected, answer) in script {
                let mut line = String::new();
                tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
                    .await
                    .unwrap();
                assert_eq!(line, format!("{expected}\r\n"));
                reader.get_mut().write_all(answer.as_bytes()).await.unwrap();
            }
            reader
        });
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let result = upgrade(&mut client, protocol, "mx.example.com:25", local, &Progress::default()).await;
        drop(server.await.unwrap());
        result
    }

    #[tokio::test]
    async fn smtp_reads_multi_line_replies_up_to_the_upgrade() {
        let ehlo = (
            "EHLO [127.0.0.1]",
            "250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
        );
        dialogue_with(
            StartTls::Smtp,
            "220-mx.example.com ESMTP\r\n220 no spam\r\n",
            &[ehlo, ("STARTTLS", "220 2.0.0 go ahead\r\n")],
        )
        .await
        .unwrap();

        let no_offer = dialogue_with(
            StartTls::Smtp,
            "220 mx.example.com\r\n",
            &[("EHLO [127.0.0.1]", "250-mx.example.com\r\n250 8BITMIME\r\n")],
        )
        .await
        .unwrap_err();
        assert_eq!(
            no_offer.to_string(),
            "mx.example.com:25 does not offer STARTTLS after EHLO (250-mx.example.com 250 8BITMIME): is this the \
             mail server's SMTP port (25) or submission port (587), and is TLS set up in it?"
        );
    }

    #[tokio::test]
    async fn text_after_the_go_ahead_is_refused_as_an_injection() {
        let err = dialogue_with(
            StartTls::Pop3,
            "+OK ready\r\n",
            &[("STLS", "+OK begin TLS\r\n-ERR slipped in\r\n")],
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sent more after its answer to STARTTLS") && text.contains("'-ERR slipped in'"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_timeout_names_the_step_the_server_never_answered() {
        let (mut client, _server) = tokio::io::duplex(1024);
        let progress = Progress::default();
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            upgrade(&mut client, StartTls::Imap, "imap.example.com:993", local, &progress),
        )
        .await;
        assert!(waited.is_err(), "the server said nothing, so the dialogue cannot end");
        let err = progress
            .timeout_error("imap.example.com:993", std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            err.to_string(),
            "imap.example.com:993 did not answer within 5s while hapcert waited for the IMAP greeting (* OK): is this \
             a port where IMAP offers STARTTLS (143)? Where TLS starts with the connection (993), leave starttls out"
        );
    }

    #[test]
    fn a_quote_is_one_short_line_without_control_characters() {
        assert_eq!(
            quote(&lines(&["250-mx.example.com", "250 8BITMIME"])),
            "250-mx.example.com 250 8BITMIME"
        );
        assert_eq!(quote_line("  \u{1b}[31mred\u{7}\r\n"), "?[31mred?");
        let long = "y".repeat(500);
        let quoted = quote_line(&long);
        assert_eq!(quoted.len(), QUOTE_CHARS + 3);
        assert!(quoted.ends_with("..."));
        assert_eq!(quote_line(&"é".repeat(200)).chars().count(), QUOTE_CHARS + 3);
    }
}
