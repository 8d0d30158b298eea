//! A TCP relay in front of a server that drops the first connections it gets: a network that fails now and then, for
//! the retry paths of a client. Everything after them is relayed both ways, byte for byte.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

pub struct FlakyRelay {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl FlakyRelay {
    /// Relays 127.0.0.1:<port> to `target`, closing the first `drop_first` connections as soon as they are accepted.
    pub fn start(target_port: u16, drop_first: usize) -> FlakyRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if counter.fetch_add(1, Ordering::SeqCst) < drop_first {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                relay(client, server);
            }
        });
        FlakyRelay { port, accepted }
    }

    /// Connections accepted so far, dropped ones included.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, server: TcpStream) {
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    pipe(client, server);
    pipe(server2, client2);
}
