//! Calling several nodes and waiting for a quorum of answers.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use garage_util::data::Uuid;

use crate::error::RpcError;
use crate::net::{Endpoint, RpcMessage};

/// Sends `msg` to every node of `nodes` and returns as soon as `quorum` of
/// them answered successfully; the remaining calls finish in the
/// background. Fails early once a quorum can no longer be reached.
pub async fn call_quorum<M: RpcMessage>(
    endpoint: &Endpoint<M>,
    nodes: &[Uuid],
    msg: M,
    quorum: usize,
    timeout: Duration,
) -> Result<Vec<(Uuid, M::Response)>, RpcError> {
    if nodes.len() < quorum {
        return Err(RpcError::Quorum {
            needed: quorum,
            succeeded: 0,
            errors: vec![format!("only {} nodes to ask", nodes.len())],
        });
    }
    let msg = Arc::new(msg);
    let mut calls: FuturesUnordered<_> = nodes
        .iter()
        .map(|n| {
            let (ep, msg, n) = (endpoint.clone(), msg.clone(), *n);
            async move { (n, ep.call(n, &msg, timeout).await) }
        })
        .collect();
    let mut ok = vec![];
    let mut errors = vec![];
    while let Some((n, r)) = calls.next().await {
        match r {
            Ok(v) => {
                ok.push((n, v));
                if ok.len() >= quorum {
                    break;
                }
            }
            Err(e) => {
                errors.push(e.to_string());
                if errors.len() + quorum > nodes.len() {
                    return Err(RpcError::Quorum {
                        needed: quorum,
                        succeeded: ok.len(),
                        errors,
                    });
                }
            }
        }
    }
    if ok.len() < quorum {
        return Err(RpcError::Quorum {
            needed: quorum,
            succeeded: ok.len(),
            errors,
        });
    }
    if !calls.is_empty() {
        tokio::spawn(async move { while calls.next().await.is_some() {} });
    }
    Ok(ok)
}

/// Asks nodes in the given order of preference: first `quorum` of them,
/// then one more for each failure, until `quorum` answers arrived.
pub async fn call_preferred<M: RpcMessage>(
    endpoint: &Endpoint<M>,
    nodes: &[Uuid],
    msg: M,
    quorum: usize,
    timeout: Duration,
) -> Result<Vec<(Uuid, M::Response)>, RpcError> {
    if nodes.len() < quorum || quorum == 0 {
        return Err(RpcError::Quorum {
            needed: quorum,
            succeeded: 0,
            errors: vec![format!("only {} nodes to ask", nodes.len())],
        });
    }
    let msg = Arc::new(msg);
    let call = |n: Uuid| {
        let (ep, msg) = (endpoint.clone(), msg.clone());
        async move { (n, ep.call(n, &msg, timeout).await) }
    };
    let mut next = quorum;
    let mut calls: FuturesUnordered<_> = nodes[..quorum].iter().map(|n| call(*n)).collect();
    let mut ok = vec![];
    let mut errors = vec![];
    while let Some((n, r)) = calls.next().await {
        match r {
            Ok(v) => {
                ok.push((n, v));
                if ok.len() >= quorum {
                    return Ok(ok);
                }
            }
            Err(e) => {
                errors.push(e.to_string());
                if next < nodes.len() {
                    calls.push(call(nodes[next]));
                    next += 1;
                }
            }
        }
    }
    Err(RpcError::Quorum {
        needed: quorum,
        succeeded: ok.len(),
        errors,
    })
}

/// Sends `msg` ONCE to every distinct node of `sets` (a node in several
/// sets gets one call) and returns when every set has `quorum` successful
/// answers from its members; the remaining calls finish in the background.
/// Fails as soon as one set can no longer reach its quorum.
pub async fn call_write_sets<M: RpcMessage>(
    endpoint: &Endpoint<M>,
    sets: &[Vec<Uuid>],
    msg: M,
    quorum: usize,
    timeout: Duration,
) -> Result<Vec<(Uuid, M::Response)>, RpcError> {
    call_write_sets_after(endpoint, sets, msg, quorum, timeout, None).await
}

