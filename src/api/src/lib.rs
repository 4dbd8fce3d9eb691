//! The HTTP APIs of a node.
//!
//! Layout:
//! - [`signature`]: AWS SigV4 verification (and a signer for tools/tests),
//!   written once and used by every API.
//! - [`http`]: body types, the JSON error response, body limits.
//! - `metrics`: per-endpoint request counters and durations of K2V and S3.
//! - [`error`]: [`error::ApiError`], each variant mapped to a status and code.
//! - `k2v` (feature `k2v`): the K2V router and handlers.
//! - [`s3`]: the S3 router, handlers, XML and streamed bodies.
//! - [`admin`]: the admin API v1 (health, status, layout, keys, buckets).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
#[cfg(feature = "k2v")]
pub mod k2v;
#[cfg_attr(not(feature = "k2v"), allow(dead_code))]
mod metrics;
pub mod s3;
pub mod server;
pub mod signature;
