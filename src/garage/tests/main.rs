//! Integration tests: every test starts real `garage` processes on free
//! loopback ports in temporary directories (killed on drop). All modules are
//! compiled into this one test binary.

mod common;

mod admin_api;
mod anti_entropy;
mod blocks;
mod cli;
mod cluster;
mod faults;
mod hostile;
mod k2v_api;
mod k2v_client;
mod metrics;
mod replication;
mod restarts;
mod s3;
mod security;
mod transitions;
