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
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: an aws-chunked body whose every
    /// chunk is signed, each signature chained to the previous one (S3 only).
    StreamingSigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: an aws-chunked body without
    /// chunk signatures, followed by trailing headers (S3 only).
    StreamingUnsignedTrailer,
}

/// `x-amz-content-sha256` of a body with signed chunks.
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `x-amz-content-sha256` of an aws-chunked body with unsigned chunks and a trailer.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

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
            PayloadHash::StreamingSigned => STREAMING_SIGNED.to_owned(),
            PayloadHash::StreamingUnsignedTrailer => STREAMING_UNSIGNED_TRAILER.to_owned(),
        }
    }

    /// Parses an `x-amz-content-sha256` value: `UNSIGNED-PAYLOAD`, 64 hex digits, or one of
    /// the two streaming forms S3 accepts (which [`check_body`] refuses: only the S3 API,
    /// which decodes aws-chunked bodies, takes them). Other `STREAMING-…` values are refused.
    pub fn parse(value: &str) -> Result<Self, SigError> {
        if value == UNSIGNED_PAYLOAD {
            return Ok(PayloadHash::Unsigned);
        }
        if value == STREAMING_SIGNED {
            return Ok(PayloadHash::StreamingSigned);
        }
        if value == STREAMING_UNSIGNED_TRAILER {
            return Ok(PayloadHash::StreamingUnsignedTrailer);
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
/// mismatch, always `Ok` for an unsigned payload, `InvalidRequest` (400) for a streaming
/// payload (an API that accepts those decodes the body itself).
pub fn check_body(expected: &PayloadHash, body: &[u8]) -> Result<(), SigError> {
    match expected {
        PayloadHash::Unsigned => Ok(()),
        PayloadHash::StreamingSigned | PayloadHash::StreamingUnsignedTrailer => {
            Err(SigError::invalid_request(
                "streaming payloads (aws-chunked) are not supported by this API: send the hex \
                 SHA-256 of the body or UNSIGNED-PAYLOAD",
            ))
        }
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
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        ] {
            let err = PayloadHash::parse(bad).expect_err(bad);
            assert_eq!(err.status(), 400);
        }
        assert_eq!(PayloadHash::of_body(b"").to_canonical(), EMPTY);
        assert_eq!(PayloadHash::Unsigned.to_canonical(), "UNSIGNED-PAYLOAD");
        let streaming = PayloadHash::parse(STREAMING_SIGNED).expect("streaming");
        assert_eq!(streaming, PayloadHash::StreamingSigned);
        assert_eq!(streaming.to_canonical(), STREAMING_SIGNED);
        // Accepted by the parser, refused where the body is checked whole (K2V).
        assert_eq!(
            check_body(&streaming, b"x").map_err(|e| e.kind),
            Err(SigErrorKind::InvalidRequest)
        );
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
