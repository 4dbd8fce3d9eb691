//! The K2V endpoints, parsed from method, path and query.

use hyper::Method;

use crate::error::ApiError;

/// One K2V endpoint with its typed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `OPTIONS` (CORS preflight).
    Options,
    /// `GET /{b}/{pk}?sort_key=SK`.
    ReadItem {
        /// Partition key.
        partition_key: String,
        /// Sort key.
        sort_key: String,
    },
    /// `GET /{b}/{pk}?sort_key=SK&causality_token=CT[&timeout=S]`.
    PollItem {
        /// Partition key.
        partition_key: String,
        /// Sort key.
        sort_key: String,
        /// Token of what the client has.
        causality_token: String,
        /// Seconds to wait.
        timeout: Option<u64>,
    },
    /// `PUT /{b}/{pk}?sort_key=SK`.
    InsertItem {
        /// Partition key.
        partition_key: String,
        /// Sort key.
        sort_key: String,
    },
    /// `DELETE /{b}/{pk}?sort_key=SK`.
    DeleteItem {
        /// Partition key.
        partition_key: String,
        /// Sort key.
        sort_key: String,
    },
    /// `GET /{b}?prefix=&start=&end=&limit=&reverse=`.
    ReadIndex {
        /// Prefix.
        prefix: Option<String>,
        /// Start (inclusive).
        start: Option<String>,
        /// End (exclusive).
        end: Option<String>,
        /// Most partition keys.
        limit: Option<u64>,
        /// Walk downward.
        reverse: bool,
    },
    /// `POST /{b}`.
    InsertBatch,
    /// `POST /{b}?search` or `SEARCH /{b}`.
    ReadBatch,
    /// `POST /{b}?delete`.
    DeleteBatch,
    /// `POST /{b}/{pk}?poll_range` or `SEARCH /{b}/{pk}?poll_range`.
    PollRange {
        /// Partition key.
        partition_key: String,
    },
}

/// The permission an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// No signature needed.
    None,
    /// `read` on the bucket.
    Read,
    /// `write` on the bucket.
    Write,
}

/// The decoded query string: (key, value) pairs, value `None` for `?key`.
pub type Query = Vec<(String, Option<String>)>;

/// Decodes a query string.
pub fn parse_query(q: Option<&str>) -> Result<Query, ApiError> {
    let mut out = vec![];
    let Some(q) = q else { return Ok(out) };
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (part, None),
        };
        let dec = |s: &str| -> Result<String, ApiError> {
            let s = s.replace('+', " ");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ApiError::BadRequest("query string is not valid UTF-8".into()))
        };
        out.push((dec(k)?, v.map(dec).transpose()?));
    }
    Ok(out)
}

fn get<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_deref().unwrap_or(""))
}

fn has(q: &Query, key: &str) -> bool {
    q.iter().any(|(k, _)| k == key)
}

fn sort_key(q: &Query) -> Result<String, ApiError> {
    match get(q, "sort_key") {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(ApiError::BadRequest(
            "missing mandatory parameter sort_key".into(),
        )),
    }
}

fn opt(q: &Query, key: &str) -> Option<String> {
    get(q, key).map(|s| s.to_string())
}

fn parse_u64(q: &Query, key: &str) -> Result<Option<u64>, ApiError> {
    get(q, key)
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: `{s}`")))
        })
        .transpose()
}

fn parse_bool(q: &Query, key: &str) -> Result<bool, ApiError> {
    match get(q, key) {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(s) => Err(ApiError::BadRequest(format!(
            "invalid value for {key}: `{s}`"
        ))),
    }
}

/// Splits `/{bucket}[/{partition key}]` (the key percent-decoded).
pub fn parse_path(path: &str) -> Result<(String, Option<String>), ApiError> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let (b, k) = match p.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (p, None),
    };
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| ApiError::BadRequest("path is not valid UTF-8".into()))
    };
    let bucket = dec(b)?;
    if bucket.is_empty() {
        return Err(ApiError::BadRequest("missing bucket name in path".into()));
    }
    let key = k.map(dec).transpose()?.filter(|k| !k.is_empty());
    Ok((bucket, key))
}

