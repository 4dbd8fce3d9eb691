//! Server side of SigV4: parse a request's signature (an `Authorization` header or presigned
//! query parameters), check its scope and dates, build the string to sign, then check the
//! signature once the caller has looked up the key's secret.
//!
//! Verification is split in two steps so the API layer can find the key from
//! [`ParsedAuth::key_id`] between them. Every check that needs no secret happens in
//! [`parse_request`]; [`verify`] only recomputes the HMAC and compares it in constant time.
//! A request with neither kind of signature is anonymous (`Ok(None)`); the caller refuses it
//! with a 403.

use http::header::{AUTHORIZATION, DATE};
use http::{HeaderMap, Method, Uri};

use super::canonical::{
    canonical_request, parse_query, scope, string_to_sign, UriEncoding, ALGORITHM,
    UNSIGNED_PAYLOAD, X_AMZ_SIGNATURE,
};
use super::date::{format_amz_date, parse_amz_date, parse_http_date};
use super::error::{SigError, SigErrorKind};
use super::payload::PayloadHash;
use super::signing_key_cache::{constant_time_eq, hmac_sha256, SigningKeyCache};
use super::streaming::ChunkSigner;

/// A header-signed request may be this far from the server clock, in either direction.
pub const MAX_CLOCK_SKEW_SECS: u64 = 15 * 60;
/// The longest validity of a presigned URL (`X-Amz-Expires`), 7 days as in AWS.
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 7 * 24 * 3600;

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const Q_ALGORITHM: &str = "X-Amz-Algorithm";
const Q_CREDENTIAL: &str = "X-Amz-Credential";
const Q_DATE: &str = "X-Amz-Date";
const Q_EXPIRES: &str = "X-Amz-Expires";
const Q_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";

/// A parsed and pre-checked signature, waiting for the key's secret.
#[derive(Debug, Clone)]
pub struct ParsedAuth {
    /// The access key id of the credential.
    pub key_id: String,
    pub(crate) date8: String,
    pub(crate) datetime: String,
    pub(crate) region: String,
    pub(crate) service: String,
    /// Kept to log it when the signature does not match: the usual way to debug a client.
    pub(crate) canonical_request: String,
    pub(crate) string_to_sign: String,
    pub(crate) signature: [u8; 32],
    pub(crate) payload_hash: PayloadHash,
    pub(crate) presigned: bool,
}

impl ParsedAuth {
    /// The access key id of the credential.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// What the body must hash to; pass it to [`super::check_body`] once the body is read.
    pub fn payload_hash(&self) -> &PayloadHash {
        &self.payload_hash
    }

    /// The checker of the chunk signatures of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body,
    /// seeded with this request's signature (call after [`verify`] succeeded).
    pub fn chunk_verifier(&self, secret: &str, cache: &SigningKeyCache) -> ChunkSigner {
        let key = cache.get(
            &self.key_id,
            secret,
            &self.date8,
            &self.region,
            &self.service,
        );
        ChunkSigner::new(
            key,
            &self.datetime,
            &scope(&self.date8, &self.region, &self.service),
            self.signature,
        )
    }

    /// Whether the signature came from presigned query parameters.
    pub fn is_presigned(&self) -> bool {
        self.presigned
    }
}

/// The five parts of `Credential=KEYID/DATE/REGION/SERVICE/aws4_request`.
struct Credential<'a> {
    key_id: &'a str,
    date8: &'a str,
    region: &'a str,
    service: &'a str,
}

