//! Request metrics of the HTTP APIs, with Garage's names: for K2V
//! `api_k2v_request_counter`, `api_k2v_request_duration` (label
//! `api_endpoint`) and `api_k2v_error_counter` (labels `api_endpoint`,
//! `status_code`); the same three with `api_s3_` for S3.
//!
//! The series of every endpoint are registered when the server is built,
//! and the error counter of each (endpoint, 4xx/5xx status) on its first
//! error, in a `OnceLock`; a request then only bumps atomics.

use std::sync::OnceLock;
use std::time::Duration;

use hyper::StatusCode;

use garage_util::metrics::{Counter, Histogram, Kind, Registry};

/// The names and help texts of one API's three series, and its endpoints.
pub(crate) struct ApiSeries {
    requests: (&'static str, &'static str),
    duration: (&'static str, &'static str),
    errors: (&'static str, &'static str),
    /// Every endpoint name the router gives (`Endpoint::name`).
    endpoints: &'static [&'static str],
}

/// The K2V API's series.
pub(crate) const K2V: ApiSeries = ApiSeries {
    requests: (
        "api_k2v_request_counter",
        "Number of API calls to the various K2V API endpoints",
    ),
    duration: (
        "api_k2v_request_duration",
        "Duration of API calls to the various K2V API endpoints",
    ),
    errors: (
        "api_k2v_error_counter",
        "Number of API calls to the various K2V API endpoints that resulted in errors",
    ),
    endpoints: &[
        "Options",
        "ReadItem",
        "PollItem",
        "InsertItem",
        "DeleteItem",
        "ReadIndex",
        "InsertBatch",
        "ReadBatch",
        "DeleteBatch",
        "PollRange",
    ],
};

/// The S3 API's series.
pub(crate) const S3: ApiSeries = ApiSeries {
    requests: (
        "api_s3_request_counter",
        "Number of API calls to the various S3 API endpoints",
    ),
    duration: (
        "api_s3_request_duration",
        "Duration of API calls to the various S3 API endpoints",
    ),
    errors: (
        "api_s3_error_counter",
        "Number of API calls to the various S3 API endpoints that resulted in errors",
    ),
    endpoints: &[
        "ListBuckets",
        "CreateBucket",
        "DeleteBucket",
        "HeadBucket",
        "GetBucketLocation",
        "GetBucketVersioning",
        "ListObjectsV2",
        "ListObjects",
        "ListMultipartUploads",
        "DeleteObjects",
        "GetObject",
        "HeadObject",
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "ListParts",
    ],
};

/// Error statuses with a cached counter: 400 to 599.
const FIRST_ERROR: u16 = 400;
const ERROR_STATUSES: usize = 200;

struct EndpointMetrics {
    name: &'static str,
    requests: Counter,
    duration: Histogram,
    errors: Box<[OnceLock<Counter>]>,
}

impl EndpointMetrics {
    fn new(r: &Registry, series: &ApiSeries, name: &'static str) -> Self {
        let l = [("api_endpoint", name)];
        Self {
            name,
            requests: r.counter(series.requests.0, series.requests.1, &l),
            duration: r.histogram(series.duration.0, series.duration.1, &l),
            errors: (0..ERROR_STATUSES).map(|_| OnceLock::new()).collect(),
        }
    }
}

fn error_counter(r: &Registry, series: &ApiSeries, endpoint: &str, status: StatusCode) -> Counter {
    r.counter(
        series.errors.0,
        series.errors.1,
        &[("api_endpoint", endpoint), ("status_code", status.as_str())],
    )
}

/// The request metrics of one API server.
pub(crate) struct ApiMetrics {
    registry: &'static Registry,
    series: &'static ApiSeries,
    endpoints: Vec<EndpointMetrics>,
}

impl ApiMetrics {
    /// Registers the series of every endpoint in `registry`.
    pub(crate) fn new(registry: &'static Registry, series: &'static ApiSeries) -> Self {
        registry.declare(series.errors.0, series.errors.1, Kind::Counter);
        Self {
            registry,
            series,
            endpoints: series
                .endpoints
                .iter()
                .map(|n| EndpointMetrics::new(registry, series, n))
                .collect(),
        }
    }

    /// Records one request to `endpoint` that took `elapsed` and failed
    /// with `error` (None: it succeeded).
    pub(crate) fn record(
        &self,
        endpoint: &'static str,
        elapsed: Duration,
        error: Option<StatusCode>,
    ) {
        let Some(m) = self.endpoints.iter().find(|m| m.name == endpoint) else {
            // A name missing from ENDPOINTS: found in the registry each time.
            let (r, series) = (self.registry, self.series);
            let l = [("api_endpoint", endpoint)];
            r.counter(series.requests.0, series.requests.1, &l).inc();
            r.histogram(series.duration.0, series.duration.1, &l)
                .observe(elapsed);
            if let Some(s) = error {
                error_counter(r, series, endpoint, s).inc();
            }
            return;
        };
        m.requests.inc();
        m.duration.observe(elapsed);
        if let Some(s) = error {
            let slot = usize::from(s.as_u16().wrapping_sub(FIRST_ERROR));
            match m.errors.get(slot) {
                Some(c) => c
                    .get_or_init(|| error_counter(self.registry, self.series, endpoint, s))
                    .inc(),
                None => error_counter(self.registry, self.series, endpoint, s).inc(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, line_start: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn requests_and_errors_are_counted_per_endpoint_and_status() {
        let registry: &'static Registry = Box::leak(Box::default());
        let render = || {
            let mut e = garage_util::metrics::TextEncoder::new();
            registry.render(&mut e);
            e.finish()
        };
        let m = ApiMetrics::new(registry, &K2V);
        let before = render();
        let reads = r#"api_k2v_request_counter{api_endpoint="ReadItem"}"#;
        let not_found = r#"api_k2v_error_counter{api_endpoint="ReadItem",status_code="404"}"#;
        let odd = r#"api_k2v_request_counter{api_endpoint="NotAnEndpoint"}"#;
        m.record("ReadItem", Duration::from_millis(1), None);
        m.record(
            "ReadItem",
            Duration::from_millis(2),
            Some(StatusCode::NOT_FOUND),
        );
        m.record(
            "ReadItem",
            Duration::from_millis(2),
            Some(StatusCode::NOT_FOUND),
        );
        m.record("NotAnEndpoint", Duration::from_millis(2), None);
        let after = render();
        assert_eq!(value(&before, reads), 0);
        assert_eq!(value(&after, reads), 3);
        assert_eq!(value(&after, not_found), 2);
        assert_eq!(value(&after, odd), 1);
        // A status outside 400..600 still counts, uncached.
        m.record("ReadItem", Duration::ZERO, Some(StatusCode::NOT_MODIFIED));
        let modified = r#"api_k2v_error_counter{api_endpoint="ReadItem",status_code="304"}"#;
        assert_eq!(value(&render(), modified), 1);
        // Every endpoint has its series from the start, errors their type.
        assert!(before.contains(r#"api_k2v_request_counter{api_endpoint="PollRange"}"#));
        assert!(before.contains("# TYPE api_k2v_error_counter counter\n"));
        // The S3 series live beside them under their own names.
        let s3 = ApiMetrics::new(registry, &S3);
        s3.record("GetObject", Duration::ZERO, Some(StatusCode::NOT_FOUND));
        let text = render();
        assert_eq!(
            value(
                &text,
                r#"api_s3_error_counter{api_endpoint="GetObject",status_code="404"}"#
            ),
            1
        );
        assert!(text.contains(r#"api_s3_request_counter{api_endpoint="CompleteMultipartUpload"}"#));
    }
}
