//! Client side of SigV4, for tests, the benchmark tool and internal tools. It reuses the
//! verifier's canonicalisation, so what it signs is exactly what [`super::parse_request`]
//! rebuilds (for `k2v`, the path double-encoded).
//!
//! Signed headers: `host` (which the caller must have set), every `x-amz-*` header and
//! `content-type` when present.

use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Uri};

use super::canonical::{
    canonical_request, parse_query, scope, string_to_sign, uri_encode, UriEncoding, ALGORITHM,
    UNSIGNED_PAYLOAD, X_AMZ_SIGNATURE,
};
use super::date::format_amz_date;
use super::error::SigError;
use super::payload::PayloadHash;
use super::signing_key_cache::{hmac_sha256, signing_key};
use super::verifier::{has_presigning_params, MAX_PRESIGNED_EXPIRES_SECS};

/// Who signs, for which scope, and when.
#[derive(Clone, Copy)]
pub struct SigningParams<'a> {
    /// Access key id.
    pub key_id: &'a str,
    /// Secret key.
    pub secret: &'a str,
    /// Region of the scope (the server's `s3_region`).
    pub region: &'a str,
    /// Service of the scope (`k2v`).
    pub service: &'a str,
    /// Signing time, milliseconds since the Unix epoch.
    pub now_ms: u64,
}

impl std::fmt::Debug for SigningParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningParams")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("now_ms", &self.now_ms)
            .finish()
    }
}

/// `host`, the `x-amz-*` headers and `content-type`, sorted and `;`-joined.
fn signed_header_list(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| {
            *name == HOST.as_str() || *name == CONTENT_TYPE.as_str() || name.starts_with("x-amz-")
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(";")
}

fn datetime_of(params: &SigningParams<'_>) -> (String, String) {
    let datetime = format_amz_date(params.now_ms / 1000);
    let date8 = datetime.get(..8).unwrap_or_default().to_owned();
    (datetime, date8)
}

/// Signs a request in place with an `Authorization` header.
///
/// `uri` is the path and query exactly as they will be sent (already percent-encoded once;
/// an absolute URI is fine, only its path and query are used); `headers` must already contain
/// `host`. Adds (or replaces) `x-amz-date`,
/// `x-amz-content-sha256` (from `payload`: [`PayloadHash::of_body`] or
/// [`PayloadHash::Unsigned`]) and `authorization`. Fails with `InvalidRequest` if `host` is
/// missing, a header to sign is not valid UTF-8, or the query already holds presigning
/// parameters (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Signature`, percent-encoded or
/// not: the verifier would refuse a request carrying both kinds of signature).
pub fn sign_request(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    payload: &PayloadHash,
    params: &SigningParams<'_>,
) -> Result<(), SigError> {
    if !headers.contains_key(HOST) {
        return Err(SigError::invalid_request(
            "the host header must be set before signing",
        ));
    }
    if has_presigning_params(&parse_query(uri.query().unwrap_or(""))) {
        return Err(SigError::invalid_request(
            "the query holds presigning parameters: it cannot also be header-signed",
        ));
    }
    let (datetime, date8) = datetime_of(params);
    let payload = payload.to_canonical();
    headers.remove(AUTHORIZATION);
    headers.insert(
        "x-amz-date",
        HeaderValue::from_str(&datetime).expect("invariant: a formatted date is ASCII"),
    );
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_str(&payload).expect("invariant: a payload hash is ASCII"),
    );
    let signed_headers = signed_header_list(headers);
    let canonical = canonical_request(
        method,
        uri,
        UriEncoding::for_service(params.service),
        headers,
        &signed_headers,
        &payload,
    )?;
    let scope = scope(&date8, params.region, params.service);
    let sts = string_to_sign(&datetime, &scope, &canonical);
    let key = signing_key(params.secret, &date8, params.region, params.service);
    let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
    let value = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, \
         Signature={signature}",
        params.key_id
    );
    let value = HeaderValue::from_str(&value).map_err(|_| {
        SigError::invalid_request("the key id, region or service is not valid in a header")
    })?;
    headers.insert(AUTHORIZATION, value);
    Ok(())
}

/// Presigns a request: returns the complete query string to send (`uri`'s own query followed
/// by the `X-Amz-*` parameters and `X-Amz-Signature`), so the URL is
/// `format!("{}?{}", uri.path(), query)`.
///
/// `uri` is the path and query as they will be sent; `headers` must contain `host` (any
/// `x-amz-*` or `content-type` header in it is signed too and must then be sent unchanged).
/// The payload is `UNSIGNED-PAYLOAD`. `expires_secs` must be 1..=604800 (7 days) and the
/// query must not already hold presigning parameters, else `InvalidRequest`.
pub fn presign_query(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    expires_secs: u64,
    params: &SigningParams<'_>,
) -> Result<String, SigError> {
    if !(1..=MAX_PRESIGNED_EXPIRES_SECS).contains(&expires_secs) {
        return Err(SigError::invalid_request(format!(
            "a presigned URL must expire after 1 to {MAX_PRESIGNED_EXPIRES_SECS} seconds"
        )));
    }
    if !headers.contains_key(HOST) {
        return Err(SigError::invalid_request(
            "the host header must be set before signing",
        ));
    }
    let original = uri.query().unwrap_or("");
    if original.split('&').any(|p| p.starts_with("X-Amz-"))
        || has_presigning_params(&parse_query(original))
    {
        return Err(SigError::invalid_request(
            "the query already holds X-Amz-* parameters",
        ));
    }
    let (datetime, date8) = datetime_of(params);
    let scope = scope(&date8, params.region, params.service);
    let signed_headers = signed_header_list(headers);
    let mut query = String::from(original);
    for (name, value) in [
        ("X-Amz-Algorithm", ALGORITHM.to_owned()),
        ("X-Amz-Credential", format!("{}/{scope}", params.key_id)),
        ("X-Amz-Date", datetime.clone()),
        ("X-Amz-Expires", expires_secs.to_string()),
        ("X-Amz-SignedHeaders", signed_headers.clone()),
    ] {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.push_str(&uri_encode(value.as_bytes(), false));
    }
    let presigned_uri: Uri = format!("{}?{query}", uri.path())
        .parse()
        .map_err(|_| SigError::invalid_request("the request path is not a valid URI"))?;
    let canonical = canonical_request(
        method,
        &presigned_uri,
        UriEncoding::for_service(params.service),
        headers,
        &signed_headers,
        UNSIGNED_PAYLOAD,
    )?;
    let sts = string_to_sign(&datetime, &scope, &canonical);
    let key = signing_key(params.secret, &date8, params.region, params.service);
    let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
    Ok(format!("{query}&{X_AMZ_SIGNATURE}={signature}"))
}
