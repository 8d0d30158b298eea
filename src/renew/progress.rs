//! The progress bar of a renewal by hand: only on a terminal, only for several orders, never for the timer (`run`) or
//! the daemon. Log lines go to the same terminal, so the log writer clears the bar around each line instead of tearing
//! it.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar on screen, if any, for the log writer.
static ON_SCREEN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A bar counting finished orders; a no-op when not wanted. [`Progress::clear`] takes it off the screen (the log
/// writer holds a clone, so dropping it does not).
#[derive(Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn none() -> Progress {
        Progress(None)
    }

    /// A bar for `total` orders when `wanted`, there are several, and stderr is a terminal.
    pub fn start(total: usize, wanted: bool) -> Progress {
        if !wanted || total < 2 || !io::stderr().is_terminal() {
            return Progress::none();
        }
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} certificates, {elapsed} {msg}")
                .expect("the template is valid"),
        );
        *ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Progress(Some(bar))
    }

    /// One order finished, well or not.
    pub fn finished(&self, name: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(name.to_owned());
            bar.inc(1);
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
            *ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// stderr for the log, with the bar (when there is one) lifted for each line.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| io::stderr().write_all(buf)).map(|()| buf.len()),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
