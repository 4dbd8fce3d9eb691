//! The admin endpoints (API v1), parsed from method, path and query.
//!
//! Endpoint names are Garage's, so logs (and later metrics labels) match.

use std::collections::BTreeMap;

use hyper::Method;

use super::error::AdminError;

/// How a key is looked up by `GET /v1/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySelector {
    /// `?id=`: the exact access key id.
    Id(String),
    /// `?search=`: a unique id prefix or the exact name.
    Search(String),
}

/// How a bucket is looked up by `GET /v1/bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketSelector {
    /// `?id=`: the full hex id.
    Id(String),
    /// `?globalAlias=`.
    GlobalAlias(String),
}

/// One admin endpoint with its typed query parameters (bodies are parsed
/// by the handlers, after authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `OPTIONS` on any path (CORS preflight), no token.
    Options,
    /// `GET /health` and `GET /check`: plain-text health, no token.
    Health,
    /// `GET /metrics` (metrics token, if one is set).
    Metrics,
    /// `GET /v1/health`.
    GetClusterHealth,
    /// `GET /v1/status`.
    GetClusterStatus,
    /// `POST /v1/connect`.
    ConnectClusterNodes,
    /// `GET /v1/layout`.
    GetClusterLayout,
    /// `POST /v1/layout`.
    UpdateClusterLayout,
    /// `POST /v1/layout/apply`.
    ApplyClusterLayout,
    /// `POST /v1/layout/revert`.
    RevertClusterLayout,
    /// `GET /v1/key` without `id` or `search`.
    ListKeys,
    /// `GET /v1/key?id=|search=[&showSecretKey=true]`.
    GetKeyInfo {
        /// Which key.
        key: KeySelector,
        /// Include the secret.
        show_secret: bool,
    },
    /// `POST /v1/key`.
    CreateKey,
    /// `POST /v1/key/import`.
    ImportKey,
    /// `POST /v1/key?id=`.
    UpdateKey {
        /// The access key id.
        id: String,
    },
    /// `DELETE /v1/key?id=`.
    DeleteKey {
        /// The access key id.
        id: String,
    },
    /// `GET /v1/bucket` without `id` or `globalAlias`.
    ListBuckets,
    /// `GET /v1/bucket?id=|globalAlias=`.
    GetBucketInfo {
        /// Which bucket.
        bucket: BucketSelector,
    },
    /// `POST /v1/bucket`.
    CreateBucket,
    /// `PUT /v1/bucket?id=`.
    UpdateBucket {
        /// The bucket id (hex).
        id: String,
    },
    /// `DELETE /v1/bucket?id=`.
    DeleteBucket {
        /// The bucket id (hex).
        id: String,
    },
    /// `POST /v1/bucket/allow`.
    BucketAllowKey,
    /// `POST /v1/bucket/deny`.
    BucketDenyKey,
    /// `PUT /v1/bucket/alias/global?id=&alias=`.
    GlobalAliasBucket {
        /// The bucket id (hex).
        id: String,
        /// The alias.
        alias: String,
    },
    /// `DELETE /v1/bucket/alias/global?id=&alias=`.
    GlobalUnaliasBucket {
        /// The bucket id (hex).
        id: String,
        /// The alias.
        alias: String,
    },
    /// `PUT /v1/bucket/alias/local?id=&accessKeyId=&alias=`.
    LocalAliasBucket {
        /// The bucket id (hex).
        id: String,
        /// The key whose namespace holds the alias.
        access_key_id: String,
        /// The alias.
        alias: String,
    },
    /// `DELETE /v1/bucket/alias/local?id=&accessKeyId=&alias=`.
    LocalUnaliasBucket {
        /// The bucket id (hex).
        id: String,
        /// The key whose namespace holds the alias.
        access_key_id: String,
        /// The alias.
        alias: String,
    },
}

/// The token an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// None.
    None,
    /// The metrics token, when one is configured.
    MetricsToken,
    /// The admin token (the endpoint is disabled without one).
    AdminToken,
}

