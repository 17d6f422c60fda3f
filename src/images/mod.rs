//! Image references: parsing, redaction for messages, reachability checks.
//!
//! Images are named by `http://`, `https://` or `file://` URLs or absolute
//! paths. The download cache arrives with the boot services; for now the
//! appliance checks that a reference can be read.

use std::path::PathBuf;
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

/// A reference safe to put in messages: user info and secret-looking query
/// values are masked.
pub fn redact(s: &str) -> String {
    let mut out = s.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let auth_end = out[rest_start..]
            .find('/')
            .map(|i| rest_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[rest_start..auth_end].rfind('@') {
            out.replace_range(rest_start..rest_start + at, "******");
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if ["password", "secret", "token", "signature", "key"]
                        .iter()
                        .any(|w| k.to_ascii_lowercase().contains(w)) =>
                {
                    format!("{k}=******")
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", masked.join("&"));
    }
    out
}

/// Checks that an image can be read: an HTTP HEAD (or a one-byte GET when
/// HEAD is refused) answered 2xx, or a readable regular file. The error says
/// why not.
pub async fn check_reachable(
    http: &reqwest::Client,
    reference: &str,
    timeout: Duration,
) -> Result<(), String> {
    match Source::parse(reference)? {
        Source::File(path) => {
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

    #[test]
    fn redact_cases() {
        let cases = [
            ("http://h/x", "http://h/x"),
            ("http://user:pw@h/x", "http://******@h/x"),
            ("http://h/x?token=abc&a=1", "http://h/x?token=******&a=1"),
            (
                "http://h/x?X-Amz-Signature=s",
                "http://h/x?X-Amz-Signature=******",
            ),
            ("/srv/img", "/srv/img"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want);
        }
    }

    #[tokio::test]
    async fn files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("blank");
        std::fs::write(&f, b"").unwrap();
        let http = reqwest::Client::new();
        let t = Duration::from_secs(1);
        assert!(
            check_reachable(&http, f.to_str().unwrap(), t).await.is_ok(),
            "empty file is fine"
        );
        assert!(
            check_reachable(&http, &format!("file://{}", f.display()), t)
                .await
                .is_ok()
        );
        let missing = check_reachable(&http, "/nonexistent/rackboot-img", t)
            .await
            .unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        let dir_err = check_reachable(&http, dir.path().to_str().unwrap(), t)
            .await
            .unwrap_err();
        assert!(dir_err.contains("not a regular file"), "{dir_err}");
    }
}
