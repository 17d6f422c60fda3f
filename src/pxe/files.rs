//! Serving files over HTTP the way firmware and iPXE need: HEAD with the
//! real Content-Length, single and multiple `Range`s (iPXE's `sanboot`
//! reads an ISO in 2-8 KiB ranges), `If-Range`, `ETag` with
//! `If-None-Match`, and `Last-Modified` with `If-Modified-Since`. Reads go
//! off the runtime in 1 MiB chunks.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use bytes::Bytes;

/// Chunk size of file reads.
const CHUNK: u64 = 4 << 20;
/// More ranges than this in one request: the Range header is ignored.
const MAX_RANGES: usize = 64;

/// Inclusive byte ranges, or Err when none is satisfiable (416).
pub type Ranges = Result<Vec<(u64, u64)>, ()>;

/// Parses a `Range` header against a file of `size` bytes. None: no usable
/// header (serve the whole file); Some(Err): nothing satisfiable (416);
/// Some(Ok): inclusive ranges.
pub fn parse_ranges(h: &str, size: u64) -> Option<Ranges> {
    let specs = h.trim().strip_prefix("bytes=")?;
    let mut out = Vec::new();
    let mut any = false;
    for spec in specs.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let range = if a.is_empty() {
            let n: u64 = b.parse().ok()?;
            if n == 0 || size == 0 {
                any = true;
                continue;
            }
            (size.saturating_sub(n), size - 1)
        } else {
            let start: u64 = a.parse().ok()?;
            let end: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().ok()?
            };
            if end < start {
                return None; // syntactically invalid: ignore the header
            }
            any = true;
            if start >= size {
                continue;
            }
            (start, end.min(size - 1))
        };
        any = true;
        out.push(range);
        if out.len() > MAX_RANGES {
            return None;
        }
    }
    if !any {
        return None;
    }
    Some(if out.is_empty() { Err(()) } else { Ok(out) })
}

/// HTTP date (IMF-fixdate).
pub fn http_date(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        Err(_) => "Thu, 01 Jan 1970 00:00:00 GMT".into(),
    }
}

fn parse_http_date(s: &str) -> Option<i64> {
    jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", s.trim())
        .ok()?
        .to_datetime()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second())
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One piece of a response body.
enum Piece {
    Bytes(Bytes),
    /// Inclusive byte range of the file.
    File(u64, u64),
}

fn body(file: Arc<std::fs::File>, pieces: Vec<Piece>) -> Body {
    let queue: std::collections::VecDeque<Piece> = pieces.into();
    let stream = futures_util::stream::unfold((file, queue), |(file, mut queue)| async move {
        match queue.pop_front()? {
            Piece::Bytes(b) => Some((Ok(b), (file, queue))),
            Piece::File(pos, end) => {
                let len = (end - pos + 1).min(CHUNK) as usize;
                let f = file.clone();
                let work = move || {
                    let mut buf = vec![0u8; len];
                    let mut got = 0;
                    while got < len {
                        match f.read_at(&mut buf[got..], pos + got as u64)? {
                            0 => {
                                return Err(std::io::Error::new(
                                    std::io::ErrorKind::UnexpectedEof,
                                    "the file shrank while being served",
                                ))
                            }
                            n => got += n,
                        }
                    }
                    Ok(buf)
                };
                // On the multi-threaded runtime the read runs in place (other
                // tasks move to another worker), which saves a thread handoff
                // per chunk; elsewhere it goes to the blocking pool.
                let read = if tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread
                {
                    tokio::task::block_in_place(work)
                } else {
                    tokio::task::spawn_blocking(work)
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                };
                match read {
                    Ok(buf) => {
                        let next = pos + len as u64;
                        if next <= end {
                            queue.push_front(Piece::File(next, end));
                        }
                        Some((Ok(Bytes::from(buf)), (file, queue)))
                    }
                    // The error ends the body (the client sees a short read).
                    Err(e) => Some((Err(e), (file, Default::default()))),
                }
            }
        }
    });
    Body::from_stream(stream)
}

fn response(status: StatusCode) -> axum::http::response::Builder {
    Response::builder().status(status)
}

