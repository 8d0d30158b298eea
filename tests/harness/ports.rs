//! Free ports on 127.0.0.1 (TCP and UDP both: a DNS server takes both), never the same one twice within this test
//! binary.
//!
//! They come from below the kernel's ephemeral range (32768–60999 on Linux), not from `bind(:0)`: a port picked from
//! that range is free only until some outgoing connection (a resolver forwarding over TCP, a client of another test)
//! is given it as its source port, before the sandbox binds it. Below the range, only an explicit bind takes a port.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Mutex, PoisonError};

/// The ports handed out: `[FIRST, END)`, below the ephemeral range.
const FIRST: u16 = 20_000;
const END: u16 = 32_768;

/// Every port handed out so far, and where the next search starts. Tests run in parallel threads, and a port handed out
/// may not be bound yet (or was just released), so each is handed out once.
static HANDED_OUT: Mutex<(BTreeSet<u16>, Option<u16>)> = Mutex::new((BTreeSet::new(), None));

/// A port that was free a moment ago, for TCP and UDP, and that no other sandbox of this process has been given.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let (handed_out, next) = &mut *guard;
    // Each process starts somewhere else in the range, so that two test binaries (the tests and the benchmark, say)
    // seldom try the same ports at the same moment.
    let mut port = next.unwrap_or(FIRST + (std::process::id() % u32::from(END - FIRST)) as u16);
    for _ in FIRST..END {
        let candidate = port;
        port = if port + 1 >= END { FIRST } else { port + 1 };
        if handed_out.contains(&candidate) {
            continue;
        }
        let free =
            TcpListener::bind(("127.0.0.1", candidate)).is_ok() && UdpSocket::bind(("127.0.0.1", candidate)).is_ok();
        if free {
            handed_out.insert(candidate);
            *next = Some(port);
            return candidate;
        }
    }
    panic!("no free port left on 127.0.0.1 between {FIRST} and {END}");
}
