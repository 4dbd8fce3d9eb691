//! K2V through the published `k2v-client` crate: a real client (aws-sigv4
//! signing with the path double-encoded, hyper 0.14) must work unchanged.

use std::time::{Duration, Instant};

use k2v_client::{
    BatchDeleteOp, BatchInsertOp, BatchReadOp, CausalValue, Error, Filter, K2vClient,
    K2vClientConfig, K2vValue, PollRangeFilter,
};

use crate::common::{single_node, Creds, NodeOpts};

fn client(endpoint: String, creds: &Creds) -> K2vClient {
    K2vClient::new(K2vClientConfig {
        endpoint,
        region: "garage".into(),
        aws_access_key_id: creds.key_id.clone(),
        aws_secret_access_key: creds.secret.clone(),
        bucket: creds.bucket.clone(),
        user_agent: None,
    })
    .expect("k2v client")
}

fn v(s: &str) -> K2vValue {
    K2vValue::Value(s.as_bytes().to_vec())
}

async fn read(c: &K2vClient, pk: &str, sk: &str) -> CausalValue {
    c.read_item(pk, sk)
        .await
        .unwrap_or_else(|e| panic!("read {pk}/{sk}: {e}"))
}

#[tokio::test]
async fn client_items_and_polls() {
    let (node, k2v) = single_node(NodeOpts::default());
    let c = client(node.endpoint(), &k2v.creds);
    let (pk, sk) = ("my partition ünï", "sort key 日本 /%+&=?");

    // Missing item.
    assert!(matches!(c.read_item(pk, sk).await, Err(Error::NotFound)));

    // Insert, read (one value: binary answer).
    c.insert_item(pk, sk, b"first".to_vec(), None)
        .await
        .expect("insert");
    let r1 = read(&c, pk, sk).await;
    assert_eq!(r1.value, vec![v("first")]);

    // Concurrent value: JSON answer with both, in insertion order.
    c.insert_item(pk, sk, b"second".to_vec(), None)
        .await
        .expect("insert");
    let r2 = read(&c, pk, sk).await;
    assert_eq!(r2.value, vec![v("first"), v("second")]);
    assert_ne!(r2.causality, r1.causality);

    // Insert with the token supersedes both.
    c.insert_item(pk, sk, b"third".to_vec(), Some(r2.causality.clone()))
        .await
        .expect("insert");
    let r3 = read(&c, pk, sk).await;
    assert_eq!(r3.value, vec![v("third")]);

    // PollItem: immediate when the item is newer than the token.
    let t0 = Instant::now();
    let p = c
        .poll_item(pk, sk, r2.causality.clone(), Some(Duration::from_secs(10)))
        .await
        .expect("poll")
        .expect("not a timeout");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(p.value, vec![v("third")]);
    assert_eq!(p.causality, r3.causality);

    // PollItem: after a concurrent insert from another client.
    let (endpoint, creds) = (node.endpoint(), k2v.creds.clone());
    let tok = r3.causality.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = client(endpoint, &creds);
        w.insert_item(pk, sk, b"fourth".to_vec(), Some(tok))
            .await
            .expect("insert");
    });
    let t0 = Instant::now();
    let p = c
        .poll_item(pk, sk, r3.causality.clone(), Some(Duration::from_secs(20)))
        .await
        .expect("poll")
        .expect("not a timeout");
    writer.await.expect("writer");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    assert_eq!(p.value, vec![v("fourth")]);

    // PollItem timeout: None.
    let t0 = Instant::now();
    let none = c
        .poll_item(pk, sk, p.causality.clone(), Some(Duration::from_secs(1)))
        .await
        .expect("poll");
    assert!(none.is_none());
    assert!(t0.elapsed() >= Duration::from_millis(900));

    // Delete with the token: a tombstone (204 in binary form).
    c.delete_item(pk, sk, p.causality.clone())
        .await
        .expect("delete");
    let d = read(&c, pk, sk).await;
    assert_eq!(d.value, vec![K2vValue::Tombstone]);
    // A delete with an older token leaves the unseen value.
    c.insert_item(pk, "other", b"x".to_vec(), None)
        .await
        .expect("insert");
    let old = read(&c, pk, "other").await;
    c.insert_item(pk, "other", b"y".to_vec(), Some(old.causality.clone()))
        .await
        .expect("insert");
    c.delete_item(pk, "other", old.causality.clone())
        .await
        .expect("delete");
    assert_eq!(
        read(&c, pk, "other").await.value,
        vec![v("y"), K2vValue::Tombstone]
    );

    // Errors come back as Remote with the status and code.
    let bad = k2v_client::CausalityToken::from("not a token!".to_string());
    match c.insert_item(pk, sk, b"z".to_vec(), Some(bad)).await {
        Err(Error::Remote(status, code, _, _)) => {
            assert_eq!(status.as_u16(), 400);
            assert_eq!(code, "CausalityToken");
        }
        other => panic!("expected a 400: {other:?}"),
    }
    let mut wrong = k2v.creds.clone();
    wrong.secret = "0".repeat(64);
    match client(node.endpoint(), &wrong).read_item(pk, sk).await {
        Err(Error::Remote(status, code, _, _)) => {
            assert_eq!(status.as_u16(), 403);
            assert_eq!(code, "AccessDenied");
        }
        other => panic!("expected a 403: {other:?}"),
    }
}

