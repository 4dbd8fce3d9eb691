//! The merge laws, as checks shared by the CRDT property tests of every
//! crate.
//!
//! Tests should feed these checks states made the way the system makes
//! them: by replaying random operations and merges on a few replicas, and
//! keeping some older snapshots (a stale replica). Arbitrary structs are not
//! enough, because some CRDTs (the K2V item) obey the laws only on reachable
//! states. A broken law panics with its name, so the checks work inside
//! `proptest!` and in plain tests alike.

use std::fmt::Debug;

use super::Crdt;

/// The most states [`converge`] accepts. It tries all n! arrival orders,
/// and 6! = 720 of them is still cheap for small states.
pub const MAX_CONVERGE_STATES: usize = 6;

/// Checks commutativity, associativity and idempotence on three states.
pub fn check<T: Crdt + Clone + PartialEq + Debug>(a: &T, b: &T, c: &T) {
    let mut ab = a.clone();
    ab.merge(b);
    let mut ba = b.clone();
    ba.merge(a);
    assert_eq!(ab, ba, "merge is not commutative");

    let mut ab_c = ab.clone();
    ab_c.merge(c);
    let mut bc = b.clone();
    bc.merge(c);
    let mut a_bc = a.clone();
    a_bc.merge(&bc);
    assert_eq!(ab_c, a_bc, "merge is not associative");

    let mut aa = a.clone();
    aa.merge(a);
    assert_eq!(&aa, a, "merge is not idempotent");
}

/// Checks that replicas holding `states` converge whatever order the
/// states arrive in, and returns the converged state.
///
/// Every order is tried two ways: each state merged in turn into one
/// replica, and a gossip tree where neighbours merge in pairs, then the
/// pairs merge, and so on. The result must also absorb each state, so
/// merging any of them again changes nothing. Takes 1 to
/// [`MAX_CONVERGE_STATES`] states.
pub fn converge<T: Crdt + Clone + PartialEq + Debug>(states: &[T]) -> T {
    assert!(
        !states.is_empty() && states.len() <= MAX_CONVERGE_STATES,
        "converge takes 1 to {MAX_CONVERGE_STATES} states, not {}",
        states.len()
    );
    let mut first: Option<T> = None;
    for order in permutations(states.len()) {
        let ordered: Vec<&T> = order.iter().map(|i| &states[*i]).collect();
        for merged in [fold(&ordered), gossip_tree(&ordered)] {
            match &first {
                None => first = Some(merged),
                Some(f) => assert_eq!(
                    &merged, f,
                    "replicas do not converge: merge order {order:?} differs"
                ),
            }
        }
    }
    let result = first.expect("invariant: at least one order was tried");
    for s in states {
        let mut again = result.clone();
        again.merge(s);
        assert_eq!(again, result, "the converged state does not absorb {s:?}");
    }
    result
}

/// The three laws of [`check`] on every ordered triple of `states`, then
/// [`converge`]. Returns the converged state.
pub fn check_all<T: Crdt + Clone + PartialEq + Debug>(states: &[T]) -> T {
    for a in states {
        for b in states {
            for c in states {
                check(a, b, c);
            }
        }
    }
    converge(states)
}

/// Merges every state, in order, into a copy of the first.
fn fold<T: Crdt + Clone>(states: &[&T]) -> T {
    let mut acc = states[0].clone();
    for s in &states[1..] {
        acc.merge(s);
    }
    acc
}

/// Merges neighbours in pairs, then the pairs, until one state is left.
fn gossip_tree<T: Crdt + Clone>(states: &[&T]) -> T {
    let mut level: Vec<T> = states.iter().map(|s| (*s).clone()).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.merge(&b);
            }
            next.push(a);
        }
        level = next;
    }
    level.remove(0)
}

/// All orderings of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = vec![];
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the first value it saw: commutative it is not.
    #[derive(Clone, Debug, PartialEq)]
    struct First(u8);
    impl Crdt for First {
        fn merge(&mut self, _other: &Self) {}
    }

    /// Adds: commutative and associative, but not idempotent.
    #[derive(Clone, Debug, PartialEq)]
    struct Sum(u64);
    impl Crdt for Sum {
        fn merge(&mut self, other: &Self) {
            self.0 += other.0;
        }
    }

    #[test]
    fn permutations_are_all_distinct_orders() {
        let mut p = permutations(4);
        assert_eq!(p.len(), 24);
        p.sort();
        p.dedup();
        assert_eq!(p.len(), 24);
        assert!(p.iter().all(|o| {
            let mut o = o.clone();
            o.sort();
            o == [0, 1, 2, 3]
        }));
    }

    #[test]
    fn max_converges() {
        assert_eq!(check_all(&[3u64, 1, 4, 1, 5]), 5);
    }

    #[test]
    #[should_panic(expected = "not commutative")]
    fn catches_non_commutative() {
        check(&First(1), &First(2), &First(3));
    }

    #[test]
    #[should_panic(expected = "do not converge")]
    fn converge_catches_order_dependence() {
        converge(&[First(1), First(2)]);
    }

    #[test]
    #[should_panic(expected = "not idempotent")]
    fn catches_non_idempotent() {
        check(&Sum(1), &Sum(2), &Sum(3));
    }

    #[test]
    #[should_panic(expected = "converge takes 1 to")]
    fn converge_refuses_too_many_states() {
        converge(&[0u64; MAX_CONVERGE_STATES + 1]);
    }
}
