//! What goes over the control socket, one JSON object per line: the client's one request, then the daemon's replies
//! (log lines, stdout text, an error, and last the exit code). Pure: encoding and decoding only.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The longest request line a daemon reads: a request is a few names and flags, so anything near this is not one.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A command a client asks the daemon to run, with what it would have run with by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The client's config file, made absolute: a daemon runs only with its own, and says so when they differ.
    pub config: PathBuf,
    /// `--staging`.
    pub staging: bool,
    /// `--lock-timeout`, in milliseconds.
    pub lock_timeout_ms: u64,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Command {
    Renew {
        names: Vec<String>,
        force: bool,
        ignore_retry_after: bool,
        dry_run: bool,
    },
    Revoke {
        names: Vec<String>,
        /// The reason as the command line writes it (`keyCompromise`, ...).
        reason: String,
    },
    Status {
        json: bool,
        long: bool,
        /// Whether the client's stdout would get colour: the daemon's own stdout is no guide.
        colour: bool,
    },
}

/// One line from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    /// A log line of the request, for the client's stderr.
    Log(String),
    /// Text the command wrote to stdout, for the client's stdout, as it came (newlines included).
    Out(String),
    /// The error that ended the command, as hapcert prints it on stderr.
    Error(String),
    /// The exit code; the last line.
    Exit(u8),
}

/// A message as one line, newline included.
pub fn encode<T: Serialize>(message: &T) -> String {
    let mut line = serde_json::to_string(message).expect("requests and replies always serialize");
    line.push('\n');
    line
}

pub fn decode<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, String> {
    serde_json::from_str(line.trim_end()).map_err(|err| format!("not a control message ({err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renew() -> Request {
        Request {
            config: "/etc/hapcert/hapcert.toml".into(),
            staging: false,
            lock_timeout_ms: 60_000,
            command: Command::Renew {
                names: vec!["site".into()],
                force: true,
                ignore_retry_after: false,
                dry_run: false,
            },
        }
    }

    #[test]
    fn a_request_is_one_line_and_comes_back_the_same() {
        let line = encode(&renew());
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line}");
        assert_eq!(decode::<Request>(&line), Ok(renew()));
        let status = Request {
            command: Command::Status {
                json: true,
                long: false,
                colour: false,
            },
            ..renew()
        };
        assert_eq!(decode::<Request>(&encode(&status)), Ok(status));
    }

    #[test]
    fn replies_are_tagged_by_kind_and_keep_their_newlines_inside_one_line() {
        assert_eq!(encode(&Reply::Exit(1)), "{\"exit\":1}\n");
        assert_eq!(encode(&Reply::Out("a\nb\n".into())), "{\"out\":\"a\\nb\\n\"}\n");
        for reply in [
            Reply::Log(" INFO renewed".into()),
            Reply::Out("renewed   site\n".into()),
            Reply::Error("hapcert: no".into()),
            Reply::Exit(2),
        ] {
            assert_eq!(decode::<Reply>(&encode(&reply)), Ok(reply));
        }
    }

    #[test]
    fn garbage_and_unknown_commands_are_refused_with_a_reason() {
        assert!(
            decode::<Request>("hello")
                .unwrap_err()
                .starts_with("not a control message")
        );
        let unknown = r#"{"config":"/x","staging":false,"lock_timeout_ms":1,"command":{"name":"delete-everything"}}"#;
        assert!(decode::<Request>(unknown).is_err());
    }
}