/// Like [`call_write_sets`], for a write that `done` (this node) already
/// applied: `done` is not called and counts as one success in every set
/// that holds it. When that alone meets every quorum, the other nodes are
/// sent the message in the background and this returns at once.
pub async fn call_write_sets_after<M: RpcMessage>(
    endpoint: &Endpoint<M>,
    sets: &[Vec<Uuid>],
    msg: M,
    quorum: usize,
    timeout: Duration,
    done: Option<Uuid>,
) -> Result<Vec<(Uuid, M::Response)>, RpcError> {
    if let Some(small) = sets.iter().find(|s| s.len() < quorum) {
        return Err(RpcError::Quorum {
            needed: quorum,
            succeeded: 0,
            errors: vec![format!("only {} nodes in a write set", small.len())],
        });
    }
    let mut nodes: Vec<Uuid> = sets.iter().flatten().copied().collect();
    nodes.sort();
    nodes.dedup();
    nodes.retain(|n| Some(*n) != done);
    let msg = Arc::new(msg);
    let mut calls: FuturesUnordered<_> = nodes
        .iter()
        .map(|n| {
            let (ep, msg, n) = (endpoint.clone(), msg.clone(), *n);
            async move { (n, ep.call(n, &msg, timeout).await) }
        })
        .collect();
    let mut ok: Vec<(Uuid, M::Response)> = vec![];
    let mut acked: Vec<Uuid> = done.into_iter().collect();
    let mut failed: Vec<Uuid> = vec![];
    let mut errors = vec![];
    let count = |s: &Vec<Uuid>, list: &[Uuid]| s.iter().filter(|n| list.contains(n)).count();
    let reached = |acked: &[Uuid]| sets.iter().all(|s| count(s, acked) >= quorum);
    while !reached(&acked) {
        let Some((n, r)) = calls.next().await else {
            break;
        };
        match r {
            Ok(v) => {
                acked.push(n);
                ok.push((n, v));
            }
            Err(e) => {
                failed.push(n);
                errors.push(e.to_string());
                if sets.iter().any(|s| count(s, &failed) + quorum > s.len()) {
                    return Err(RpcError::Quorum {
                        needed: quorum,
                        succeeded: ok.len(),
                        errors,
                    });
                }
            }
        }
    }
    if !reached(&acked) {
        return Err(RpcError::Quorum {
            needed: quorum,
            succeeded: ok.len(),
            errors,
        });
    }
    if !calls.is_empty() {
        tokio::spawn(async move {
            while let Some((n, r)) = calls.next().await {
                if let Err(e) = r {
                    tracing::debug!(node = ?n, error = %e, "background write failed");
                }
            }
        });
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_transport::MemoryNetwork;
    use crate::net::Handler;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Ping(u32);
    impl RpcMessage for Ping {
        type Response = u32;
    }
    struct Echo;
    #[async_trait::async_trait]
    impl Handler<Ping> for Echo {
        async fn handle(&self, msg: Ping, _from: Uuid) -> Result<u32, String> {
            Ok(msg.0 + 1)
        }
    }

    #[tokio::test]
    async fn quorum_with_a_node_down() {
        let net = MemoryNetwork::new();
        let ids: Vec<Uuid> = (1..=3u8).map(|i| Uuid::from_bytes([i; 32])).collect();
        let ts: Vec<_> = ids.iter().map(|i| net.add_node(*i)).collect();
        for t in &ts {
            Endpoint::<Ping>::new(t.clone(), "ping").set_handler(Arc::new(Echo));
        }
        let ep = Endpoint::<Ping>::new(ts[0].clone(), "ping");
        let d = Duration::from_secs(1);
        net.set_down(ids[2], true);
        let r = call_quorum(&ep, &ids, Ping(1), 2, d).await.expect("quorum");
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|(_, v)| *v == 2));
        let e = call_quorum(&ep, &ids, Ping(1), 3, d).await;
        assert!(matches!(e, Err(RpcError::Quorum { needed: 3, .. })));
        let r = call_preferred(&ep, &[ids[2], ids[1]], Ping(5), 1, d)
            .await
            .expect("fallback");
        assert_eq!(r[0], (ids[1], 6));
    }

    #[tokio::test]
    async fn write_sets_one_call_per_node() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        #[async_trait::async_trait]
        impl Handler<Ping> for Count {
            async fn handle(&self, msg: Ping, _from: Uuid) -> Result<u32, String> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(msg.0)
            }
        }
        let net = MemoryNetwork::new();
        let ids: Vec<Uuid> = (1..=4u8).map(|i| Uuid::from_bytes([i; 32])).collect();
        let ts: Vec<_> = ids.iter().map(|i| net.add_node(*i)).collect();
        let counters: Vec<Arc<Count>> = ts
            .iter()
            .map(|t| {
                let c = Arc::new(Count(AtomicUsize::new(0)));
                Endpoint::<Ping>::new(t.clone(), "ping").set_handler(c.clone());
                c
            })
            .collect();
        let ep = Endpoint::<Ping>::new(ts[0].clone(), "ping");
        let d = Duration::from_secs(1);
        let sets = vec![ids[0..3].to_vec(), ids[1..4].to_vec()];
        call_write_sets(&ep, &sets, Ping(1), 3, d)
            .await
            .expect("all up");
        for c in &counters {
            assert_eq!(c.0.load(Ordering::SeqCst), 1, "one call per distinct node");
        }
        // Node 4 down: the second set has 2 of 3, enough for quorum 2 but not 3.
        net.set_down(ids[3], true);
        call_write_sets(&ep, &sets, Ping(1), 2, d)
            .await
            .expect("quorum 2 in both sets");
        let e = call_write_sets(&ep, &sets, Ping(1), 3, d).await;
        assert!(matches!(e, Err(RpcError::Quorum { .. })));
    }
}
