//! The tables of the store, built on the table layer.
//!
//! Layout:
//! - [`permission`]: what a key may do on a bucket.
//! - [`key_table`], [`bucket_table`], [`bucket_alias_table`]: access keys,
//!   buckets and global bucket names (full copy on every node).
//! - [`helper`]: the operations of the `garage key` / `garage bucket` verbs.
//! - [`k2v`] (feature `k2v`): items with DVVS causality, index counters,
//!   subscriptions, and the K2V RPC.
//! - [`s3`]: objects and their versions (data in blocks).
//! - [`garage`]: the [`garage::Garage`] struct that owns all of them.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bucket_alias_table;
pub mod bucket_table;
pub mod garage;
pub mod helper;
#[cfg(feature = "k2v")]
pub mod k2v;
pub mod key_table;
pub mod permission;
pub mod s3;
