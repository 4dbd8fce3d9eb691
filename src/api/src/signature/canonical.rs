//! The SigV4 canonical request and string to sign, shared by the verifier and the client-side
//! signer so both always agree byte for byte.
//!
//! Invariants that callers rely on:
//! - the canonical URI is built from the path *as sent on the wire*: for every service but
//!   `s3` it is percent-encoded a second time ([`UriEncoding::Double`], what botocore and the
//!   AWS SDKs do, so `%20` becomes `%2520`); for `s3` it is normalised to AWS's single encoding
//!   ([`UriEncoding::Single`]). Paths are never normalised otherwise (`..`, `.` and `//` are
//!   kept: they are meaningful in K2V and S3 keys).
//! - query keys and values are decoded (`+` counts as a space, as in form encoding and in
//!   Garage) and re-encoded with the strict AWS set (unreserved characters kept, everything
//!   else `%XX` in upper case); a key without `=` is canonicalised as `key=`; the pairs are
//!   sorted by key then value; the `X-Amz-Signature` parameter is always left out.
//! - header values are trimmed, runs of spaces and tabs collapse to one space, repeated
//!   headers are joined with `,` in arrival order.

use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};

use super::error::SigError;

/// The only algorithm supported, as it appears in `Authorization` and `X-Amz-Algorithm`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Payload hash placeholder of requests whose body is not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The query parameter carrying a presigned URL's signature, never part of the canonical query.
pub const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";

/// How the request path becomes the canonical URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriEncoding {
    /// `s3`: the wire path normalised to AWS's single encoding (`%7E` becomes `~`, a raw
    /// space becomes `%20`, `%2f` becomes `%2F`, `%20` stays).
    Single,
    /// Every other service, including `k2v`: the wire path URI-encoded once more (`%` becomes
    /// `%25`); unreserved characters and `/` are kept.
    Double,
}

impl UriEncoding {
    /// The encoding AWS clients use for `service`: single for `s3`, double for anything else.
    pub fn for_service(service: &str) -> Self {
        if service == "s3" {
            UriEncoding::Single
        } else {
            UriEncoding::Double
        }
    }
}

/// Unreserved characters of RFC 3986, never percent-encoded by SigV4.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The escape `%XY` starting at `bytes[i]`, if there is a valid one there.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    match bytes.get(i..i + 3) {
        Some([b'%', hi, lo]) => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

/// AWS `UriEncode`: unreserved characters kept, `/` kept if `keep_slash`, every other byte
/// as `%XX` in upper case.
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// The canonical URI of a request path as received on the wire (see [`UriEncoding`]).
/// An empty path counts as `/`.
pub fn canonical_uri(path: &str, encoding: UriEncoding) -> String {
    let path = if path.is_empty() { "/" } else { path };
    match encoding {
        UriEncoding::Double => uri_encode(path.as_bytes(), true),
        UriEncoding::Single => {
            // Re-encode each byte the way AWS would have, keeping the segment structure: a
            // valid escape is decoded then re-encoded (so `%2F` stays an escaped slash).
            let bytes = path.as_bytes();
            let mut out = String::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if let Some(b) = escape_at(bytes, i) {
                    if is_unreserved(b) {
                        out.push(char::from(b));
                    } else {
                        push_escaped(&mut out, b);
                    }
                    i += 3;
                } else {
                    let b = bytes[i];
                    if is_unreserved(b) || b == b'/' {
                        out.push(char::from(b));
                    } else {
                        push_escaped(&mut out, b);
                    }
                    i += 1;
                }
            }
            out
        }
    }
}

/// Decodes one query component: `+` is a space, valid `%XY` escapes are decoded, anything
/// else (including a stray `%`) is kept as is.
fn decode_query_component(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(b) = escape_at(bytes, i) {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    out
}

/// A query string split into decoded `(key, value)` pairs in arrival order; empty segments
/// (`a=1&&b=2`) are dropped and a key without `=` has an empty value.
pub(crate) fn parse_query(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) => (decode_query_component(k), decode_query_component(v)),
            None => (decode_query_component(part), Vec::new()),
        })
        .collect()
}

/// The canonical query string of decoded pairs, without `X-Amz-Signature`.
pub(crate) fn canonical_query_from_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k.as_slice() != X_AMZ_SIGNATURE.as_bytes())
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The canonical query string of a raw query (the part after `?`, as on the wire), without
/// the `X-Amz-Signature` parameter. `?search` gives `search=`.
pub fn canonical_query(query: &str) -> String {
    canonical_query_from_pairs(&parse_query(query))
}

/// Checks the `SignedHeaders` list: non-empty lowercase header names separated by `;`, one of
/// them `host`.
fn check_signed_headers(signed_headers: &str) -> Result<(), SigError> {
    let mut has_host = false;
    for name in signed_headers.split(';') {
        let valid = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
            });
        if !valid {
            return Err(SigError::malformed(format!(
                "invalid header name in SignedHeaders: {name:?}"
            )));
        }
        has_host |= name == "host";
    }
    if !has_host {
        return Err(SigError::malformed("the host header must be signed"));
    }
    Ok(())
}