/// The decoded query: each parameter once (a repeated one is refused).
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Decodes `a=b&c=d` (`+` and percent escapes decoded, `?flag` = "").
    pub fn parse(q: Option<&str>) -> Result<Self, AdminError> {
        let mut out = BTreeMap::new();
        let Some(q) = q else { return Ok(Self(out)) };
        let dec = |s: &str| -> Result<String, AdminError> {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| AdminError::BadRequest("query string is not valid UTF-8".into()))
        };
        for part in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = dec(k)?;
            if out.insert(k.clone(), dec(v)?).is_some() {
                return Err(AdminError::BadRequest(format!(
                    "query parameter `{k}` is repeated"
                )));
            }
        }
        Ok(Self(out))
    }

    fn get(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned()
    }

    fn need(&self, k: &str) -> Result<String, AdminError> {
        match self.0.get(k) {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => Err(AdminError::BadRequest(format!(
                "missing query parameter `{k}`"
            ))),
        }
    }

    fn flag(&self, k: &str) -> Result<bool, AdminError> {
        match self.0.get(k).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(AdminError::BadRequest(format!(
                "invalid value `{v}` for `{k}`: expected true or false"
            ))),
        }
    }
}

fn one_of<T>(
    a: Option<String>,
    b: Option<String>,
    names: (&str, &str),
    fa: impl FnOnce(String) -> T,
    fb: impl FnOnce(String) -> T,
) -> Result<Option<T>, AdminError> {
    match (a, b) {
        (Some(_), Some(_)) => Err(AdminError::BadRequest(format!(
            "give either `{}` or `{}`, not both",
            names.0, names.1
        ))),
        (Some(a), None) => Ok(Some(fa(a))),
        (None, Some(b)) => Ok(Some(fb(b))),
        (None, None) => Ok(None),
    }
}