#[tokio::test]
async fn client_batches_index_and_poll_range() {
    let (node, k2v) = single_node(NodeOpts::default());
    let c = client(node.endpoint(), &k2v.creds);
    let pk = "batch pk é";
    let pk2 = "second/pk ☃";

    // InsertBatch.
    let ops = [
        BatchInsertOp {
            partition_key: pk,
            sort_key: "a 1",
            causality: None,
            value: v("A"),
        },
        BatchInsertOp {
            partition_key: pk,
            sort_key: "b ü",
            causality: None,
            value: v("B"),
        },
        BatchInsertOp {
            partition_key: pk,
            sort_key: "c",
            causality: None,
            value: v("C1"),
        },
        BatchInsertOp {
            partition_key: pk,
            sort_key: "c",
            causality: None,
            value: v("C2"),
        },
        BatchInsertOp {
            partition_key: pk,
            sort_key: "dead",
            causality: None,
            value: K2vValue::Tombstone,
        },
        BatchInsertOp {
            partition_key: pk2,
            sort_key: "x",
            causality: None,
            value: v("X"),
        },
    ];
    c.insert_batch(&ops).await.expect("insert batch");
    assert_eq!(read(&c, pk, "b ü").await.value, vec![v("B")]);

    // ReadBatch: full range, limit with pagination, single item, conflicts, tombstones.
    let res = c
        .read_batch(&[
            BatchReadOp {
                partition_key: pk,
                ..Default::default()
            },
            BatchReadOp {
                partition_key: pk,
                filter: Filter {
                    limit: Some(2),
                    ..Default::default()
                },
                ..Default::default()
            },
            BatchReadOp {
                partition_key: pk,
                filter: Filter {
                    start: Some("b ü"),
                    ..Default::default()
                },
                single_item: true,
                ..Default::default()
            },
            BatchReadOp {
                partition_key: pk,
                conflicts_only: true,
                ..Default::default()
            },
            BatchReadOp {
                partition_key: pk,
                tombstones: true,
                ..Default::default()
            },
            BatchReadOp {
                partition_key: pk,
                filter: Filter {
                    reverse: true,
                    limit: Some(1),
                    ..Default::default()
                },
                ..Default::default()
            },
            BatchReadOp {
                partition_key: pk2,
                filter: Filter {
                    prefix: Some("x"),
                    ..Default::default()
                },
                ..Default::default()
            },
        ])
        .await
        .expect("read batch");
    assert_eq!(res.len(), 7);
    let keys = |i: usize| res[i].items.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(0), ["a 1", "b ü", "c"]);
    assert_eq!(res[0].next_start, None);
    assert_eq!(res[0].items["c"].value, vec![v("C1"), v("C2")]);
    assert_eq!(keys(1), ["a 1", "b ü"]);
    assert_eq!(res[1].next_start.as_deref(), Some("c"));
    assert_eq!(keys(2), ["b ü"]);
    assert_eq!(keys(3), ["c"]);
    assert_eq!(keys(4), ["a 1", "b ü", "c", "dead"]);
    assert_eq!(res[4].items["dead"].value, vec![K2vValue::Tombstone]);
    assert_eq!(keys(5), ["c"]);
    assert_eq!(res[5].next_start.as_deref(), Some("b ü"));
    assert_eq!(keys(6), ["x"]);
    // The ct of a batch read is the item's token.
    assert_eq!(
        res[0].items["c"].causality,
        read(&c, pk, "c").await.causality
    );

    // ReadIndex (counters are eventually consistent).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let idx = c.read_index(Filter::default()).await.expect("read index");
        let ok = idx.items.len() == 2
            && idx
                .items
                .get(pk)
                .is_some_and(|i| (i.entries, i.conflicts, i.values, i.bytes) == (3, 1, 4, 6))
            && idx
                .items
                .get(pk2)
                .is_some_and(|i| (i.entries, i.values, i.bytes) == (1, 1, 1));
        if ok {
            assert_eq!(idx.next_start, None);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "index did not converge: {:?}",
            idx.items
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idx = c
        .read_index(Filter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("read index");
    assert_eq!(idx.items.keys().collect::<Vec<_>>(), [pk]);
    assert_eq!(idx.next_start.as_deref(), Some(pk2));
    let idx = c
        .read_index(Filter {
            prefix: Some("second/"),
            ..Default::default()
        })
        .await
        .expect("read index");
    assert_eq!(idx.items.keys().collect::<Vec<_>>(), [pk2]);

    // PollRange: first without a marker, then with it after a new insert.
    let (items, marker) = c
        .poll_range(pk, None, None, Some(Duration::from_secs(5)))
        .await
        .expect("poll range")
        .expect("not a timeout");
    assert_eq!(
        items.keys().collect::<Vec<_>>(),
        ["a 1", "b ü", "c", "dead"]
    );
    let (endpoint, creds) = (node.endpoint(), k2v.creds.clone());
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client(endpoint, &creds)
            .insert_item(pk, "new ✓", b"N".to_vec(), None)
            .await
            .expect("insert");
    });
    let (items, marker2) = c
        .poll_range(pk, None, Some(&marker), Some(Duration::from_secs(20)))
        .await
        .expect("poll range")
        .expect("not a timeout");
    writer.await.expect("writer");
    assert_eq!(items.keys().collect::<Vec<_>>(), ["new ✓"]);
    assert_eq!(items["new ✓"].value, vec![v("N")]);
    assert_ne!(marker2, marker);
    let none = c
        .poll_range(pk, None, Some(&marker2), Some(Duration::from_secs(1)))
        .await
        .expect("poll range");
    assert!(none.is_none());
    let filter = PollRangeFilter {
        prefix: Some("b"),
        ..Default::default()
    };
    let (items, _) = c
        .poll_range(pk, Some(filter), None, Some(Duration::from_secs(5)))
        .await
        .expect("poll range")
        .expect("not a timeout");
    assert_eq!(items.keys().collect::<Vec<_>>(), ["b ü"]);

    // DeleteBatch: a range and a single item.
    let counts = c
        .delete_batch(&[
            BatchDeleteOp {
                start: Some("a"),
                end: Some("c"),
                ..BatchDeleteOp::new(pk)
            },
            BatchDeleteOp {
                start: Some("x"),
                single_item: true,
                ..BatchDeleteOp::new(pk2)
            },
            BatchDeleteOp {
                prefix: Some("zzz"),
                ..BatchDeleteOp::new(pk)
            },
        ])
        .await
        .expect("delete batch");
    assert_eq!(counts, [2, 1, 0]);
    assert_eq!(read(&c, pk, "a 1").await.value, vec![K2vValue::Tombstone]);
    assert_eq!(read(&c, pk2, "x").await.value, vec![K2vValue::Tombstone]);
    let res = c
        .read_batch(&[BatchReadOp {
            partition_key: pk,
            ..Default::default()
        }])
        .await
        .expect("read batch");
    assert_eq!(res[0].items.keys().collect::<Vec<_>>(), ["c", "new ✓"]);
}