impl Endpoint {
    /// Picks the endpoint of a request.
    pub fn parse(method: &Method, pk: Option<String>, q: &Query) -> Result<Self, ApiError> {
        if method == Method::OPTIONS {
            return Ok(Self::Options);
        }
        match (method.as_str(), pk) {
            ("GET", Some(partition_key)) => {
                let sort_key = sort_key(q)?;
                match get(q, "causality_token") {
                    Some(ct) => Ok(Self::PollItem {
                        partition_key,
                        sort_key,
                        causality_token: ct.to_string(),
                        timeout: parse_u64(q, "timeout")?,
                    }),
                    None => Ok(Self::ReadItem {
                        partition_key,
                        sort_key,
                    }),
                }
            }
            ("GET", None) => Ok(Self::ReadIndex {
                prefix: opt(q, "prefix"),
                start: opt(q, "start"),
                end: opt(q, "end"),
                limit: parse_u64(q, "limit")?,
                reverse: parse_bool(q, "reverse")?,
            }),
            ("PUT", Some(partition_key)) => Ok(Self::InsertItem {
                partition_key,
                sort_key: sort_key(q)?,
            }),
            ("DELETE", Some(partition_key)) => Ok(Self::DeleteItem {
                partition_key,
                sort_key: sort_key(q)?,
            }),
            ("POST", None) if has(q, "search") => Ok(Self::ReadBatch),
            ("POST", None) if has(q, "delete") => Ok(Self::DeleteBatch),
            ("POST", None) => Ok(Self::InsertBatch),
            ("SEARCH", None) => Ok(Self::ReadBatch),
            ("POST" | "SEARCH", Some(partition_key)) if has(q, "poll_range") => {
                Ok(Self::PollRange { partition_key })
            }
            ("POST" | "SEARCH", Some(_)) => Err(ApiError::BadRequest(
                "on a partition key, POST and SEARCH need ?poll_range".into(),
            )),
            ("PUT" | "DELETE", None) => {
                Err(ApiError::BadRequest("missing partition key in path".into()))
            }
            (m, _) => Err(ApiError::MethodNotAllowed(format!(
                "method {m} is not supported by the K2V API"
            ))),
        }
    }

    /// The endpoint's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Options => "Options",
            Self::ReadItem { .. } => "ReadItem",
            Self::PollItem { .. } => "PollItem",
            Self::InsertItem { .. } => "InsertItem",
            Self::DeleteItem { .. } => "DeleteItem",
            Self::ReadIndex { .. } => "ReadIndex",
            Self::InsertBatch => "InsertBatch",
            Self::ReadBatch => "ReadBatch",
            Self::DeleteBatch => "DeleteBatch",
            Self::PollRange { .. } => "PollRange",
        }
    }

    /// The permission it needs.
    pub fn authorization(&self) -> Authorization {
        match self {
            Self::Options => Authorization::None,
            Self::ReadItem { .. }
            | Self::PollItem { .. }
            | Self::ReadIndex { .. }
            | Self::ReadBatch
            | Self::PollRange { .. } => Authorization::Read,
            Self::InsertItem { .. }
            | Self::DeleteItem { .. }
            | Self::InsertBatch
            | Self::DeleteBatch => Authorization::Write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(m: &str, path: &str, q: &str) -> Result<Endpoint, ApiError> {
        let (_, pk) = parse_path(path)?;
        let q = parse_query(Some(q))?;
        Endpoint::parse(&Method::from_bytes(m.as_bytes()).expect("method"), pk, &q)
    }

    #[test]
    fn routes() {
        assert_eq!(
            ep("GET", "/b/my%20pk", "sort_key=a%2Fb").expect("read"),
            Endpoint::ReadItem {
                partition_key: "my pk".into(),
                sort_key: "a/b".into()
            }
        );
        assert!(matches!(
            ep("GET", "/b/pk", "sort_key=").unwrap_err(),
            ApiError::BadRequest(_)
        ));
        assert!(matches!(
            ep("GET", "/b/pk", "").unwrap_err(),
            ApiError::BadRequest(_)
        ));
        assert!(matches!(
            ep("GET", "/b/pk", "sort_key=s&causality_token=x&timeout=5").expect("poll"),
            Endpoint::PollItem {
                timeout: Some(5),
                ..
            }
        ));
        assert_eq!(ep("POST", "/b", "search").expect("rb"), Endpoint::ReadBatch);
        assert_eq!(ep("SEARCH", "/b", "").expect("rb"), Endpoint::ReadBatch);
        assert_eq!(
            ep("POST", "/b", "delete").expect("db"),
            Endpoint::DeleteBatch
        );
        assert_eq!(ep("POST", "/b", "").expect("ib"), Endpoint::InsertBatch);
        assert!(matches!(
            ep("SEARCH", "/b/pk", "poll_range").expect("pr"),
            Endpoint::PollRange { .. }
        ));
        assert!(matches!(
            ep("GET", "/b", "limit=x").unwrap_err(),
            ApiError::BadRequest(_)
        ));
        assert!(matches!(
            ep("PATCH", "/b/pk", "sort_key=a").unwrap_err(),
            ApiError::MethodNotAllowed(_)
        ));
        assert!(parse_path("/").is_err());
    }
}
