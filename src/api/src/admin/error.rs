//! Errors of the admin API and their JSON answer.
//!
//! The body has the shape of every other API error of the node
//! (`{code, message, region, path}`); the codes are Garage's admin API codes
//! (`AccessDenied`, `NoSuchAccessKey`, `BucketAlreadyExists`, ...) so that
//! scripts branching on them keep working.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use garage_model::helper::HelperError;
use garage_rpc::layout::LayoutError;

use crate::error::ApiError;
use crate::http::ResBody;

/// Why an admin request was refused or failed. A refused request changes
/// nothing: handlers check everything they can before the first write.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Missing or wrong token, or the admin API is disabled.
    #[error("Forbidden: {0}")]
    Forbidden(String),
    /// Malformed query or body, or a refused operation.
    #[error("Bad request: {0}")]
    BadRequest(String),
    /// No such path.
    #[error("Unknown API endpoint: {0}")]
    NoSuchEndpoint(String),
    /// A known path with another method.
    #[error("Method not allowed: {0}")]
    MethodNotAllowed(String),
    /// The access key does not exist.
    #[error("Access key not found: {0}")]
    NoSuchAccessKey(String),
    /// The bucket (or the alias) does not exist.
    #[error("Bucket not found: {0}")]
    NoSuchBucket(String),
    /// `key/import` of an id that exists or existed.
    #[error("Key already exists: {0}")]
    KeyAlreadyExists(String),
    /// The alias is taken.
    #[error("Bucket already exists: {0}")]
    BucketAlreadyExists(String),
    /// Deleting a bucket that still holds items.
    #[error("Bucket not empty: {0}")]
    BucketNotEmpty(String),
    /// Body limits, quorum failures, internal errors.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl AdminError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoSuchEndpoint(_) | Self::NoSuchAccessKey(_) | Self::NoSuchBucket(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::KeyAlreadyExists(_) | Self::BucketAlreadyExists(_) | Self::BucketNotEmpty(_) => {
                StatusCode::CONFLICT
            }
            Self::Api(e) => e.status(),
        }
    }

    /// The short code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "AccessDenied",
            Self::BadRequest(_) => "InvalidRequest",
            Self::NoSuchEndpoint(_) => "NoSuchEndpoint",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::NoSuchAccessKey(_) => "NoSuchAccessKey",
            Self::NoSuchBucket(_) => "NoSuchBucket",
            Self::KeyAlreadyExists(_) => "KeyAlreadyExists",
            Self::BucketAlreadyExists(_) => "BucketAlreadyExists",
            Self::BucketNotEmpty(_) => "BucketNotEmpty",
            Self::Api(e) => e.code(),
        }
    }

    /// The JSON answer `{code, message, region, path}`.
    pub fn response(&self, region: &str, path: &str) -> Response<ResBody> {
        let body = serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
            "region": region,
            "path": path,
        });
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = self.status();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

impl From<HelperError> for AdminError {
    fn from(e: HelperError) -> Self {
        match e {
            HelperError::NotFound { what: "key", name } => Self::NoSuchAccessKey(name),
            HelperError::NotFound { what, name } if what.contains("bucket") => {
                Self::NoSuchBucket(name)
            }
            HelperError::NotFound { what, name } => Self::NoSuchBucket(format!("{what} {name}")),
            e @ (HelperError::Ambiguous { .. } | HelperError::Refused(_)) => {
                Self::BadRequest(e.to_string())
            }
            HelperError::Table(t) => Self::Api(t.into()),
        }
    }
}

impl From<LayoutError> for AdminError {
    fn from(e: LayoutError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<garage_table::Error> for AdminError {
    fn from(e: garage_table::Error) -> Self {
        Self::Api(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let e: AdminError = HelperError::NotFound {
            what: "key",
            name: "GK1".into(),
        }
        .into();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::NOT_FOUND, "NoSuchAccessKey")
        );
        let e: AdminError = HelperError::NotFound {
            what: "global alias",
            name: "b".into(),
        }
        .into();
        assert_eq!(e.code(), "NoSuchBucket");
        let e: AdminError = HelperError::Refused("no".into()).into();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = AdminError::Api(ApiError::PayloadTooLarge { limit: 1 });
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let r = AdminError::Forbidden("x".into()).response("garage", "/v1/status");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}
