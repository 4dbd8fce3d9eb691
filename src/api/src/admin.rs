//! The admin API: for now the unauthenticated health check.

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use garage_model::garage::Garage;

use crate::http::{empty, ResBody};

/// Handles one admin request.
pub async fn handle<B>(garage: Arc<Garage>, req: Request<B>) -> Response<ResBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") | (&Method::GET, "/check") => {
            let layout = garage.system.layout();
            let ready = layout.current().version > 0;
            let (status, text) = if ready {
                (StatusCode::OK, "Garage is fully operational\n")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "No cluster layout applied yet\n",
                )
            };
            let mut r = Response::new(ResBody::new(text.into()));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}
