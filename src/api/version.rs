//! Microversion negotiation: `X-OpenStack-Ironic-API-Version` (or
//! `OpenStack-API-Version: baremetal 1.N`), absent → the minimum, `latest` →
//! the maximum; the range headers go on every response.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub const MIN_MINOR: u32 = 1;
/// The newest microversion advertised (python-ironicclient 6.3's own maximum,
/// so the CLI never renegotiates).
pub const MAX_MINOR: u32 = 115;

/// The microversion a request is served at (the minor number of 1.N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32);

impl Version {
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= minor
    }
}

/// Reads the requested version; `Ok(None)` when none was sent.
pub fn requested(headers: &HeaderMap) -> Result<Option<Version>, ApiError> {
    let raw = if let Some(v) = headers.get("x-openstack-ironic-api-version") {
        Some(v.to_str().unwrap_or("").trim().to_string())
    } else {
        headers
            .get("openstack-api-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',').map(str::trim).find_map(|part| {
                    part.strip_prefix("baremetal ")
                        .map(|s| s.trim().to_string())
                })
            })
    };
    let Some(raw) = raw else { return Ok(None) };
    if raw.eq_ignore_ascii_case("latest") {
        return Ok(Some(Version(MAX_MINOR)));
    }
    let parsed = raw
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    let Some((major, minor)) = parsed else {
        return Err(ApiError::not_acceptable(format!(
            "Invalid value for X-OpenStack-Ironic-API-Version header: {raw}"
        )));
    };
    if major != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&minor) {
        return Err(ApiError::not_acceptable(format!(
            "Version {raw} was requested but the minor version is not supported by this service. The supported version range is: [1.{MIN_MINOR}, 1.{MAX_MINOR}]."
        )));
    }
    Ok(Some(Version(minor)))
}

fn add_range_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        "x-openstack-ironic-api-minimum-version",
        HeaderValue::from_static("1.1"),
    );
    h.insert(
        "x-openstack-ironic-api-maximum-version",
        HeaderValue::from_static("1.115"),
    );
}

/// Negotiates the version, stores it in the request, stamps the response.
pub async fn negotiate(mut req: Request, next: Next) -> Response {
    match requested(req.headers()) {
        Err(e) => {
            let mut resp = e.into_response();
            add_range_headers(&mut resp);
            resp
        }
        Ok(v) => {
            let version = v.unwrap_or(Version(MIN_MINOR));
            req.extensions_mut().insert(version);
            let mut resp = next.run(req).await;
            add_range_headers(&mut resp);
            if let Ok(value) = HeaderValue::from_str(&format!("1.{}", version.0)) {
                resp.headers_mut()
                    .insert("x-openstack-ironic-api-version", value);
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn cases() {
        let ok = [
            ("x-openstack-ironic-api-version", "1.17", Some(17)),
            ("x-openstack-ironic-api-version", "latest", Some(MAX_MINOR)),
            ("x-openstack-ironic-api-version", "1.115", Some(115)),
            ("openstack-api-version", "baremetal 1.31", Some(31)),
            ("openstack-api-version", "compute 2.1", None),
        ];
        for (name, value, want) in ok {
            assert_eq!(
                requested(&with(name, value)).unwrap().map(|v| v.0),
                want,
                "{value}"
            );
        }
        for bad in ["1.200", "2.1", "1.0", "one", "1.x", ""] {
            let err = requested(&with("x-openstack-ironic-api-version", bad)).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::NOT_ACCEPTABLE, "{bad}");
        }
        assert_eq!(requested(&HeaderMap::new()).unwrap(), None);
    }
}
