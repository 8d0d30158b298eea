//! stdout, where a command's results go; every command writes them through [`out!`] and [`outln!`]. A reader that goes
//! away (`hapcert status | head -1`, a pager quit early) is not an error: nobody reads any more, so the command stops
//! writing and ends with the exit code it would have had. std's `print!` would panic with exit code 101 instead.
//! Any other write error (a full disk behind a redirect) is kept for `main`, which reports it when the command is over.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// Writes formatted text to stdout, as `print!` does, through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// Writes a formatted line to stdout, as `println!` does, through [`write`].
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// What became of stdout so far; one per process, behind a lock, as stdout itself is.
static STDOUT: Mutex<Outcome> = Mutex::new(Outcome::new());

tokio::task_local! {
    /// Set while the daemon runs a command for a client of its control socket: that command's stdout is the
    /// client's, not the daemon's.
    static ELSEWHERE: Box<dyn Fn(String) + Send + Sync>;
}

/// Runs `work` with its results (what it writes through [`out!`]) handed to `sink` instead of stdout. Only the
/// writes made by `work`'s own task are caught: the commands write their results there, after their tasks joined.
pub async fn redirect<F: Future>(sink: impl Fn(String) + Send + Sync + 'static, work: F) -> F::Output {
    ELSEWHERE.scope(Box::new(sink), work).await
}

/// Writes `text` to stdout and flushes it, so that an error shows at the write that caused it. After a broken pipe
/// nothing more is written.
pub fn write(text: fmt::Arguments<'_>) {
    if ELSEWHERE.try_with(|sink| sink(text.to_string())).is_ok() {
        return;
    }
    let mut outcome = STDOUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    outcome.write(&mut io::stdout().lock(), text);
}

/// The first write error other than a broken pipe, taken once.
pub fn take_failure() -> Option<io::Error> {
    STDOUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .failure
        .take()
}

/// The writes' outcome on one sink.
#[derive(Debug)]
struct Outcome {
    /// A write found the pipe broken: nobody will read what follows.
    reader_gone: bool,
    failure: Option<io::Error>,
}

impl Outcome {
    const fn new() -> Outcome {
        Outcome {
            reader_gone: false,
            failure: None,
        }
    }

    fn write(&mut self, sink: &mut impl Write, text: fmt::Arguments<'_>) {
        if self.reader_gone {
            return;
        }
        match sink.write_fmt(text).and_then(|()| sink.flush()) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => self.reader_gone = true,
            Err(err) => {
                self.failure.get_or_insert(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that fails every write with `kind`, counting the attempts.
    struct Failing {
        kind: io::ErrorKind,
        attempts: usize,
    }

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.attempts += 1;
            Err(self.kind.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_stops_the_writing_quietly() {
        let mut outcome = Outcome::new();
        let mut sink = Failing {
            kind: io::ErrorKind::BrokenPipe,
            attempts: 0,
        };
        outcome.write(&mut sink, format_args!("first\n"));
        outcome.write(&mut sink, format_args!("second\n"));
        assert_eq!(sink.attempts, 1, "nothing is written after the reader went away");
        assert!(outcome.reader_gone);
        assert!(outcome.failure.is_none(), "a reader going away is not a failure");
    }

    #[test]
    fn another_write_error_is_kept_for_the_report() {
        let mut outcome = Outcome::new();
        let mut sink = Failing {
            kind: io::ErrorKind::StorageFull,
            attempts: 0,
        };
        outcome.write(&mut sink, format_args!("first\n"));
        assert_eq!(outcome.failure.map(|e| e.kind()), Some(io::ErrorKind::StorageFull));
        assert!(!outcome.reader_gone);
    }

    #[test]
    fn text_reaches_a_working_sink_whole() {
        let mut outcome = Outcome::new();
        let mut sink = Vec::new();
        outcome.write(&mut sink, format_args!("{} {}\n", "a", 1));
        outcome.write(&mut sink, format_args!("b"));
        assert_eq!(sink, b"a 1\nb");
        assert!(outcome.failure.is_none());
    }
}