fn parse_credential(s: &str) -> Result<Credential<'_>, SigError> {
    let parts: Vec<&str> = s.split('/').collect();
    let [key_id, date8, region, service, terminator] = parts.as_slice() else {
        return Err(SigError::malformed(
            "the credential must be KEYID/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    };
    if key_id.is_empty()
        || date8.len() != 8
        || !date8.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
        || service.is_empty()
        || *terminator != "aws4_request"
    {
        return Err(SigError::malformed(
            "the credential must be KEYID/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    }
    Ok(Credential {
        key_id,
        date8,
        region,
        service,
    })
}

/// Checks that the credential scope is this server's and that its date is the request's.
fn check_scope(
    cred: &Credential<'_>,
    datetime: &str,
    region: &str,
    service: &str,
) -> Result<(), SigError> {
    if cred.region != region {
        return Err(SigError::malformed(format!(
            "the credential scope names region '{}', but this server expects '{region}'",
            cred.region
        )));
    }
    if cred.service != service {
        return Err(SigError::malformed(format!(
            "the credential scope names service '{}', but this server expects '{service}'",
            cred.service
        )));
    }
    if !datetime.starts_with(cred.date8) {
        return Err(SigError::malformed(format!(
            "the credential scope date {} is not the date of the request {datetime}",
            cred.date8
        )));
    }
    Ok(())
}

fn parse_signature(s: &str) -> Result<[u8; 32], SigError> {
    let mut sig = [0u8; 32];
    hex::decode_to_slice(s, &mut sig)
        .map_err(|_| SigError::malformed("the signature must be 64 hex digits"))?;
    Ok(sig)
}

/// The value of a header that must appear at most once.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SigError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SigError::malformed(format!(
            "header {name} appears more than once"
        )));
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| SigError::malformed(format!("header {name} is not valid ASCII")))
}

/// Parses a request's signature, checks its scope and dates and builds the string to sign.
///
/// - `uri` is the request target as received (path and query still percent-encoded);
/// - `region` is the configured `s3_region`, `service` the API's service name (`k2v`): the
///   path is double-encoded for every service but `s3` (see [`UriEncoding::for_service`]);
/// - `now_ms` is the server clock, milliseconds since the Unix epoch.
///
/// Returns `Ok(None)` for an anonymous request (no `Authorization` header and no presigned
/// parameters). Errors: `AuthorizationHeaderMalformed` (400) for anything unparsable or a
/// scope naming another region, service or date; `RequestTimeTooSkewed` (403) for a
/// header-signed request more than 15 minutes away from `now_ms`; `AccessDenied` (403) for a
/// presigned URL that has expired or is not valid yet; `InvalidRequest` (400) for a missing
/// or unsupported `x-amz-content-sha256` (streaming payloads are accepted for `s3` only) or
/// for a request carrying both kinds of signature.
pub fn parse_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    region: &str,
    service: &str,
    now_ms: u64,
) -> Result<Option<ParsedAuth>, SigError> {
    parse_request_with(
        method,
        uri,
        headers,
        region,
        service,
        now_ms,
        UriEncoding::for_service(service),
    )
}

/// [`parse_request`] with an explicit path encoding (the AWS test vectors need both).
pub(crate) fn parse_request_with(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    region: &str,
    service: &str,
    now_ms: u64,
    encoding: UriEncoding,
) -> Result<Option<ParsedAuth>, SigError> {
    let query = parse_query(uri.query().unwrap_or(""));
    let presigned = has_presigning_params(&query);
    let has_header = headers.contains_key(AUTHORIZATION);
    let ctx = Ctx {
        method,
        uri,
        headers,
        region,
        service,
        now_ms,
        encoding,
    };
    match (has_header, presigned) {
        (false, false) => Ok(None),
        (true, true) => Err(SigError::invalid_request(
            "a request must not carry both an Authorization header and a presigned signature",
        )),
        (true, false) => ctx.parse_header_signed().map(Some),
        (false, true) => ctx.parse_presigned(&query).map(Some),
    }
}

/// True if the decoded query holds a parameter that makes a request
/// presigned (the signer refuses to header-sign such a query: the verifier
/// would see both kinds of signature).
pub(crate) fn has_presigning_params(query: &[(Vec<u8>, Vec<u8>)]) -> bool {
    query.iter().any(|(k, _)| {
        [Q_ALGORITHM, Q_CREDENTIAL, X_AMZ_SIGNATURE]
            .iter()
            .any(|name| k.as_slice() == name.as_bytes())
    })
}

