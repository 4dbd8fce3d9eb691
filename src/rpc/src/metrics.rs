//! The metrics of outgoing RPC calls, one set per endpoint path (Garage's
//! names: `rpc_request_counter`, `rpc_duration`, `rpc_timeout_counter`,
//! `rpc_netapp_error_counter`, `rpc_garage_error_counter`, label
//! `rpc_endpoint`). Registered once when an [`crate::Endpoint`] is built;
//! a call only bumps atomics.

use std::time::Duration;

use garage_util::metrics::{global, Counter, Histogram};

use crate::error::RpcError;

/// The handles of one endpoint path.
pub(crate) struct RpcMetrics {
    requests: Counter,
    duration: Histogram,
    timeouts: Counter,
    transport_errors: Counter,
    remote_errors: Counter,
}

impl RpcMetrics {
    /// Registers (or finds) the series of `path`.
    pub(crate) fn new(path: &str) -> Self {
        let r = global();
        let l = [("rpc_endpoint", path)];
        Self {
            requests: r.counter("rpc_request_counter", "Number of RPC requests emitted", &l),
            duration: r.histogram("rpc_duration", "Duration of RPCs", &l),
            timeouts: r.counter("rpc_timeout_counter", "Number of RPC timeouts", &l),
            transport_errors: r.counter(
                "rpc_netapp_error_counter",
                "Number of communication errors (peer not connected, network, encoding)",
                &l,
            ),
            remote_errors: r.counter(
                "rpc_garage_error_counter",
                "Number of RPC errors (errors happening when handling the RPC)",
                &l,
            ),
        }
    }

    /// Counts a call that is about to be sent.
    pub(crate) fn started(&self) {
        self.requests.inc();
    }

    /// Records how a call ended.
    pub(crate) fn finished(&self, elapsed: Duration, error: Option<&RpcError>) {
        self.duration.observe(elapsed);
        match error {
            None => {}
            Some(RpcError::Timeout { .. }) => self.timeouts.inc(),
            Some(RpcError::Remote { .. }) => self.remote_errors.inc(),
            Some(
                RpcError::NotConnected { .. }
                | RpcError::Network { .. }
                | RpcError::Encoding { .. }
                | RpcError::Quorum { .. }
                | RpcError::NoNodes { .. },
            ) => self.transport_errors.inc(),
        }
    }
}
