//! K2V through the published `k2v-client` crate.