impl Endpoint {
    /// Picks the endpoint of a request.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Self, AdminError> {
        if method == Method::OPTIONS {
            return Ok(Self::Options);
        }
        let q = Query::parse(query)?;
        let m = method.as_str();
        let wrong_method = || AdminError::MethodNotAllowed(format!("{m} {path}"));
        let ep = match path {
            "/health" | "/check" => match m {
                "GET" => Self::Health,
                _ => return Err(wrong_method()),
            },
            "/metrics" => match m {
                "GET" => Self::Metrics,
                _ => return Err(wrong_method()),
            },
            "/v1/health" => match m {
                "GET" => Self::GetClusterHealth,
                _ => return Err(wrong_method()),
            },
            "/v1/status" => match m {
                "GET" => Self::GetClusterStatus,
                _ => return Err(wrong_method()),
            },
            "/v1/connect" => match m {
                "POST" => Self::ConnectClusterNodes,
                _ => return Err(wrong_method()),
            },
            "/v1/layout" => match m {
                "GET" => Self::GetClusterLayout,
                "POST" => Self::UpdateClusterLayout,
                _ => return Err(wrong_method()),
            },
            "/v1/layout/apply" => match m {
                "POST" => Self::ApplyClusterLayout,
                _ => return Err(wrong_method()),
            },
            "/v1/layout/revert" => match m {
                "POST" => Self::RevertClusterLayout,
                _ => return Err(wrong_method()),
            },
            "/v1/key" => match m {
                "GET" => {
                    let sel = one_of(
                        q.get("id"),
                        q.get("search"),
                        ("id", "search"),
                        KeySelector::Id,
                        KeySelector::Search,
                    )?;
                    match sel {
                        Some(key) => Self::GetKeyInfo {
                            key,
                            show_secret: q.flag("showSecretKey")?,
                        },
                        None => Self::ListKeys,
                    }
                }
                "POST" => match q.get("id") {
                    Some(_) => Self::UpdateKey { id: q.need("id")? },
                    None => Self::CreateKey,
                },
                "DELETE" => Self::DeleteKey { id: q.need("id")? },
                _ => return Err(wrong_method()),
            },
            "/v1/key/import" => match m {
                "POST" => Self::ImportKey,
                _ => return Err(wrong_method()),
            },
            "/v1/bucket" => match m {
                "GET" => {
                    let sel = one_of(
                        q.get("id"),
                        q.get("globalAlias"),
                        ("id", "globalAlias"),
                        BucketSelector::Id,
                        BucketSelector::GlobalAlias,
                    )?;
                    match sel {
                        Some(bucket) => Self::GetBucketInfo { bucket },
                        None => Self::ListBuckets,
                    }
                }
                "POST" => Self::CreateBucket,
                "PUT" => Self::UpdateBucket { id: q.need("id")? },
                "DELETE" => Self::DeleteBucket { id: q.need("id")? },
                _ => return Err(wrong_method()),
            },
            "/v1/bucket/allow" => match m {
                "POST" => Self::BucketAllowKey,
                _ => return Err(wrong_method()),
            },
            "/v1/bucket/deny" => match m {
                "POST" => Self::BucketDenyKey,
                _ => return Err(wrong_method()),
            },
            "/v1/bucket/alias/global" => {
                let (id, alias) = (q.need("id")?, q.need("alias")?);
                match m {
                    "PUT" => Self::GlobalAliasBucket { id, alias },
                    "DELETE" => Self::GlobalUnaliasBucket { id, alias },
                    _ => return Err(wrong_method()),
                }
            }
            "/v1/bucket/alias/local" => {
                let (id, access_key_id, alias) =
                    (q.need("id")?, q.need("accessKeyId")?, q.need("alias")?);
                match m {
                    "PUT" => Self::LocalAliasBucket {
                        id,
                        access_key_id,
                        alias,
                    },
                    "DELETE" => Self::LocalUnaliasBucket {
                        id,
                        access_key_id,
                        alias,
                    },
                    _ => return Err(wrong_method()),
                }
            }
            p if p.starts_with("/v0/") => {
                return Err(AdminError::NoSuchEndpoint(format!(
                    "{p}: the deprecated admin API v0 is not served, use /v1/"
                )))
            }
            p => return Err(AdminError::NoSuchEndpoint(format!("{m} {p}"))),
        };
        Ok(ep)
    }

    /// The endpoint's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Options => "Options",
            Self::Health => "Health",
            Self::Metrics => "Metrics",
            Self::GetClusterHealth => "GetClusterHealth",
            Self::GetClusterStatus => "GetClusterStatus",
            Self::ConnectClusterNodes => "ConnectClusterNodes",
            Self::GetClusterLayout => "GetClusterLayout",
            Self::UpdateClusterLayout => "UpdateClusterLayout",
            Self::ApplyClusterLayout => "ApplyClusterLayout",
            Self::RevertClusterLayout => "RevertClusterLayout",
            Self::ListKeys => "ListKeys",
            Self::GetKeyInfo { .. } => "GetKeyInfo",
            Self::CreateKey => "CreateKey",
            Self::ImportKey => "ImportKey",
            Self::UpdateKey { .. } => "UpdateKey",
            Self::DeleteKey { .. } => "DeleteKey",
            Self::ListBuckets => "ListBuckets",
            Self::GetBucketInfo { .. } => "GetBucketInfo",
            Self::CreateBucket => "CreateBucket",
            Self::UpdateBucket { .. } => "UpdateBucket",
            Self::DeleteBucket { .. } => "DeleteBucket",
            Self::BucketAllowKey => "BucketAllowKey",
            Self::BucketDenyKey => "BucketDenyKey",
            Self::GlobalAliasBucket { .. } => "GlobalAliasBucket",
            Self::GlobalUnaliasBucket { .. } => "GlobalUnaliasBucket",
            Self::LocalAliasBucket { .. } => "LocalAliasBucket",
            Self::LocalUnaliasBucket { .. } => "LocalUnaliasBucket",
        }
    }

    /// The token it needs.
    pub fn authorization(&self) -> Authorization {
        match self {
            Self::Options | Self::Health => Authorization::None,
            Self::Metrics => Authorization::MetricsToken,
            _ => Authorization::AdminToken,
        }
    }

    /// Whether it reads a request body.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Self::ConnectClusterNodes
                | Self::UpdateClusterLayout
                | Self::ApplyClusterLayout
                | Self::RevertClusterLayout
                | Self::CreateKey
                | Self::ImportKey
                | Self::UpdateKey { .. }
                | Self::CreateBucket
                | Self::UpdateBucket { .. }
                | Self::BucketAllowKey
                | Self::BucketDenyKey
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(m: &str, path: &str, q: &str) -> Result<Endpoint, AdminError> {
        let q = (!q.is_empty()).then_some(q);
        Endpoint::parse(&Method::from_bytes(m.as_bytes()).expect("method"), path, q)
    }

    #[test]
    fn routes() {
        assert_eq!(ep("GET", "/check", "").expect("check"), Endpoint::Health);
        assert_eq!(
            ep("OPTIONS", "/v1/key", "id=a&id=b").expect("o"),
            Endpoint::Options
        );
        assert_eq!(
            ep("GET", "/metrics", "").expect("m").authorization(),
            Authorization::MetricsToken
        );
        assert_eq!(
            ep("GET", "/v1/status", "").expect("s").authorization(),
            Authorization::AdminToken
        );
        assert_eq!(ep("GET", "/v1/key", "").expect("list"), Endpoint::ListKeys);
        assert_eq!(
            ep("GET", "/v1/key", "search=my+key&showSecretKey=true").expect("search"),
            Endpoint::GetKeyInfo {
                key: KeySelector::Search("my key".into()),
                show_secret: true
            }
        );
        assert!(ep("GET", "/v1/key", "id=a&search=b").is_err());
        assert!(ep("GET", "/v1/key", "id=a&showSecretKey=yes").is_err());
        assert!(ep("GET", "/v1/key", "id=a&id=b").is_err());
        assert_eq!(
            ep("POST", "/v1/key", "").expect("create"),
            Endpoint::CreateKey
        );
        assert_eq!(
            ep("POST", "/v1/key", "id=GK1").expect("update"),
            Endpoint::UpdateKey { id: "GK1".into() }
        );
        assert!(matches!(
            ep("POST", "/v1/key", "id=").unwrap_err(),
            AdminError::BadRequest(_)
        ));
        assert!(matches!(
            ep("DELETE", "/v1/key", "").unwrap_err(),
            AdminError::BadRequest(_)
        ));
        assert_eq!(
            ep("GET", "/v1/bucket", "globalAlias=a%2Db").expect("info"),
            Endpoint::GetBucketInfo {
                bucket: BucketSelector::GlobalAlias("a-b".into())
            }
        );
        assert_eq!(
            ep(
                "PUT",
                "/v1/bucket/alias/local",
                "id=i&accessKeyId=k&alias=a"
            )
            .expect("la"),
            Endpoint::LocalAliasBucket {
                id: "i".into(),
                access_key_id: "k".into(),
                alias: "a".into()
            }
        );
        assert!(ep("PUT", "/v1/bucket/alias/local", "id=i&alias=a").is_err());
        assert!(matches!(
            ep("PATCH", "/v1/layout", "").unwrap_err(),
            AdminError::MethodNotAllowed(_)
        ));
        assert!(matches!(
            ep("GET", "/v0/status", "").unwrap_err(),
            AdminError::NoSuchEndpoint(_)
        ));
        assert!(matches!(
            ep("GET", "/v1/nothing", "").unwrap_err(),
            AdminError::NoSuchEndpoint(_)
        ));
        assert!(ep("POST", "/v1/bucket/allow", "")
            .expect("allow")
            .has_body());
        assert!(!ep("GET", "/v1/layout", "").expect("layout").has_body());
    }
}