/// The canonical value of a header: every occurrence trimmed with inner runs of spaces and
/// tabs collapsed, joined with `,`. `None` if the header is absent.
pub(crate) fn canonical_header_value(
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<String>, SigError> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
            SigError::invalid_request(format!("signed header {name} is not valid UTF-8"))
        })?;
        let acc = match &mut out {
            Some(acc) => {
                acc.push(',');
                acc
            }
            None => out.insert(String::new()),
        };
        for (i, word) in value
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .enumerate()
        {
            if i > 0 {
                acc.push(' ');
            }
            acc.push_str(word);
        }
    }
    Ok(out)
}

/// Builds the canonical request.
///
/// - `uri`: the request target (path and query) exactly as sent on the wire;
/// - `encoding`: how the path is encoded, normally [`UriEncoding::for_service`];
/// - `signed_headers`: the `;`-separated list of lowercase header names, as in
///   `SignedHeaders=`; it must contain `host` and every name must be present in `headers`;
/// - `payload`: the last line, `UNSIGNED-PAYLOAD` or the hex SHA-256 of the body.
pub fn canonical_request(
    method: &Method,
    uri: &Uri,
    encoding: UriEncoding,
    headers: &HeaderMap,
    signed_headers: &str,
    payload: &str,
) -> Result<String, SigError> {
    check_signed_headers(signed_headers)?;
    let mut out = String::with_capacity(256);
    out.push_str(method.as_str());
    out.push('\n');
    out.push_str(&canonical_uri(uri.path(), encoding));
    out.push('\n');
    out.push_str(&canonical_query(uri.query().unwrap_or("")));
    out.push('\n');
    for name in signed_headers.split(';') {
        let value = canonical_header_value(headers, name)?.ok_or_else(|| {
            SigError::malformed(format!("signed header {name} is missing from the request"))
        })?;
        out.push_str(name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload);
    Ok(out)
}

/// The credential scope `DATE/REGION/SERVICE/aws4_request`.
pub fn scope(date8: &str, region: &str, service: &str) -> String {
    format!("{date8}/{region}/{service}/aws4_request")
}

/// The string to sign: algorithm, request timestamp (`YYYYMMDDTHHMMSSZ`), credential scope
/// and hex SHA-256 of the canonical request, one per line.
pub fn string_to_sign(datetime: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{datetime}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoding_of_wire_path() {
        // "my key/é" as sent by a client: space and UTF-8 already escaped once.
        let wire = "/bucket/my%20key%2Fx/%C3%A9~";
        assert_eq!(
            canonical_uri(wire, UriEncoding::Double),
            "/bucket/my%2520key%252Fx/%25C3%25A9~"
        );
        assert_eq!(canonical_uri("", UriEncoding::Double), "/");
    }

    #[test]
    fn single_encoding_normalises() {
        assert_eq!(
            canonical_uri("/b/a%7e%2fb%20c d:é%", UriEncoding::Single),
            "/b/a~%2Fb%20c%20d%3A%C3%A9%25"
        );
        assert_eq!(canonical_uri("//a/../.", UriEncoding::Single), "//a/../.");
    }

    #[test]
    fn query_canonicalisation() {
        assert_eq!(canonical_query("search"), "search=");
        assert_eq!(canonical_query("poll_range&x=1"), "poll_range=&x=1");
        assert_eq!(canonical_query("b=2&a=2&a=1&&c="), "a=1&a=2&b=2&c=");
        assert_eq!(
            canonical_query("k=a+b%2Bc%2f~%7E&%E1%88%B4=v"),
            "%E1%88%B4=v&k=a%20b%2Bc%2F~~"
        );
        assert_eq!(canonical_query("X-Amz-Signature=abc&x=%zz"), "x=%25zz");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn header_values() {
        let mut h = HeaderMap::new();
        h.append("x-a", "  a   b \t c  ".parse().expect("valid"));
        h.append("x-a", "d".parse().expect("valid"));
        h.append("x-b", "".parse().expect("valid"));
        assert_eq!(
            canonical_header_value(&h, "x-a"),
            Ok(Some("a b c,d".into()))
        );
        assert_eq!(canonical_header_value(&h, "x-b"), Ok(Some(String::new())));
        assert_eq!(canonical_header_value(&h, "x-c"), Ok(None));
    }

    #[test]
    fn signed_headers_checks() {
        assert!(check_signed_headers("host;x-amz-date").is_ok());
        for bad in ["", "x-amz-date", "host;", "Host", "host;;x", "host;a b"] {
            assert!(check_signed_headers(bad).is_err(), "{bad:?}");
        }
    }
}
