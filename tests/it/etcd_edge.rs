//! The etcd edge (`hapcert::edge::etcd`, the fleet's store for issue 13) against a real 3-member etcd cluster:
//! reads and writes, the fenced transaction, leases, watches and compaction, and failover when members stop.

use std::time::{Duration, Instant};

use hapcert::edge::etcd::{
    Compare, EtcdClient, EtcdError, EtcdOptions, EtcdTls, TxnOp, TxnResponse, WatchEvent, WatchEventKind,
};

use crate::harness::{EtcdCluster, EtcdTlsMember};

const TIMEOUT: Duration = Duration::from_secs(3);

fn client(endpoints: Vec<String>) -> EtcdClient {
    EtcdClient::new(EtcdOptions {
        endpoints,
        timeout: TIMEOUT,
        tls: EtcdTls::default(),
        user: None,
    })
    .expect("client")
}

async fn next_event(watch: &mut hapcert::edge::etcd::Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a watch event within 5 s")
        .expect("a watch event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_edge_reads_writes_and_fenced_transactions() {
    let cluster = EtcdCluster::start();
    let etcd = client(cluster.endpoints());

    assert_eq!(etcd.get(b"/t/a").await.unwrap(), None, "a missing key");
    let rev_a = etcd.put(b"/t/a", b"one", None).await.unwrap();
    etcd.put(b"/t/b", b"\x00\xffbinary", None).await.unwrap();
    etcd.put(b"/u/c", b"elsewhere", None).await.unwrap();
    let a = etcd.get(b"/t/a").await.unwrap().expect("/t/a was written");
    assert_eq!(
        (a.value.as_slice(), a.create_revision, a.mod_revision),
        (&b"one"[..], rev_a, rev_a)
    );

    let range = etcd.get_prefix(b"/t/", None).await.unwrap();
    let keys: Vec<&[u8]> = range.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [&b"/t/a"[..], b"/t/b"]);
    assert_eq!(
        range.kvs[1].value, b"\x00\xffbinary",
        "bytes survive the gateway's base64"
    );
    // What etcdctl sees is what the edge wrote.
    assert_eq!(cluster.get_prefix("/t/a"), [("/t/a".to_owned(), "one".to_owned())]);
    // A read at an older revision sees the older state.
    let old = etcd.get_prefix(b"/t/", Some(rev_a)).await.unwrap();
    assert_eq!(old.kvs.len(), 1, "at revision {rev_a} only /t/a existed: {old:?}");

    // The fencing primitive: write only while the lock key still has the revision at which we created it.
    let lock_rev = etcd.put(b"/t/lock", b"node-1", None).await.unwrap();
    let fenced = |value: &'static [u8]| {
        (
            [Compare::CreateRevision {
                key: b"/t/lock".to_vec(),
                revision: lock_rev,
            }],
            [TxnOp::Put {
                key: b"/t/cert".to_vec(),
                value: value.to_vec(),
                lease: None,
            }],
            [TxnOp::Get {
                key: b"/t/lock".to_vec(),
            }],
        )
    };
    let (compare, success, failure) = fenced(b"first");
    let outcome = etcd.txn(&compare, &success, &failure).await.unwrap();
    assert!(outcome.succeeded, "the lock is still ours: {outcome:?}");
    assert_eq!(etcd.get(b"/t/cert").await.unwrap().unwrap().value, b"first");

    // Another holder took the lock (deleted and created anew): the stale holder's write is refused.
    etcd.delete(b"/t/lock").await.unwrap();
    etcd.put(b"/t/lock", b"node-2", None).await.unwrap();
    let (compare, success, failure) = fenced(b"stale");
    let outcome = etcd.txn(&compare, &success, &failure).await.unwrap();
    assert!(
        !outcome.succeeded,
        "the lock changed hands, yet the fenced write passed: {outcome:?}"
    );
    match &outcome.responses[..] {
        [TxnResponse::Get(kvs)] => assert_eq!(kvs[0].value, b"node-2", "the failure branch reads the new holder"),
        other => panic!("failure branch: {other:?}"),
    }
    assert_eq!(
        etcd.get(b"/t/cert").await.unwrap().unwrap().value,
        b"first",
        "the stale write did not land"
    );

    // Compare on mod_revision and on the value.
    let cert = etcd.get(b"/t/cert").await.unwrap().unwrap();
    let on_mod = |revision| {
        [Compare::ModRevision {
            key: b"/t/cert".to_vec(),
            revision,
        }]
    };
    let put = [TxnOp::Put {
        key: b"/t/cert".to_vec(),
        value: b"second".to_vec(),
        lease: None,
    }];
    assert!(etcd.txn(&on_mod(cert.mod_revision), &put, &[]).await.unwrap().succeeded);
    assert!(
        !etcd.txn(&on_mod(cert.mod_revision), &put, &[]).await.unwrap().succeeded,
        "mod_revision moved on"
    );
    let on_value = |value: &[u8]| {
        [Compare::Value {
            key: b"/t/cert".to_vec(),
            value: value.to_vec(),
        }]
    };
    let delete = [TxnOp::Delete {
        key: b"/t/cert".to_vec(),
    }];
    assert!(!etcd.txn(&on_value(b"first"), &delete, &[]).await.unwrap().succeeded);
    let outcome = etcd.txn(&on_value(b"second"), &delete, &[]).await.unwrap();
    assert!(outcome.succeeded);
    assert!(
        matches!(outcome.responses[..], [TxnResponse::Delete { deleted: 1 }]),
        "{outcome:?}"
    );
    assert_eq!(etcd.delete_prefix(b"/t/").await.unwrap(), 3, "/t/a, /t/b and /t/lock");
    assert!(etcd.get_prefix(b"/t/", None).await.unwrap().kvs.is_empty());
    assert_eq!(cluster.get_prefix("/u/").len(), 1, "another prefix is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_edge_leases_expire_unless_kept_alive() {
    let cluster = EtcdCluster::start();
    let etcd = client(cluster.endpoints());

    let kept = etcd.lease_grant(Duration::from_secs(2)).await.unwrap();
    let dropped = etcd.lease_grant(Duration::from_secs(2)).await.unwrap();
    assert!(kept.ttl >= Duration::from_secs(2), "{kept:?}");
    etcd.put(b"/l/kept", b"x", Some(kept.id)).await.unwrap();
    etcd.put(b"/l/dropped", b"x", Some(dropped.id)).await.unwrap();
    assert_eq!(etcd.get(b"/l/dropped").await.unwrap().unwrap().lease, dropped.id);

    // Keep one alive (every 500 ms) until the other one's key is gone.
    let started = Instant::now();
    loop {
        assert!(etcd.lease_keep_alive(kept.id).await.unwrap() >= Duration::from_secs(2));
        if etcd.get(b"/l/dropped").await.unwrap().is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a 2 s lease not kept alive still holds its key after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let expired_after = started.elapsed();
    assert!(
        expired_after >= Duration::from_secs(1),
        "expired too early: {expired_after:?}"
    );
    eprintln!("the lease not kept alive expired after {expired_after:?}");
    assert!(
        etcd.get(b"/l/kept").await.unwrap().is_some(),
        "the kept lease's key is still there"
    );
    assert!(matches!(
        etcd.lease_keep_alive(dropped.id).await,
        Err(EtcdError::LeaseGone { .. })
    ));

    // Revoking a lease deletes its keys at once.
    etcd.lease_revoke(kept.id).await.unwrap();
    assert_eq!(etcd.get(b"/l/kept").await.unwrap(), None);
    assert!(matches!(
        etcd.lease_revoke(kept.id).await,
        Err(EtcdError::LeaseGone { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_edge_watch_sees_changes_in_order_and_reports_compaction() {
    let cluster = EtcdCluster::start();
    let etcd = client(cluster.endpoints());
    let first = etcd.put(b"/w/before", b"0", None).await.unwrap();

    let mut watch = etcd.watch_prefix(b"/w/", 0).await.unwrap();
    let put_a = etcd.put(b"/w/a", b"1", None).await.unwrap();
    etcd.put(b"/elsewhere", b"not watched", None).await.unwrap();
    let put_b = etcd.put(b"/w/b", b"2", None).await.unwrap();
    etcd.delete(b"/w/a").await.unwrap();
    let seen: Vec<(WatchEventKind, Vec<u8>, Vec<u8>, i64)> = [
        next_event(&mut watch).await,
        next_event(&mut watch).await,
        next_event(&mut watch).await,
    ]
    .into_iter()
    .map(|e| (e.kind, e.kv.key, e.kv.value, e.kv.mod_revision))
    .collect();
    assert_eq!(
        seen,
        [
            (WatchEventKind::Put, b"/w/a".to_vec(), b"1".to_vec(), put_a),
            (WatchEventKind::Put, b"/w/b".to_vec(), b"2".to_vec(), put_b),
            (WatchEventKind::Delete, b"/w/a".to_vec(), Vec::new(), put_b + 1),
        ]
    );

    // From an old revision, the history is replayed.
    let mut replay = etcd.watch_prefix(b"/w/", first).await.unwrap();
    assert_eq!(next_event(&mut replay).await.kv.key, b"/w/before");

    // Compacted away: the watch and an old read both say so, as their own error.
    let now = etcd.put(b"/w/c", b"3", None).await.unwrap();
    cluster.compact(now);
    let mut compacted = etcd.watch_prefix(b"/w/", first).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), compacted.next())
        .await
        .expect("the compacted watch answers within 5 s");
    match outcome {
        Err(EtcdError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (first, now)),
        Err(e) => panic!("a watch from compacted revision {first}: {e}"),
        Ok(event) => panic!("a watch from compacted revision {first} gave an event: {event:?}"),
    }
    let read = etcd.get_prefix(b"/w/", Some(first)).await;
    assert!(matches!(read, Err(EtcdError::Compacted { .. })), "{read:?}");
    // Listing again and watching from there works.
    let listing = etcd.get_prefix(b"/w/", None).await.unwrap();
    let mut again = etcd.watch_prefix(b"/w/", listing.revision + 1).await.unwrap();
    let put_d = etcd.put(b"/w/d", b"4", None).await.unwrap();
    let event = next_event(&mut again).await;
    assert_eq!((event.kv.key.as_slice(), event.kv.mod_revision), (&b"/w/d"[..], put_d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_edge_fails_over_and_fails_clearly_without_quorum() {
    let mut cluster = EtcdCluster::start();
    let endpoints = cluster.endpoints();
    let etcd = client(endpoints.clone());
    etcd.put(b"/f/k", b"before", None).await.unwrap();

    // The first endpoint, where the client starts, goes away: everything still works through the others.
    cluster.stop_and_settle(0);
    let lease = etcd.lease_grant(Duration::from_secs(5)).await.unwrap();
    let rev = etcd.put(b"/f/k", b"one down", Some(lease.id)).await.unwrap();
    assert_eq!(etcd.get(b"/f/k").await.unwrap().unwrap().value, b"one down");
    let fence = [Compare::ModRevision {
        key: b"/f/k".to_vec(),
        revision: rev,
    }];
    let put = [TxnOp::Put {
        key: b"/f/k".to_vec(),
        value: b"fenced".to_vec(),
        lease: None,
    }];
    assert!(etcd.txn(&fence, &put, &[]).await.unwrap().succeeded);
    etcd.lease_keep_alive(lease.id).await.unwrap();
    let mut watch = etcd.watch_prefix(b"/f/", 0).await.unwrap();
    etcd.put(b"/f/w", b"seen", None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv.key, b"/f/w");
    // A fresh client whose first endpoint is dead also works.
    let fresh = client(endpoints.clone());
    assert_eq!(fresh.get(b"/f/w").await.unwrap().unwrap().value, b"seen");

    // Two members down: no quorum. Each request fails within its timeout, naming every endpoint.
    cluster.stop(1);
    for (what, outcome) in [
        ("put", etcd.put(b"/f/k", b"x", None).await.map(|_| ())),
        ("get", etcd.get(b"/f/k").await.map(|_| ())),
        (
            "lease grant",
            etcd.lease_grant(Duration::from_secs(5)).await.map(|_| ()),
        ),
    ] {
        let error = outcome.expect_err(what);
        let text = error.to_string();
        assert!(matches!(error, EtcdError::Unreachable { .. }), "{what}: {text}");
        for endpoint in &endpoints {
            assert!(
                text.contains(endpoint.as_str()),
                "{what}: {text:?} does not name {endpoint}"
            );
        }
        eprintln!("{what} without quorum: {text}");
    }
    let started = Instant::now();
    let error = fresh.put(b"/f/k", b"x", None).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT - Duration::from_millis(50) && took < TIMEOUT + Duration::from_secs(1),
        "a put without quorum failed after {took:?}, not within its {TIMEOUT:?} timeout: {error}"
    );

    // Quorum back: the same client works again.
    cluster.start_member(1);
    etcd.put(b"/f/k", b"back", None).await.unwrap();
    assert_eq!(etcd.get(b"/f/k").await.unwrap().unwrap().value, b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_edge_speaks_tls_with_a_client_certificate_and_authenticates() {
    let member = EtcdTlsMember::start();
    let options = |user: Option<(&str, &str)>, with_cert: bool| EtcdOptions {
        endpoints: vec![member.endpoint()],
        timeout: TIMEOUT,
        tls: EtcdTls {
            ca_bundle: Some(member.ca.clone()),
            client_cert: with_cert.then(|| member.client_cert.clone()),
            client_key: with_cert.then(|| member.client_key.clone()),
        },
        user: user.map(|(u, p)| (u.to_owned(), p.to_owned())),
    };

    let agent = EtcdClient::new(options(Some(("agent1", "agent1pw")), true)).unwrap();
    agent.put(b"/hapcert/x", b"over TLS", None).await.unwrap();
    assert_eq!(agent.get(b"/hapcert/x").await.unwrap().unwrap().value, b"over TLS");
    let lease = agent.lease_grant(Duration::from_secs(5)).await.unwrap();
    agent.lease_keep_alive(lease.id).await.unwrap();
    let mut watch = agent.watch_prefix(b"/hapcert/", 0).await.unwrap();
    agent.put(b"/hapcert/y", b"watched", None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv.key, b"/hapcert/y");

    // The role is limited to the prefix.
    let outside = agent.put(b"/secret", b"no", None).await.unwrap_err();
    assert!(outside.to_string().contains("permission denied"), "{outside}");
    // A wrong password, no user, or no client certificate: refused, and said so.
    let wrong = EtcdClient::new(options(Some(("agent1", "wrong")), true)).unwrap();
    let error = wrong.get(b"/hapcert/x").await.unwrap_err().to_string();
    assert!(
        error.contains("authentication failed") && error.contains("agent1"),
        "{error}"
    );
    let anonymous = EtcdClient::new(options(None, true)).unwrap();
    let error = anonymous.get(b"/hapcert/x").await.unwrap_err().to_string();
    // (etcd 3.4.23 says "permission denied" here; without a token over plain HTTP it says "user name is empty".)
    assert!(
        error.contains("permission denied") || error.contains("user name is empty"),
        "{error}"
    );
    let no_cert = EtcdClient::new(options(Some(("agent1", "agent1pw")), false)).unwrap();
    let error = no_cert
        .get(b"/hapcert/x")
        .await
        .expect_err("a client without a certificate got in");
    eprintln!("without a client certificate: {error}");
    assert!(
        matches!(error, EtcdError::Tls { .. }) && error.to_string().contains("BadCertificate"),
        "{error}"
    );
}
