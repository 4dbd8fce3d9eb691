use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use garage_util::crdt::laws;
use proptest::prelude::*;

use super::*;

fn ctx(entries: &[(K2VNodeId, u64)]) -> CausalContext {
    CausalContext {
        vector_clock: entries.iter().copied().collect(),
    }
}

/// Builds the raw token bytes of arbitrary words (no checksum computed).
fn raw_token(words: &[u64]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn golden_tokens() {
    // Computed independently from the format description (Python struct + base64).
    assert_eq!(ctx(&[]).serialize(), "AAAAAAAAAAA");
    assert_eq!(
        ctx(&[(1, 2), (3, 4)]).serialize(),
        "AAAAAAAAAAQAAAAAAAAAAQAAAAAAAAACAAAAAAAAAAMAAAAAAAAABA"
    );
    assert_eq!(
        ctx(&[(0xfedc_ba98_7654_3210, 1_700_000_000_000)]).serialize(),
        "_ty7E7mxWhD-3LqYdlQyEAAAAYvP5WgA"
    );
    assert_eq!(
        CausalContext::parse("_ty7E7mxWhD-3LqYdlQyEAAAAYvP5WgA"),
        Ok(ctx(&[(0xfedc_ba98_7654_3210, 1_700_000_000_000)]))
    );
    assert_eq!(CausalContext::parse("AAAAAAAAAAA"), Ok(ctx(&[])));
}

#[test]
fn rejects_malformed_tokens() {
    use InvalidCausalityToken::*;
    assert_eq!(CausalContext::parse(""), Err(Length { len: 0 }));
    assert_eq!(CausalContext::parse("AAAAAAAAAAA="), Err(Base64));
    assert_eq!(CausalContext::parse("AAAAAAAAAA+"), Err(Base64));
    assert_eq!(CausalContext::parse("AAAAAAAAAA/"), Err(Base64));
    assert_eq!(CausalContext::parse("AAAAAAAAAA!"), Err(Base64));
    assert_eq!(CausalContext::parse("AAAAAAAAAAé"), Err(Base64));
    assert_eq!(CausalContext::parse(" AAAAAAAAAAA"), Err(Base64));
    // Non-zero trailing bits in the last symbol are not canonical base64.
    assert_eq!(CausalContext::parse("AAAAAAAAAAB"), Err(Base64));
    assert_eq!(
        CausalContext::parse(&raw_token(&[0, 1])),
        Err(Length { len: 16 })
    );
    assert_eq!(CausalContext::parse(&raw_token(&[7, 1, 2])), Err(Checksum));
    assert_eq!(
        CausalContext::parse(&raw_token(&[3, 1, 2])),
        Ok(ctx(&[(1, 2)]))
    );
}

#[test]
fn duplicate_nodes_keep_the_larger_time() {
    let token = raw_token(&[5 ^ 3 ^ 5 ^ 9, 5, 3, 5, 9]);
    assert_eq!(CausalContext::parse(&token), Ok(ctx(&[(5, 9)])));
    let token = raw_token(&[5 ^ 9 ^ 5 ^ 3, 5, 9, 5, 3]);
    assert_eq!(CausalContext::parse(&token), Ok(ctx(&[(5, 9)])));
}

#[test]
fn newer_than_treats_missing_as_zero() {
    assert!(!ctx(&[]).is_newer_than(&ctx(&[])));
    assert!(!ctx(&[(1, 0)]).is_newer_than(&ctx(&[])));
    assert!(ctx(&[(1, 1)]).is_newer_than(&ctx(&[])));
    assert!(!ctx(&[]).is_newer_than(&ctx(&[(1, 1)])));
    assert!(!ctx(&[(1, 3)]).is_newer_than(&ctx(&[(1, 3), (2, 1)])));
    assert!(ctx(&[(1, 4)]).is_newer_than(&ctx(&[(1, 3), (2, 1)])));
    // Concurrent contexts are each newer than the other.
    assert!(ctx(&[(1, 4), (2, 0)]).is_newer_than(&ctx(&[(1, 3), (2, 1)])));
    assert!(ctx(&[(1, 3), (2, 1)]).is_newer_than(&ctx(&[(1, 4)])));
}

#[test]
fn merge_max_is_pointwise() {
    let mut a = ctx(&[(1, 4), (2, 1)]);
    a.merge_max(&ctx(&[(2, 7), (3, 2)]));
    assert_eq!(a, ctx(&[(1, 4), (2, 7), (3, 2)]));
}

fn arb_clock() -> impl Strategy<Value = BTreeMap<K2VNodeId, u64>> {
    prop::collection::btree_map(
        prop_oneof![0u64..8, any::<u64>()],
        prop_oneof![0u64..8, any::<u64>()],
        0..6,
    )
}

fn arb_ctx() -> impl Strategy<Value = CausalContext> {
    arb_clock().prop_map(|vector_clock| CausalContext { vector_clock })
}

const URL_SAFE_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn token_round_trips(c in arb_ctx()) {
        let token = c.serialize();
        prop_assert!(!token.contains('='));
        prop_assert_eq!(CausalContext::parse(&token), Ok(c));
    }

    #[test]
    fn changed_symbol_is_rejected(c in arb_ctx(), pos in any::<prop::sample::Index>(),
                                  sym in any::<prop::sample::Index>()) {
        let token = c.serialize();
        let mut bytes = token.into_bytes();
        let i = pos.index(bytes.len());
        let new = URL_SAFE_ALPHABET[sym.index(URL_SAFE_ALPHABET.len())];
        prop_assume!(bytes[i] != new);
        bytes[i] = new;
        let corrupted = String::from_utf8(bytes).expect("ascii");
        // One symbol changes bits of at most two adjacent bytes, at different
        // bit positions of their words: the XOR checksum always notices.
        prop_assert!(CausalContext::parse(&corrupted).is_err());
    }

    #[test]
    fn changed_byte_is_rejected(c in arb_ctx(), pos in any::<prop::sample::Index>(),
                                flip in 1u8..=255) {
        let mut bytes = URL_SAFE_NO_PAD.decode(c.serialize()).expect("own token");
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        let corrupted = URL_SAFE_NO_PAD.encode(bytes);
        prop_assert_eq!(CausalContext::parse(&corrupted), Err(InvalidCausalityToken::Checksum));
    }

    #[test]
    fn truncated_token_is_rejected(c in arb_ctx(), cut in 1usize..60) {
        let token = c.serialize();
        prop_assume!(cut <= token.len());
        let truncated = &token[..token.len() - cut];
        let parsed = CausalContext::parse(truncated);
        // Dropping fewer than 16 bytes cannot reach another valid length.
        // Longer cuts may, by chance, leave a valid token: only no panic then.
        if cut <= 20 {
            prop_assert!(parsed.is_err());
        }
    }

    #[test]
    fn checksum_must_match(c in arb_ctx(), delta in 1u64..) {
        let mut words = vec![c.vector_clock.iter().fold(0, |a, (n, t)| a ^ n ^ t) ^ delta];
        for (n, t) in &c.vector_clock {
            words.extend([*n, *t]);
        }
        prop_assert_eq!(
            CausalContext::parse(&raw_token(&words)),
            Err(InvalidCausalityToken::Checksum)
        );
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = CausalContext::parse(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..80)) {
        let _ = CausalContext::parse(&URL_SAFE_NO_PAD.encode(b));
    }

    #[test]
    // Any vector clock is a reachable context (a client may send the token
    // of any item it read), so arbitrary clocks are fine here.
    fn context_merge_laws(contexts in prop::collection::vec(arb_ctx(), 1..6)) {
        let all = laws::check_all(&contexts);
        // The merge covers every context merged into it.
        for c in &contexts {
            prop_assert!(!c.is_newer_than(&all));
        }
    }
}
