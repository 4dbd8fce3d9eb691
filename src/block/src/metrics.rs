//! What `/metrics` counts about the block store (Garage's `block_*`
//! names where they exist). Sizes and queue lengths are read when scraped
//! through [`crate::BlockManager::stats`].

use garage_util::metrics::{global, Counter};

/// The counters of the block store, registered once per manager (nodes
/// simulated in one process share them).
pub(crate) struct BlockMetrics {
    pub(crate) bytes_read: Counter,
    pub(crate) bytes_written: Counter,
    pub(crate) corruptions: Counter,
    pub(crate) deleted: Counter,
    pub(crate) resync_checks: Counter,
    pub(crate) resync_errors: Counter,
    pub(crate) resync_received: Counter,
    pub(crate) resync_sent: Counter,
}

impl BlockMetrics {
    pub(crate) fn new() -> Self {
        let r = global();
        Self {
            bytes_read: r.counter(
                "block_bytes_read",
                "Number of bytes read from local block files",
                &[],
            ),
            bytes_written: r.counter(
                "block_bytes_written",
                "Number of bytes written to new local block files",
                &[],
            ),
            corruptions: r.counter(
                "block_corruption_counter",
                "Number of local block files found not to match their hash",
                &[],
            ),
            deleted: r.counter(
                "block_delete_counter",
                "Number of local block files deleted",
                &[],
            ),
            resync_checks: r.counter(
                "block_resync_counter",
                "Number of blocks checked by the resync worker",
                &[],
            ),
            resync_errors: r.counter(
                "block_resync_error_counter",
                "Number of block checks of the resync worker that failed",
                &[],
            ),
            resync_received: r.counter(
                "block_resync_recv_counter",
                "Number of blocks fetched from other nodes by the resync worker",
                &[],
            ),
            resync_sent: r.counter(
                "block_resync_send_counter",
                "Number of blocks handed to other nodes by the resync worker",
                &[],
            ),
        }
    }
}
