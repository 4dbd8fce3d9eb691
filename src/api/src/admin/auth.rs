//! Bearer-token checks of the admin API.
//!
//! Only SHA-256 digests of the configured tokens are kept, and a presented
//! token is compared digest to digest in constant time, so neither the
//! comparison's duration nor the token's length leaks.

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::AdminError;
use super::router::Authorization;

/// The configured tokens (`None`: not set).
pub struct AdminTokens {
    admin: Option<[u8; 32]>,
    metrics: Option<[u8; 32]>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl AdminTokens {
    /// Tokens as resolved from the config (`admin_token[_file]`,
    /// `metrics_token[_file]`, their environment and CLI overrides).
    pub fn new(admin: Option<&str>, metrics: Option<&str>) -> Self {
        Self {
            admin: admin.map(digest),
            metrics: metrics.map(digest),
        }
    }

    /// Whether admin endpoints are enabled.
    pub fn admin_enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// Checks the `Authorization: Bearer <token>` header for `auth`. Admin
    /// endpoints are refused outright when no admin token is configured;
    /// `/metrics` is open when no metrics token is configured.
    pub fn check(&self, auth: Authorization, headers: &HeaderMap) -> Result<(), AdminError> {
        let expected = match auth {
            Authorization::None => return Ok(()),
            Authorization::MetricsToken => match &self.metrics {
                None => return Ok(()),
                Some(d) => d,
            },
            Authorization::AdminToken => match &self.admin {
                None => {
                    return Err(AdminError::Forbidden(
                        "no admin token is configured (admin.admin_token): \
                         the admin API is disabled"
                            .into(),
                    ))
                }
                Some(d) => d,
            },
        };
        let header = headers.get(AUTHORIZATION).ok_or_else(|| {
            AdminError::Forbidden("an authorization token must be provided".into())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                AdminError::Forbidden("the Authorization header must be `Bearer <token>`".into())
            })?;
        if same(&digest(token), expected) {
            Ok(())
        } else {
            Err(AdminError::Forbidden(
                "invalid authorization token provided".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(AUTHORIZATION, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn tokens() {
        let t = AdminTokens::new(Some("s3cret"), None);
        let admin = Authorization::AdminToken;
        assert!(t.check(admin, &headers(Some("Bearer s3cret"))).is_ok());
        assert!(t.check(admin, &headers(Some("bearer  s3cret "))).is_ok());
        assert!(t.check(admin, &headers(Some("Bearer s3cre"))).is_err());
        assert!(t.check(admin, &headers(Some("Basic s3cret"))).is_err());
        assert!(t.check(admin, &headers(Some("s3cret"))).is_err());
        assert!(t.check(admin, &headers(None)).is_err());
        // No metrics token: /metrics is open; health never needs one.
        assert!(t.check(Authorization::MetricsToken, &headers(None)).is_ok());
        assert!(t.check(Authorization::None, &headers(None)).is_ok());

        let t = AdminTokens::new(None, Some("m"));
        assert!(!t.admin_enabled());
        let e = t
            .check(admin, &headers(Some("Bearer m")))
            .expect_err("disabled");
        assert!(e.to_string().contains("disabled"), "{e}");
        assert!(t
            .check(Authorization::MetricsToken, &headers(None))
            .is_err());
        assert!(t
            .check(Authorization::MetricsToken, &headers(Some("Bearer m")))
            .is_ok());
    }
}
