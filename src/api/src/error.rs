//! API errors and their HTTP mapping.

use hyper::StatusCode;

use crate::signature::SigError;

/// Everything an API handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Signature problems (403 or 400 per kind).
    #[error(transparent)]
    Signature(#[from] SigError),
    /// No or unusable credentials, or missing permission.
    #[error("Forbidden: {0}")]
    Forbidden(String),
    /// The bucket does not exist.
    #[error("Bucket not found: {0}")]
    NoSuchBucket(String),
    /// The item does not exist.
    #[error("Key not found")]
    NoSuchKey,
    /// Malformed request.
    #[error("Bad request: {0}")]
    BadRequest(String),
    /// A causality token failed to parse.
    #[error("Invalid causality token")]
    InvalidCausalityToken,
    /// The body is larger than allowed.
    #[error("Request body too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body stalled longer than the server allows.
    #[error("Request timeout: the body stalled for {secs} s")]
    RequestTimeout {
        /// The stall allowed, in seconds.
        secs: u64,
    },
    /// The Accept header allows no type we produce.
    #[error("Not acceptable: {0}")]
    NotAcceptable(String),
    /// Unknown endpoint or method.
    #[error("Method not allowed: {0}")]
    MethodNotAllowed(String),
    /// A quorum could not be reached: the lower error, kept as the source.
    #[error("Service unavailable: {0}")]
    Unavailable(#[source] LowerError),
    /// A lower layer (storage, replication, encoding) failed: its error,
    /// kept as the source.
    #[error("Internal error: {0}")]
    Lower(#[source] LowerError),
    /// Anything else.
    #[error("Internal error: {0}")]
    Internal(String),
}

/// The error of a lower layer carried by [`ApiError`].
pub type LowerError = Box<dyn std::error::Error + Send + Sync>;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Signature(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NoSuchBucket(_) | Self::NoSuchKey => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::InvalidCausalityToken => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Lower(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Signature(e) => e.code(),
            Self::Forbidden(_) => "AccessDenied",
            Self::NoSuchBucket(_) => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::BadRequest(_) => "InvalidRequest",
            Self::InvalidCausalityToken => "CausalityToken",
            Self::PayloadTooLarge { .. } => "EntityTooLarge",
            Self::RequestTimeout { .. } => "RequestTimeout",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Lower(_) | Self::Internal(_) => "InternalError",
        }
    }
}

impl From<garage_rpc::RpcError> for ApiError {
    fn from(e: garage_rpc::RpcError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(Box::new(e))
        } else {
            Self::Lower(Box::new(e))
        }
    }
}

impl From<garage_table::Error> for ApiError {
    fn from(e: garage_table::Error) -> Self {
        match e {
            garage_table::Error::Rpc(r) => r.into(),
            other => Self::Lower(Box::new(other)),
        }
    }
}

impl From<garage_model::helper::HelperError> for ApiError {
    fn from(e: garage_model::helper::HelperError) -> Self {
        match e {
            garage_model::helper::HelperError::Table(t) => t.into(),
            other => Self::Lower(Box::new(other)),
        }
    }
}

#[cfg(feature = "k2v")]
impl From<garage_model::k2v::rpc::K2VError> for ApiError {
    fn from(e: garage_model::k2v::rpc::K2VError) -> Self {
        use garage_model::k2v::rpc::K2VError;
        match e {
            K2VError::InvalidSeenMarker => Self::BadRequest("invalid seen marker".into()),
            K2VError::Table(t) => t.into(),
            K2VError::Rpc(r) => r.into(),
            K2VError::Db(d) => Self::Lower(Box::new(d)),
            e @ K2VError::Commit { .. } => Self::Lower(Box::new(e)),
            e @ K2VError::NotApplied(_) => Self::Unavailable(Box::new(e)),
        }
    }
}
