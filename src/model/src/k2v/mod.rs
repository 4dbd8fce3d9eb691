//! K2V: items with DVVS causality, per-partition index counters,
//! subscriptions for polls, and the RPC that forwards inserts to a replica.

pub mod causality;
pub mod counter_table;
pub mod item;
pub mod item_table;
pub mod range;
pub mod rpc;
pub mod seen;
pub mod sub;