/// The request and server settings shared by both parsing paths.
struct Ctx<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    region: &'a str,
    service: &'a str,
    now_ms: u64,
    encoding: UriEncoding,
}

/// The fields of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct AuthorizationFields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthorizationFields<'_>, SigError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with([' ', '\t']))
        .ok_or_else(|| {
            SigError::malformed(format!(
                "unsupported authorization scheme: expected {ALGORITHM}"
            ))
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=').ok_or_else(|| {
            SigError::malformed(format!("invalid Authorization header field: {part:?}"))
        })?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(SigError::malformed(format!(
                    "unknown Authorization header field: {other:?}"
                )))
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(SigError::malformed(format!(
                "Authorization header field {} appears more than once",
                key.trim()
            )));
        }
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => Ok(AuthorizationFields {
            credential,
            signed_headers,
            signature,
        }),
        _ => Err(SigError::malformed(
            "the Authorization header must have Credential, SignedHeaders and Signature",
        )),
    }
}

impl Ctx<'_> {
    fn parse_header_signed(&self) -> Result<ParsedAuth, SigError> {
        let value = single_header(self.headers, AUTHORIZATION.as_str())?.unwrap_or_default();
        let fields = parse_authorization(value)?;
        let cred = parse_credential(fields.credential)?;
        let signature = parse_signature(fields.signature)?;

        let date_secs = match single_header(self.headers, X_AMZ_DATE)? {
            Some(v) => parse_amz_date(v).ok_or_else(|| {
                SigError::malformed("x-amz-date must be in the form YYYYMMDDTHHMMSSZ")
            })?,
            None => {
                let v = single_header(self.headers, DATE.as_str())?.ok_or_else(|| {
                    SigError::malformed("a signed request needs an x-amz-date or Date header")
                })?;
                parse_http_date(v).ok_or_else(|| {
                    SigError::malformed("the Date header must be an IMF-fixdate (RFC 9110)")
                })?
            }
        };
        let datetime = format_amz_date(date_secs);
        check_scope(&cred, &datetime, self.region, self.service)?;
        let skew_ms = self.now_ms.abs_diff(date_secs.saturating_mul(1000));
        if skew_ms > MAX_CLOCK_SKEW_SECS * 1000 {
            return Err(SigError::new(
                SigErrorKind::RequestTimeTooSkewed,
                format!(
                    "the difference between the request time {datetime} and the server time \
                     {} is more than 15 minutes",
                    format_amz_date(self.now_ms / 1000)
                ),
            ));
        }

        let payload = single_header(self.headers, X_AMZ_CONTENT_SHA256)?.ok_or_else(|| {
            SigError::invalid_request("a header-signed request needs x-amz-content-sha256")
        })?;
        let payload_hash = PayloadHash::parse(payload)?;
        let streaming = matches!(
            payload_hash,
            PayloadHash::StreamingSigned | PayloadHash::StreamingUnsignedTrailer
        );
        if streaming && self.service != "s3" {
            return Err(SigError::invalid_request(format!(
                "x-amz-content-sha256 {payload} is not supported by the {} API: send the hex \
                 SHA-256 of the body or UNSIGNED-PAYLOAD",
                self.service
            )));
        }
        self.finish(
            cred,
            &datetime,
            fields.signed_headers,
            payload,
            payload_hash,
            signature,
            false,
        )
    }

    fn parse_presigned(&self, query: &[(Vec<u8>, Vec<u8>)]) -> Result<ParsedAuth, SigError> {
        let param = |name: &str| -> Result<&str, SigError> {
            let mut values = query
                .iter()
                .filter(|(k, _)| k.as_slice() == name.as_bytes());
            let (Some((_, value)), None) = (values.next(), values.next()) else {
                return Err(SigError::malformed(format!(
                    "a presigned URL needs exactly one {name} parameter"
                )));
            };
            std::str::from_utf8(value)
                .map_err(|_| SigError::malformed(format!("{name} is not valid UTF-8")))
        };
        if param(Q_ALGORITHM)? != ALGORITHM {
            return Err(SigError::malformed(format!(
                "unsupported {Q_ALGORITHM}: expected {ALGORITHM}"
            )));
        }
        let cred = parse_credential(param(Q_CREDENTIAL)?)?;
        let signature = parse_signature(param(X_AMZ_SIGNATURE)?)?;
        let signed_headers = param(Q_SIGNED_HEADERS)?;
        let date_secs = parse_amz_date(param(Q_DATE)?).ok_or_else(|| {
            SigError::malformed(format!("{Q_DATE} must be in the form YYYYMMDDTHHMMSSZ"))
        })?;
        let datetime = format_amz_date(date_secs);
        check_scope(&cred, &datetime, self.region, self.service)?;

        let expires = param(Q_EXPIRES)?;
        let expires = Some(expires)
            .filter(|e| !e.is_empty() && e.len() <= 7 && e.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|e| e.parse::<u64>().ok())
            .filter(|e| (1..=MAX_PRESIGNED_EXPIRES_SECS).contains(e))
            .ok_or_else(|| {
                SigError::malformed(format!(
                    "{Q_EXPIRES} must be a number of seconds between 1 and \
                     {MAX_PRESIGNED_EXPIRES_SECS} (7 days)"
                ))
            })?;
        if self.now_ms < date_secs.saturating_mul(1000) {
            return Err(SigError::denied(format!(
                "request is not valid yet: the presigned URL is valid from {datetime}"
            )));
        }
        if self.now_ms > (date_secs + expires).saturating_mul(1000) {
            return Err(SigError::denied(format!(
                "request has expired: the presigned URL was valid until {}",
                format_amz_date(date_secs + expires)
            )));
        }
        let payload_hash = PayloadHash::Unsigned;
        self.finish(
            cred,
            &datetime,
            signed_headers,
            UNSIGNED_PAYLOAD,
            payload_hash,
            signature,
            true,
        )
    }

    /// Builds the canonical request and the string to sign, common to both kinds.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        cred: Credential<'_>,
        datetime: &str,
        signed_headers: &str,
        payload: &str,
        payload_hash: PayloadHash,
        signature: [u8; 32],
        presigned: bool,
    ) -> Result<ParsedAuth, SigError> {
        let canonical = canonical_request(
            self.method,
            self.uri,
            self.encoding,
            self.headers,
            signed_headers,
            payload,
        )?;
        let string_to_sign = string_to_sign(
            datetime,
            &scope(cred.date8, cred.region, cred.service),
            &canonical,
        );
        Ok(ParsedAuth {
            key_id: cred.key_id.to_owned(),
            date8: cred.date8.to_owned(),
            datetime: datetime.to_owned(),
            region: cred.region.to_owned(),
            service: cred.service.to_owned(),
            canonical_request: canonical,
            string_to_sign,
            signature,
            payload_hash,
            presigned,
        })
    }
}

/// Checks the signature with the key's secret, in constant time. `AccessDenied` (403) on a
/// mismatch; the canonical request is logged at debug level to help fix clients.
pub fn verify(auth: &ParsedAuth, secret: &str, cache: &SigningKeyCache) -> Result<(), SigError> {
    let key = cache.get(
        &auth.key_id,
        secret,
        &auth.date8,
        &auth.region,
        &auth.service,
    );
    let expected = hmac_sha256(&key, auth.string_to_sign.as_bytes());
    if constant_time_eq(&expected, &auth.signature) {
        Ok(())
    } else {
        tracing::debug!(
            key_id = %auth.key_id,
            canonical_request = %auth.canonical_request,
            string_to_sign = %auth.string_to_sign,
            "signature mismatch"
        );
        Err(SigError::denied(
            "the request signature does not match the signature computed with your key; \
             check your secret and signing method",
        ))
    }
}
