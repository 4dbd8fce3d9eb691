//! The error returned by every signature check, with the S3/K2V error code and HTTP status it
//! maps to. The API layer renders it as the JSON error body; this module only decides the kind.

/// What went wrong while checking a signature; decides the HTTP status and the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigErrorKind {
    /// Wrong signature, expired or not yet valid presigned URL, missing signed header value:
    /// 403.
    AccessDenied,
    /// Unparsable `Authorization` header or presigned parameters, or a credential scope that
    /// names another region, service or date: 400.
    AuthorizationHeaderMalformed,
    /// A header-signed request whose date is more than 15 minutes away from the server clock:
    /// 403.
    RequestTimeTooSkewed,
    /// The body does not hash to the announced `x-amz-content-sha256`: 400.
    InvalidDigest,
    /// A request the verifier cannot handle (missing or malformed `x-amz-content-sha256`,
    /// streaming payload signatures, both a header and a query signature): 400.
    InvalidRequest,
}

impl SigErrorKind {
    /// The HTTP status code of this kind of error.
    pub fn status(self) -> u16 {
        match self {
            SigErrorKind::AccessDenied | SigErrorKind::RequestTimeTooSkewed => 403,
            SigErrorKind::AuthorizationHeaderMalformed
            | SigErrorKind::InvalidDigest
            | SigErrorKind::InvalidRequest => 400,
        }
    }

    /// The error code put in the error body (same spelling as S3 and Garage).
    pub fn code(self) -> &'static str {
        match self {
            SigErrorKind::AccessDenied => "AccessDenied",
            SigErrorKind::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            SigErrorKind::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            SigErrorKind::InvalidDigest => "InvalidDigest",
            SigErrorKind::InvalidRequest => "InvalidRequest",
        }
    }
}

/// A refused signature: the kind decides status and code, the message is meant for the client
/// (it never contains a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SigError {
    /// Which check failed.
    pub kind: SigErrorKind,
    /// Human-readable explanation sent back in the error body.
    pub message: String,
}

impl SigError {
    /// Builds an error of the given kind.
    pub fn new(kind: SigErrorKind, message: impl Into<String>) -> Self {
        SigError {
            kind,
            message: message.into(),
        }
    }

    /// The HTTP status code to answer with (400 or 403).
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The error code of the error body, e.g. `"AccessDenied"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(SigErrorKind::AuthorizationHeaderMalformed, message)
    }

    pub(crate) fn denied(message: impl Into<String>) -> Self {
        Self::new(SigErrorKind::AccessDenied, message)
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(SigErrorKind::InvalidRequest, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (SigErrorKind::AccessDenied, 403, "AccessDenied"),
            (
                SigErrorKind::AuthorizationHeaderMalformed,
                400,
                "AuthorizationHeaderMalformed",
            ),
            (
                SigErrorKind::RequestTimeTooSkewed,
                403,
                "RequestTimeTooSkewed",
            ),
            (SigErrorKind::InvalidDigest, 400, "InvalidDigest"),
            (SigErrorKind::InvalidRequest, 400, "InvalidRequest"),
        ];
        for (kind, status, code) in cases {
            let e = SigError::new(kind, "x");
            assert_eq!(e.status(), status);
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), "x");
        }
    }
}
