//! Authentication: none (loopback only, enforced by the config) or HTTP basic
//! against an htpasswd file of bcrypt entries. A handler that takes a
//! [`Caller`] is authenticated; the signature says so.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;

use super::error::ApiError;
use super::AppState;

/// Who made a request (`None` without authentication).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Option<String>,
}

/// Why an htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read htpasswd file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("htpasswd file {path} line {line}: {why}")]
    Bad {
        path: String,
        line: usize,
        why: String,
    },
}

/// Verified-credential cache size and lifetime: bcrypt is deliberately slow,
/// so a CLI making ten requests pays for it once.
const CACHE_MAX: usize = 1024;
const CACHE_TTL: Duration = Duration::from_secs(300);
/// bcrypt verifications running at once.
const BCRYPT_AT_ONCE: usize = 2;

/// The users allowed in, and a cache of recent successful checks.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Keyed by the whole header: a verified header maps to its user.
    cache: Mutex<HashMap<String, (String, Instant)>>,
    /// bcrypt checks at once: each costs ~50 ms of CPU by design, so
    /// unauthenticated floods must not take every core.
    verifying: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, Error> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: p.clone(),
            source,
        })?;
        Htpasswd::parse(&text, &p)
    }

    pub fn parse(text: &str, path: &str) -> Result<Htpasswd, Error> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::Bad {
                path: path.to_string(),
                line: i + 1,
                why: why.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                return Err(bad(
                    "only bcrypt entries are supported (create them with: htpasswd -B FILE USER)",
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(Error::Bad {
                path: path.to_string(),
                line: 0,
                why: "no users".into(),
            });
        }
        Ok(Htpasswd {
            users,
            cache: Mutex::new(HashMap::new()),
            verifying: std::sync::Arc::new(tokio::sync::Semaphore::new(BCRYPT_AT_ONCE)),
        })
    }

    /// The user of a recently verified `Authorization` header, if any.
    pub fn cached(&self, header: &str) -> Option<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(header) {
            Some((user, at)) if at.elapsed() < CACHE_TTL => Some(user.clone()),
            Some(_) => {
                cache.remove(header);
                None
            }
            None => None,
        }
    }

    /// Checks an `Authorization` header value; returns the user.
    pub fn check(&self, header: &str) -> Option<String> {
        if let Some(user) = self.cached(header) {
            return Some(user);
        }
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user)?;
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return None;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(header.to_string(), (user.to_string(), Instant::now()));
        Some(user.to_string())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(htpasswd) = &state.htpasswd else {
            return Ok(Caller { user: None });
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?
            .to_string();
        let user = match htpasswd.cached(&header) {
            Some(u) => Some(u),
            None => {
                // The permit moves into the blocking work, so a client that
                // hangs up cannot free it while bcrypt still runs.
                let slot = htpasswd
                    .verifying
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(ApiError::internal)?;
                let htpasswd = htpasswd.clone();
                tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    htpasswd.check(&header)
                })
                .await
                .map_err(ApiError::internal)?
            }
        };
        match user {
            Some(u) => Ok(Caller { user: Some(u) }),
            None => {
                tracing::warn!("rejected API request: bad or unknown credentials");
                Err(ApiError::unauthorized())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_entries_only() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# users\nadmin:{hash}\n"), "f").unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert_eq!(
            h.check(&header("admin", "s3cret")).as_deref(),
            Some("admin")
        );
        assert_eq!(
            h.check(&header("admin", "s3cret")).as_deref(),
            Some("admin"),
            "cached"
        );
        assert_eq!(h.check(&header("admin", "wrong")), None);
        assert_eq!(h.check(&header("root", "s3cret")), None);
        assert_eq!(h.check("Bearer x"), None);
        assert!(Htpasswd::parse("admin:$apr1$abc$def\n", "f").is_err());
        assert!(Htpasswd::parse("admin\n", "f").is_err());
        assert!(Htpasswd::parse("", "f").is_err());
    }
}
