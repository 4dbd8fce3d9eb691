//! S3 request routing: bucket and key from the path (path-style) or the
//! `Host` header (virtual-hosted, under `root_domain`), then the endpoint
//! from the method, the query's sub-resources and a few headers.

use std::collections::HashMap;

use hyper::{HeaderMap, Method};
use percent_encoding::percent_decode;

use super::error::S3Error;

/// The decoded query parameters (the last value of a repeated name wins).
pub type Query = HashMap<String, String>;

/// Decodes a query string (`+` stays `+`: S3 clients encode a space as `%20`).
pub fn parse_query(q: Option<&str>) -> Result<Query, S3Error> {
    let mut out = HashMap::new();
    for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let dec = |s: &str| {
            percent_decode(s.as_bytes())
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| S3Error::InvalidArgument("the query is not valid UTF-8".into()))
        };
        out.insert(dec(k)?, dec(v)?);
    }
    Ok(out)
}

/// Splits a request into (bucket, key): virtual-hosted when the host (port
/// removed) ends with `root_domain`, else path-style.
pub fn parse_bucket_key(
    path: &str,
    host: Option<&str>,
    root_domain: Option<&str>,
) -> Result<(Option<String>, Option<String>), S3Error> {
    let decode = |s: &str| {
        percent_decode(s.as_bytes())
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| S3Error::InvalidArgument("the path is not valid UTF-8".into()))
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    if let (Some(host), Some(root)) = (host, root_domain) {
        let host = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let root = root.strip_prefix('.').unwrap_or(root);
        if let Some(bucket) = host
            .strip_suffix(root)
            .and_then(|b| b.strip_suffix('.'))
            .filter(|b| !b.is_empty())
        {
            let key = (!path.is_empty()).then(|| decode(path)).transpose()?;
            return Ok((Some(bucket.to_string()), key));
        }
    }
    if path.is_empty() {
        return Ok((None, None));
    }
    match path.split_once('/') {
        None => Ok((Some(decode(path)?), None)),
        Some((b, "")) => Ok((Some(decode(b)?), None)),
        Some((b, k)) => Ok((Some(decode(b)?), Some(decode(k)?))),
    }
}

/// What a request needs on its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// Nothing (service-level, or checked by the handler).
    None,
    /// Read permission.
    Read,
    /// Write permission.
    Write,
    /// Owner permission.
    Owner,
}

