//! etcd, the fleet's shared store (being built for issue 13: fleets through etcd). This module owns every byte
//! exchanged with etcd; nothing else in hapcert uses it yet.
//!
//! It speaks etcd v3 through the JSON gateway that every etcd (3.4 on) serves on its client port, over the hyper
//! client the project already has (docs/ARCHITECTURE.md says why not gRPC). Keys and values are bytes to callers;
//! the gateway's base64 and its int64-as-string numbers stay in [`wire`].
//!
//! - Every request has a deadline ([`EtcdOptions::timeout`]) that covers all the endpoints it tries.
//! - Endpoint failover: a request goes to the endpoint that answered last, and moves on to the next one when an
//!   endpoint cannot be reached or answers that it has no leader. A write that reached a member and then timed out is
//!   not sent again (it may have been applied); the caller gets the timeout.
//! - TLS (a CA bundle, a client certificate and key) and authentication (user and password, exchanged for a token
//!   that is renewed when etcd calls it invalid) are options.

mod client;
mod wire;

pub use client::{
    Compare, EtcdClient, EtcdError, EtcdOptions, EtcdTls, KeyValue, Lease, Range, TxnOp, TxnOutcome, TxnResponse,
    Watch, WatchEvent, WatchEventKind,
};

/// The end of the range of keys that start with `prefix`: `prefix` with its last byte that is not 0xff incremented
/// (and the bytes after it dropped); `[0]` ("every key") when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"/hapcert/"), b"/hapcert0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
