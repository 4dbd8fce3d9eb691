//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), wire-compatible with Garage's K2V API and
//! with AWS SDK clients.
//!
//! Server side, a request is checked in three steps:
//! 1. [`parse_request`] parses the `Authorization` header or the presigned query parameters,
//!    checks that the credential scope names this server's region and service and the
//!    request's date, checks the dates (15 minutes of clock skew for header signatures, the
//!    `X-Amz-Expires` window for presigned URLs) and builds the string to sign. A request
//!    without any signature is `Ok(None)`: the caller answers 403.
//! 2. the caller looks up the secret of [`ParsedAuth::key_id`] and calls [`verify`], which
//!    compares the HMAC in constant time, using a [`SigningKeyCache`];
//! 3. once the body is read, [`check_body`] compares it with [`ParsedAuth::payload_hash`]
//!    (`InvalidDigest` on a mismatch).
//!
//! Client side, [`sign_request`] and [`presign_query`] produce signatures with the same
//! canonicalisation code. For the `k2v` service the canonical URI is the wire path encoded a
//! second time (`%20` becomes `%2520`), see [`UriEncoding`].
//!
//! Streaming uploads (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, S3 only) sign every aws-chunked
//! chunk; [`ChunkSigner`] computes and checks those chained signatures.
//!
//! Each [`SigError`] carries the HTTP status and error code the API must answer with.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod canonical;
mod date;
mod error;
mod payload;
mod signer;
mod signing_key_cache;
mod streaming;
mod verifier;

#[cfg(test)]
mod tests;

pub use canonical::{
    canonical_query, canonical_request, canonical_uri, scope, string_to_sign, uri_encode,
    UriEncoding, ALGORITHM, UNSIGNED_PAYLOAD,
};
pub use error::{SigError, SigErrorKind};
pub use payload::{check_body, PayloadHash, STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER};
pub use signer::{presign_query, sign_request, SigningParams};
pub use signing_key_cache::{signing_key, SigningKeyCache};
pub use streaming::ChunkSigner;
pub use verifier::{
    parse_request, verify, ParsedAuth, MAX_CLOCK_SKEW_SECS, MAX_PRESIGNED_EXPIRES_SECS,
};
