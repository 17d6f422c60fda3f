//! Image references: parsing and reachability checks (`crate::redact`
//! makes them safe to show).
//!
//! Images are named by `http://`, `https://` or `file://` URLs or absolute
//! paths. `cache` stages them for network boots.

pub mod bootiso;
pub mod cache;
pub mod configdrive;
pub mod fat;
pub mod iso9660;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http(String),
    File(PathBuf),
}

impl Source {
    /// Parses a reference; the error says what is accepted.
    pub fn parse(s: &str) -> Result<Source, String> {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            if s.len() <= "https://".len() {
                return Err("the URL has no host".into());
            }
            Ok(Source::Http(s.to_string()))
        } else if let Some(path) = s.strip_prefix("file://") {
            if path.starts_with('/') {
                Ok(Source::File(PathBuf::from(path)))
            } else {
                Err("a file:// URL needs an absolute path (file:///srv/images/x)".into())
            }
        } else if s.starts_with('/') {
            Ok(Source::File(PathBuf::from(s)))
        } else {
            Err("expected an http://, https:// or file:// URL or an absolute path".into())
        }
    }
}

/// Checks that an image can be read: an HTTP HEAD (or a one-byte GET when
/// HEAD is refused) answered 2xx, or a readable regular file. The error says
/// why not.
pub async fn check_reachable(
    http: &reqwest::Client,
    reference: &str,
    timeout: Duration,
    allowed: &[PathBuf],
) -> Result<(), String> {
    match Source::parse(reference)? {
        Source::File(path) => {
            // From here on only the resolved path is used, so a symlink
            // swapped in after the check cannot point elsewhere.
            let path = check_allowed(&path, allowed).await?;
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if !meta.is_file() {
                return Err(format!("{} is not a regular file", path.display()));
            }
            tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Ok(())
        }
        Source::Http(url) => {
            let send = |req: reqwest::RequestBuilder| async move {
                match tokio::time::timeout(timeout, req.timeout(timeout).send()).await {
                    Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
                    Ok(Err(e)) => Err(describe(&e)),
                    Ok(Ok(r)) => Ok(r.status()),
                }
            };
            let mut status = send(http.head(&url)).await?;
            if status == reqwest::StatusCode::METHOD_NOT_ALLOWED
                || status == reqwest::StatusCode::NOT_IMPLEMENTED
            {
                status = send(http.get(&url).header("Range", "bytes=0-0")).await?;
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the server answered HTTP {status}"))
            }
        }
    }
}

/// Refuses file paths outside `allowed` — before touching the file system,
/// so the API cannot be used to probe which files exist — and again after
/// resolving symlinks.
async fn check_allowed(path: &Path, allowed: &[PathBuf]) -> Result<PathBuf, String> {
    let outside = || {
        format!(
            "{} is outside [conductor] file_url_allowed_paths ({}); put the image under one of them",
            path.display(),
            allowed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    };
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!(
            "{} must not contain . or .. components",
            path.display()
        ));
    }
    if !allowed.iter().any(|a| path.starts_with(a)) {
        return Err(outside());
    }
    let real = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for a in allowed {
        if let Ok(real_allowed) = tokio::fs::canonicalize(a).await {
            if real.starts_with(&real_allowed) {
                return Ok(real);
            }
        }
    }
    Err(outside())
}

fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_builder() {
        "the URL is invalid".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if !last.is_empty() {
        msg.push_str(&format!(" ({last})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        assert_eq!(
            Source::parse("http://h/x"),
            Ok(Source::Http("http://h/x".into()))
        );
        assert_eq!(
            Source::parse("HTTPS://h/x"),
            Ok(Source::Http("HTTPS://h/x".into()))
        );
        assert_eq!(
            Source::parse("file:///srv/x"),
            Ok(Source::File("/srv/x".into()))
        );
        assert_eq!(Source::parse("/srv/x"), Ok(Source::File("/srv/x".into())));
        for bad in [
            "",
            "x",
            "ftp://h/x",
            "file://relative",
            "http://",
            "glance-id-123",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = vec![dir.path().to_path_buf()];
        let f = dir.path().join("blank");
        std::fs::write(&f, b"").unwrap();
        let http = reqwest::Client::new();
        let t = Duration::from_secs(1);
        let check = |r: String| {
            let (http, allowed) = (http.clone(), allowed.clone());
            async move { check_reachable(&http, &r, t, &allowed).await }
        };
        assert!(
            check(f.display().to_string()).await.is_ok(),
            "empty file is fine"
        );
        assert!(check(format!("file://{}", f.display())).await.is_ok());
        let missing = check(dir.path().join("nope").display().to_string())
            .await
            .unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let dir_err = check(sub.display().to_string()).await.unwrap_err();
        assert!(dir_err.contains("not a regular file"), "{dir_err}");
        // Outside the allow-list: refused without saying whether it exists.
        for outside in ["/etc/passwd", "/nonexistent/x"] {
            let e = check(outside.to_string()).await.unwrap_err();
            assert!(
                e.contains("outside [conductor] file_url_allowed_paths"),
                "{e}"
            );
        }
        let dotdot = check(format!("{}/../../etc/passwd", dir.path().display()))
            .await
            .unwrap_err();
        assert!(dotdot.contains(".. components"), "{dotdot}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let e = check(link.display().to_string()).await.unwrap_err();
        assert!(e.contains("outside"), "symlinks out are refused: {e}");
    }
}