/// Serves `path` (already checked to be a file the caller may serve).
pub async fn serve(
    path: &Path,
    method: &Method,
    headers: &HeaderMap,
    content_type: &str,
) -> Response<Body> {
    let path = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path)?;
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a file",
            ));
        }
        Ok((f, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
    })
    .await;
    let (file, size, mtime) = match opened {
        Ok(Ok(x)) => x,
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let etag = format!(
        "\"{size:x}-{:x}\"",
        mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let last_modified = http_date(mtime);
    let hv = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let base = |status: StatusCode| {
        response(status)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, &etag)
            .header(header::LAST_MODIFIED, &last_modified)
    };
    // Conditional GET (RFC 9110 §13.2.2): If-None-Match wins over If-Modified-Since.
    let not_modified = match (hv(header::IF_NONE_MATCH), hv(header::IF_MODIFIED_SINCE)) {
        (Some(inm), _) => inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        }),
        (None, Some(ims)) => parse_http_date(ims).is_some_and(|d| secs(mtime) <= d),
        _ => false,
    };
    if not_modified {
        return base(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let range_applies = match hv(header::IF_RANGE) {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) => parse_http_date(v) == Some(secs(mtime)),
    };
    let ranges = hv(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|r| parse_ranges(r, size));
    let head = method == Method::HEAD;
    let file = Arc::new(file);
    match ranges {
        None => {
            let b = if head || size == 0 {
                Body::empty()
            } else {
                body(file, vec![Piece::File(0, size - 1)])
            };
            base(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_LENGTH, size)
                .body(b)
                .unwrap_or_default()
        }
        Some(Err(())) => base(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{size}"))
            .header(header::CONTENT_LENGTH, 0)
            .body(Body::empty())
            .unwrap_or_default(),
        Some(Ok(r)) if r.len() == 1 => {
            let (a, b) = r[0];
            base(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{size}"))
                .header(header::CONTENT_LENGTH, b - a + 1)
                .body(if head {
                    Body::empty()
                } else {
                    body(file, vec![Piece::File(a, b)])
                })
                .unwrap_or_default()
        }
        Some(Ok(r)) => {
            let boundary = format!("rackboot-{:016x}", u64::from_le_bytes(rand8()));
            let mut pieces = Vec::new();
            let mut len = 0u64;
            for (i, (a, b)) in r.iter().enumerate() {
                let part = format!(
                    "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" }
                );
                len += part.len() as u64 + (b - a + 1);
                pieces.push(Piece::Bytes(Bytes::from(part)));
                pieces.push(Piece::File(*a, *b));
            }
            let end = format!("\r\n--{boundary}--\r\n");
            len += end.len() as u64;
            pieces.push(Piece::Bytes(Bytes::from(end)));
            base(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                        .unwrap_or(HeaderValue::from_static("multipart/byteranges")),
                )
                .header(header::CONTENT_LENGTH, len)
                .body(if head {
                    Body::empty()
                } else {
                    body(file, pieces)
                })
                .unwrap_or_default()
        }
    }
}

fn rand8() -> [u8; 8] {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b
}

/// A short text response.
/// Why a boot file request gets no file (plain-text answers for iPXE and
/// people, not Ironic's error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    NotFound,
    Forbidden,
    /// The image's source could not be staged.
    BadGateway,
}

impl Refusal {
    /// The answer, with `text` as its body.
    pub fn text(self, text: &str) -> Response<Body> {
        plain(
            match self {
                Refusal::BadRequest => StatusCode::BAD_REQUEST,
                Refusal::NotFound => StatusCode::NOT_FOUND,
                Refusal::Forbidden => StatusCode::FORBIDDEN,
                Refusal::BadGateway => StatusCode::BAD_GATEWAY,
            },
            text,
        )
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    response(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        let size = 1000;
        let cases: Vec<(&str, Option<Ranges>)> = vec![
            ("bytes=0-99", Some(Ok(vec![(0, 99)]))),
            ("bytes=900-", Some(Ok(vec![(900, 999)]))),
            ("bytes=-100", Some(Ok(vec![(900, 999)]))),
            ("bytes=-5000", Some(Ok(vec![(0, 999)]))),
            ("bytes=990-2000", Some(Ok(vec![(990, 999)]))),
            (
                "bytes=0-0, 10-19 ,-1",
                Some(Ok(vec![(0, 0), (10, 19), (999, 999)])),
            ),
            ("bytes=1000-", Some(Err(()))),
            ("bytes=2000-3000", Some(Err(()))),
            ("bytes=-0", Some(Err(()))),
            ("bytes=5-1", None),
            ("bytes=a-b", None),
            ("items=0-1", None),
            ("bytes=", None),
        ];
        for (h, want) in cases {
            assert_eq!(parse_ranges(h, size), want, "{h}");
        }
        let many = format!("bytes={}", vec!["0-0"; 65].join(","));
        assert_eq!(
            parse_ranges(&many, size),
            None,
            "too many ranges: whole file"
        );
        assert_eq!(parse_ranges("bytes=0-", 0), Some(Err(())));
    }

    #[test]
    fn http_dates_round_trip() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
