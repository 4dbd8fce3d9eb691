//! [`AdminCtx`]: what the admin server hands each handler, and the JSON
//! helpers they share. It lives below the handlers and the server, so no
//! handler imports the module that dispatches to it.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use garage_model::garage::Garage;

use super::error::AdminError;
use crate::http::{empty, json, ResBody};

/// What the binary was built as, for `GET /v1/status`.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    /// The version (`garageVersion`).
    pub version: String,
    /// The Cargo features of the binary (`garageFeatures`).
    pub features: Vec<String>,
    /// The compiler that built it (`rustVersion`), when known.
    pub rust_version: String,
}

/// The node and its build, shared by every handler.
pub struct AdminCtx {
    /// The node.
    pub garage: Arc<Garage>,
    /// The build.
    pub build: BuildInfo,
}

/// Parses a JSON body; any syntax or type error is a 400 naming the problem.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body)
        .map_err(|e| AdminError::BadRequest(format!("invalid JSON body: {e}")))
}

/// As [`parse_body`], but an empty body is `T::default()`.
pub fn parse_body_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

/// A 200 JSON answer.
pub fn ok_json<T: Serialize>(v: &T) -> Result<Response<ResBody>, AdminError> {
    Ok(json(StatusCode::OK, v)?)
}

/// A 204 answer.
pub fn no_content() -> Response<ResBody> {
    empty(StatusCode::NO_CONTENT)
}

/// A key's permissions on a bucket, as every key and bucket endpoint
/// writes them (missing fields are false).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, Serialize)]
pub struct ApiBucketKeyPerm {
    /// May read.
    #[serde(default)]
    pub read: bool,
    /// May write.
    #[serde(default)]
    pub write: bool,
    /// Owns the bucket.
    #[serde(default)]
    pub owner: bool,
}

impl From<garage_model::permission::BucketKeyPerm> for ApiBucketKeyPerm {
    fn from(p: garage_model::permission::BucketKeyPerm) -> Self {
        Self {
            read: p.allow_read,
            write: p.allow_write,
            owner: p.allow_owner,
        }
    }
}