/// One S3 operation with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`.
    ListBuckets,
    /// `PUT /bucket`.
    CreateBucket,
    /// `DELETE /bucket`.
    DeleteBucket,
    /// `HEAD /bucket`.
    HeadBucket,
    /// `GET /bucket?location`.
    GetBucketLocation,
    /// `GET /bucket?versioning`.
    GetBucketVersioning,
    /// `GET /bucket?list-type=2`.
    ListObjectsV2,
    /// `GET /bucket`.
    ListObjects,
    /// `GET /bucket?uploads`.
    ListMultipartUploads,
    /// `POST /bucket?delete`.
    DeleteObjects,
    /// `GET /bucket/key`.
    GetObject {
        /// Object key.
        key: String,
    },
    /// `HEAD /bucket/key`.
    HeadObject {
        /// Object key.
        key: String,
    },
    /// `PUT /bucket/key`.
    PutObject {
        /// Object key.
        key: String,
    },
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyObject {
        /// Object key.
        key: String,
    },
    /// `DELETE /bucket/key`.
    DeleteObject {
        /// Object key.
        key: String,
    },
    /// `POST /bucket/key?uploads`.
    CreateMultipartUpload {
        /// Object key.
        key: String,
    },
    /// `PUT /bucket/key?partNumber=N&uploadId=U`.
    UploadPart {
        /// Object key.
        key: String,
        /// Part number.
        part_number: u64,
        /// Upload id.
        upload_id: String,
    },
    /// `PUT ...?partNumber&uploadId` with `x-amz-copy-source`.
    UploadPartCopy {
        /// Object key.
        key: String,
        /// Part number.
        part_number: u64,
        /// Upload id.
        upload_id: String,
    },
    /// `POST /bucket/key?uploadId=U`.
    CompleteMultipartUpload {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
    /// `DELETE /bucket/key?uploadId=U`.
    AbortMultipartUpload {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
    /// `GET /bucket/key?uploadId=U`.
    ListParts {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
}

/// Sub-resources of other S3 operations (answered NotImplemented).
const OTHER_SUBRESOURCES: &[&str] = &[
    "acl",
    "accelerate",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "versions",
    "website",
];

fn part_number(q: &Query) -> Result<u64, S3Error> {
    q.get("partNumber")
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|p| (1..=10_000).contains(p))
        .ok_or_else(|| {
            S3Error::InvalidArgument("partNumber must be an integer between 1 and 10000".into())
        })
}

impl Endpoint {
    /// The endpoint of a request.
    pub fn parse(
        method: &Method,
        bucket: Option<&str>,
        key: Option<String>,
        q: &Query,
        headers: &HeaderMap,
    ) -> Result<Self, S3Error> {
        if let Some(sub) = OTHER_SUBRESOURCES.iter().find(|s| q.contains_key(**s)) {
            return Err(S3Error::NotImplemented(format!(
                "{method} with the ?{sub} sub-resource"
            )));
        }
        let copy = headers.contains_key("x-amz-copy-source");
        let upload_id = q.get("uploadId").cloned();
        let Some(_bucket) = bucket else {
            return match *method {
                Method::GET => Ok(Self::ListBuckets),
                _ => Err(S3Error::MethodNotAllowed),
            };
        };
        let Some(key) = key else {
            return Ok(match *method {
                Method::GET if q.contains_key("location") => Self::GetBucketLocation,
                Method::GET if q.contains_key("versioning") => Self::GetBucketVersioning,
                Method::GET if q.contains_key("uploads") => Self::ListMultipartUploads,
                Method::GET => match q.get("list-type").map(String::as_str) {
                    Some("2") => Self::ListObjectsV2,
                    Some(other) => {
                        return Err(S3Error::InvalidArgument(format!(
                            "unknown list-type {other}"
                        )))
                    }
                    None => Self::ListObjects,
                },
                Method::HEAD => Self::HeadBucket,
                Method::PUT => Self::CreateBucket,
                Method::DELETE => Self::DeleteBucket,
                Method::POST if q.contains_key("delete") => Self::DeleteObjects,
                _ => return Err(S3Error::MethodNotAllowed),
            });
        };
        Ok(match (method.clone(), upload_id) {
            (Method::GET, Some(upload_id)) => Self::ListParts { key, upload_id },
            (Method::GET, None) => Self::GetObject { key },
            (Method::HEAD, _) => Self::HeadObject { key },
            (Method::PUT, Some(upload_id)) => {
                let part_number = part_number(q)?;
                if copy {
                    Self::UploadPartCopy {
                        key,
                        part_number,
                        upload_id,
                    }
                } else {
                    Self::UploadPart {
                        key,
                        part_number,
                        upload_id,
                    }
                }
            }
            (Method::PUT, None) if copy => Self::CopyObject { key },
            (Method::PUT, None) => Self::PutObject { key },
            (Method::DELETE, Some(upload_id)) => Self::AbortMultipartUpload { key, upload_id },
            (Method::DELETE, None) => Self::DeleteObject { key },
            (Method::POST, _) if q.contains_key("uploads") => Self::CreateMultipartUpload { key },
            (Method::POST, Some(upload_id)) => Self::CompleteMultipartUpload { key, upload_id },
            _ => return Err(S3Error::MethodNotAllowed),
        })
    }

    /// The operation name (logs, metrics).
    pub fn name(&self) -> &'static str {
        match self {
            Self::ListBuckets => "ListBuckets",
            Self::CreateBucket => "CreateBucket",
            Self::DeleteBucket => "DeleteBucket",
            Self::HeadBucket => "HeadBucket",
            Self::GetBucketLocation => "GetBucketLocation",
            Self::GetBucketVersioning => "GetBucketVersioning",
            Self::ListObjectsV2 => "ListObjectsV2",
            Self::ListObjects => "ListObjects",
            Self::ListMultipartUploads => "ListMultipartUploads",
            Self::DeleteObjects => "DeleteObjects",
            Self::GetObject { .. } => "GetObject",
            Self::HeadObject { .. } => "HeadObject",
            Self::PutObject { .. } => "PutObject",
            Self::CopyObject { .. } => "CopyObject",
            Self::DeleteObject { .. } => "DeleteObject",
            Self::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            Self::UploadPart { .. } => "UploadPart",
            Self::UploadPartCopy { .. } => "UploadPartCopy",
            Self::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Self::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Self::ListParts { .. } => "ListParts",
        }
    }

    /// The permission needed on the bucket.
    pub fn authorization(&self) -> Authorization {
        match self {
            Self::ListBuckets | Self::CreateBucket => Authorization::None,
            Self::DeleteBucket => Authorization::Owner,
            Self::HeadBucket
            | Self::GetBucketLocation
            | Self::GetBucketVersioning
            | Self::ListObjectsV2
            | Self::ListObjects
            | Self::ListMultipartUploads
            | Self::GetObject { .. }
            | Self::HeadObject { .. }
            | Self::ListParts { .. } => Authorization::Read,
            Self::DeleteObjects
            | Self::PutObject { .. }
            | Self::CopyObject { .. }
            | Self::DeleteObject { .. }
            | Self::CreateMultipartUpload { .. }
            | Self::UploadPart { .. }
            | Self::UploadPartCopy { .. }
            | Self::CompleteMultipartUpload { .. }
            | Self::AbortMultipartUpload { .. } => Authorization::Write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(method: Method, path: &str, query: &str, copy: bool) -> Result<Endpoint, S3Error> {
        let (b, k) = parse_bucket_key(path, None, None)?;
        let q = parse_query(Some(query))?;
        let mut h = HeaderMap::new();
        if copy {
            h.insert("x-amz-copy-source", "b/k".parse().expect("value"));
        }
        Endpoint::parse(&method, b.as_deref(), k, &q, &h)
    }

    #[test]
    fn routes() {
        let k = || "a b/c".to_string();
        assert_eq!(
            ep(Method::GET, "/", "", false).ok(),
            Some(Endpoint::ListBuckets)
        );
        assert_eq!(
            ep(Method::GET, "/b", "list-type=2&prefix=x", false).ok(),
            Some(Endpoint::ListObjectsV2)
        );
        assert_eq!(
            ep(Method::GET, "/b/", "", false).ok(),
            Some(Endpoint::ListObjects)
        );
        assert_eq!(
            ep(Method::POST, "/b", "delete", false).ok(),
            Some(Endpoint::DeleteObjects)
        );
        assert_eq!(
            ep(Method::PUT, "/b/a%20b/c", "", false).ok(),
            Some(Endpoint::PutObject { key: k() })
        );
        assert_eq!(
            ep(Method::PUT, "/b/a%20b/c", "", true).ok(),
            Some(Endpoint::CopyObject { key: k() })
        );
        assert_eq!(
            ep(Method::PUT, "/b/a%20b/c", "partNumber=3&uploadId=u", false).ok(),
            Some(Endpoint::UploadPart {
                key: k(),
                part_number: 3,
                upload_id: "u".into()
            })
        );
        assert!(matches!(
            ep(Method::PUT, "/b/k", "partNumber=0&uploadId=u", false),
            Err(S3Error::InvalidArgument(_))
        ));
        assert_eq!(
            ep(Method::POST, "/b/k", "uploads", false).ok(),
            Some(Endpoint::CreateMultipartUpload { key: "k".into() })
        );
        assert!(matches!(
            ep(Method::GET, "/b/k", "tagging", false),
            Err(S3Error::NotImplemented(_))
        ));
        assert!(matches!(
            ep(Method::PATCH, "/b/k", "", false),
            Err(S3Error::MethodNotAllowed)
        ));
    }

    #[test]
    fn virtual_hosted() {
        let r = parse_bucket_key("/x/y", Some("mybucket.s3.garage:3900"), Some(".s3.garage"));
        assert_eq!(r.ok(), Some((Some("mybucket".into()), Some("x/y".into()))));
        let r = parse_bucket_key("/", Some("mybucket.s3.garage"), Some("s3.garage"));
        assert_eq!(r.ok(), Some((Some("mybucket".into()), None)));
        let r = parse_bucket_key("/b/k", Some("127.0.0.1:3900"), Some(".s3.garage"));
        assert_eq!(r.ok(), Some((Some("b".into()), Some("k".into()))));
    }
}
