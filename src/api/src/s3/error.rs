//! S3 errors: each variant has its S3 code and HTTP status, and renders as
//! S3's XML error body.

use hyper::StatusCode;

use crate::error::ApiError;
use crate::signature::{SigError, SigErrorKind};

/// Everything an S3 handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// Missing credentials or permission.
    #[error("Access denied: {0}")]
    AccessDenied(String),
    /// The signature does not match.
    #[error("{0}")]
    SignatureDoesNotMatch(String),
    /// Another signature problem (code and status from the verifier).
    #[error(transparent)]
    Signature(SigError),
    /// The bucket does not exist.
    #[error("The specified bucket does not exist: {0}")]
    NoSuchBucket(String),
    /// The object does not exist.
    #[error("The specified key does not exist")]
    NoSuchKey,
    /// The multipart upload does not exist.
    #[error("The specified multipart upload does not exist")]
    NoSuchUpload,
    /// The bucket still holds objects.
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// The bucket name is taken.
    #[error("The requested bucket name is not available")]
    BucketAlreadyExists,
    /// The key already owns that bucket.
    #[error("Your previous request to create the named bucket succeeded and you already own it")]
    BucketAlreadyOwnedByYou,
    /// The range cannot be satisfied.
    #[error("The requested range is not satisfiable")]
    InvalidRange {
        /// Object size (for Content-Range).
        size: u64,
    },
    /// A non-last part is below 5 MiB.
    #[error("Your proposed upload is smaller than the minimum allowed object size")]
    EntityTooSmall,
    /// A part in the list was not uploaded, or its ETag differs.
    #[error("One or more of the specified parts could not be found: {0}")]
    InvalidPart(String),
    /// The part list is not in ascending order.
    #[error("The list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A request XML body that does not parse.
    #[error("The XML you provided was not well-formed: {0}")]
    MalformedXml(String),
    /// Bad bucket name.
    #[error("The specified bucket is not valid: {0}")]
    InvalidBucketName(String),
    /// A bad argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is malformed in another way.
    #[error("{0}")]
    InvalidRequest(String),
    /// Content-MD5 mismatch.
    #[error("The Content-MD5 you specified did not match what we received")]
    BadDigest,
    /// A precondition (If-Match, If-Unmodified-Since) failed.
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// Not modified (If-None-Match, If-Modified-Since): a 304 without body.
    #[error("Not modified")]
    NotModified,
    /// The body is larger than allowed.
    #[error("Your proposed upload exceeds the maximum allowed size")]
    EntityTooLarge,
    /// An operation this server does not do.
    #[error("Not implemented: {0}")]
    NotImplemented(String),
    /// The method is not allowed on this resource.
    #[error("The specified method is not allowed against this resource")]
    MethodNotAllowed,
    /// A quorum could not be reached.
    #[error("Service unavailable: {0}")]
    Unavailable(String),
    /// A lower layer failed.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl S3Error {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AccessDenied(_) | Self::SignatureDoesNotMatch(_) => StatusCode::FORBIDDEN,
            Self::Signature(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
            Self::NoSuchBucket(_) | Self::NoSuchKey | Self::NoSuchUpload => StatusCode::NOT_FOUND,
            Self::BucketNotEmpty | Self::BucketAlreadyExists | Self::BucketAlreadyOwnedByYou => {
                StatusCode::CONFLICT
            }
            Self::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::EntityTooSmall
            | Self::InvalidPart(_)
            | Self::InvalidPartOrder
            | Self::MalformedXml(_)
            | Self::InvalidBucketName(_)
            | Self::InvalidArgument(_)
            | Self::InvalidRequest(_)
            | Self::BadDigest => StatusCode::BAD_REQUEST,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::NotModified => StatusCode::NOT_MODIFIED,
            Self::EntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The S3 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AccessDenied(_) => "AccessDenied",
            Self::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            Self::Signature(e) => e.code(),
            Self::NoSuchBucket(_) => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchUpload => "NoSuchUpload",
            Self::BucketNotEmpty => "BucketNotEmpty",
            Self::BucketAlreadyExists => "BucketAlreadyExists",
            Self::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            Self::InvalidRange { .. } => "InvalidRange",
            Self::EntityTooSmall => "EntityTooSmall",
            Self::InvalidPart(_) => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
            Self::MalformedXml(_) => "MalformedXML",
            Self::InvalidBucketName(_) => "InvalidBucketName",
            Self::InvalidArgument(_) => "InvalidArgument",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::BadDigest => "BadDigest",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::NotModified => "NotModified",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::NotImplemented(_) => "NotImplemented",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Internal(_) => "InternalError",
        }
    }
}

impl From<SigError> for S3Error {
    fn from(e: SigError) -> Self {
        if e.kind == SigErrorKind::AccessDenied && e.message.contains("does not match") {
            Self::SignatureDoesNotMatch(e.message)
        } else {
            Self::Signature(e)
        }
    }
}

impl From<ApiError> for S3Error {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Signature(s) => s.into(),
            ApiError::Forbidden(m) => Self::AccessDenied(m),
            ApiError::NoSuchBucket(b) => Self::NoSuchBucket(b),
            ApiError::NoSuchKey => Self::NoSuchKey,
            ApiError::BadRequest(m) => Self::InvalidRequest(m),
            ApiError::PayloadTooLarge { .. } => Self::EntityTooLarge,
            ApiError::Unavailable(e) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<garage_table::Error> for S3Error {
    fn from(e: garage_table::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<garage_model::helper::HelperError> for S3Error {
    fn from(e: garage_model::helper::HelperError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<garage_block::BlockError> for S3Error {
    fn from(e: garage_block::BlockError) -> Self {
        Self::Unavailable(e.to_string())
    }
}
