//! The payload part of a signature: what the body must hash to, and the check of the body once
//! it has been read. The signature only covers the *announced* hash (`x-amz-content-sha256`),
//! so the handler must call [`check_body`] before acting on a body.

use sha2::{Digest, Sha256};

use super::canonical::UNSIGNED_PAYLOAD;
use super::error::{SigError, SigErrorKind};
use super::signing_key_cache::constant_time_eq;

/// What the request body must be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadHash {
    /// `UNSIGNED-PAYLOAD` (also every presigned request): the body is not checked.
    Unsigned,
    /// The body must hash to this SHA-256.
    Sha256([u8; 32]),
}

impl PayloadHash {
    /// The hash of a body, for signing it.
    pub fn of_body(body: &[u8]) -> Self {
        PayloadHash::Sha256(Sha256::digest(body).into())
    }

    /// The form used in `x-amz-content-sha256` and as the canonical request's last line:
    /// `UNSIGNED-PAYLOAD` or 64 lowercase hex digits.
    pub fn to_canonical(&self) -> String {
        match self {
            PayloadHash::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
            PayloadHash::Sha256(h) => hex::encode(h),
        }
    }

    /// Parses an `x-amz-content-sha256` value. Streaming signatures (`STREAMING-…`) are not
    /// supported; anything else that is not `UNSIGNED-PAYLOAD` or 64 hex digits is refused.
    pub fn parse(value: &str) -> Result<Self, SigError> {
        if value == UNSIGNED_PAYLOAD {
            return Ok(PayloadHash::Unsigned);
        }
        if value.starts_with("STREAMING-") {
            return Err(SigError::invalid_request(format!(
                "x-amz-content-sha256 {value} is not supported: streaming signatures are not \
                 implemented, send the hex SHA-256 of the body or UNSIGNED-PAYLOAD"
            )));
        }
        let mut hash = [0u8; 32];
        match hex::decode_to_slice(value, &mut hash) {
            Ok(()) => Ok(PayloadHash::Sha256(hash)),
            Err(_) => Err(SigError::invalid_request(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a hex SHA-256",
            )),
        }
    }
}

/// Checks a body against the hash announced by the signed request: `InvalidDigest` (400) on a
/// mismatch, always `Ok` for an unsigned payload.
pub fn check_body(expected: &PayloadHash, body: &[u8]) -> Result<(), SigError> {
    match expected {
        PayloadHash::Unsigned => Ok(()),
        PayloadHash::Sha256(hash) => {
            let actual: [u8; 32] = Sha256::digest(body).into();
            if constant_time_eq(&actual, hash) {
                Ok(())
            } else {
                Err(SigError::new(
                    SigErrorKind::InvalidDigest,
                    "the body does not match the x-amz-content-sha256 header",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_values() {
        assert_eq!(
            PayloadHash::parse("UNSIGNED-PAYLOAD"),
            Ok(PayloadHash::Unsigned)
        );
        assert_eq!(PayloadHash::parse(EMPTY), Ok(PayloadHash::of_body(b"")));
        assert_eq!(
            PayloadHash::parse(&EMPTY.to_uppercase()),
            Ok(PayloadHash::of_body(b""))
        );
        for bad in [
            "",
            "unsigned-payload",
            &EMPTY[1..],
            "zz",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        ] {
            let err = PayloadHash::parse(bad).expect_err(bad);
            assert_eq!(err.status(), 400);
        }
        assert_eq!(PayloadHash::of_body(b"").to_canonical(), EMPTY);
        assert_eq!(PayloadHash::Unsigned.to_canonical(), "UNSIGNED-PAYLOAD");
    }

    #[test]
    fn body_check() {
        assert_eq!(check_body(&PayloadHash::Unsigned, b"anything"), Ok(()));
        let expected = PayloadHash::of_body(b"hello");
        assert_eq!(check_body(&expected, b"hello"), Ok(()));
        let err = check_body(&expected, b"hellO").expect_err("mismatch");
        assert_eq!(err.kind, SigErrorKind::InvalidDigest);
        assert_eq!((err.status(), err.code()), (400, "InvalidDigest"));
    }
}
