//! The only place HTTP status codes appear: every inner error becomes
//! Ironic's error body, `{"error_message": "{\"faultcode\": …}"}`, which the
//! `baremetal` CLI parses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::conductor;
use crate::drivers::ChoiceError;
use crate::store;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_ACCEPTABLE, message)
    }
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The request body is larger than the {limit} bytes allowed ([api] max_body_bytes)."
            ),
        )
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }
    /// An internal failure: the full text (a database message, a file
    /// path) goes to the log under a request id; the client sees only the
    /// id (dropshot's external/internal split).
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        let id = format!("req-{}", uuid::Uuid::new_v4());
        tracing::error!(request_id = %id, error = %message, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("An internal error occurred; the appliance log has the details under request id {id}."),
        )
    }
}

/// Ironic's double-encoded error body.
pub fn error_body(status: StatusCode, message: &str) -> String {
    let fault = if status.is_server_error() {
        "Server"
    } else {
        "Client"
    };
    let inner = serde_json::json!({"faultcode": fault, "faultstring": message, "debuginfo": null})
        .to_string();
    serde_json::json!({ "error_message": inner }).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, error_body(self.status, &self.message)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Baremetal API\""),
            );
        }
        resp
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        use store::Error as E;
        match e {
            E::NodeNotFound(_) | E::PortNotFound(_) | E::RecordNotFound { .. } => {
                ApiError::not_found(e.to_string())
            }
            E::DuplicateName(_)
            | E::DuplicateNodeUuid(_)
            | E::DuplicatePortUuid(_)
            | E::DuplicateMac(_)
            | E::DuplicateRecord { .. }
            | E::InstanceAssociated { .. }
            | E::Conflict { .. } => ApiError::conflict(e.to_string()),
            E::Database(_) | E::Corrupt(_) => ApiError::internal(e),
        }
    }
}

impl From<ChoiceError> for ApiError {
    fn from(e: ChoiceError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<conductor::Error> for ApiError {
    fn from(e: conductor::Error) -> Self {
        use conductor::Error as E;
        let msg = e.to_string();
        match e {
            E::Store(s) => s.into(),
            E::Driver(d) => d.into(),
            E::NodeLocked { .. } | E::InvalidState(_) | E::NodeAssociated { .. } => {
                ApiError::conflict(msg)
            }
            E::InvalidStateRequested { .. }
            | E::NodeInMaintenance { .. }
            | E::Invalid(_)
            | E::Refused(_) => ApiError::bad_request(msg),
            E::NodeProtected { .. } => ApiError::new(StatusCode::FORBIDDEN, msg),
            E::TraitNotFound { .. } => ApiError::not_found(msg),
            E::NoFreeWorker | E::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_body_carries_no_internal_text() {
        let inner = "disk I/O error writing /var/lib/rackboot/rackboot.db-wal";
        for e in [
            ApiError::from(store::Error::Database(inner.into())),
            ApiError::from(conductor::Error::Store(store::Error::Corrupt(inner.into()))),
            ApiError::internal(inner),
        ] {
            assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
            let body = error_body(e.status, &e.message);
            assert!(
                !body.contains("disk") && !body.contains("/var/lib"),
                "{body}"
            );
            assert!(body.contains("request id req-"), "{body}");
        }
        // A lost update is the client's to retry, with the reason.
        let conflict = ApiError::from(store::Error::Conflict {
            node: uuid::Uuid::nil(),
            expected: 1,
            found: 2,
        });
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert!(conflict.message.contains("retry"));
    }

    #[test]
    fn body_is_double_encoded_like_ironics() {
        let body = error_body(StatusCode::NOT_FOUND, "Node x could not be found.");
        let outer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let inner: serde_json::Value =
            serde_json::from_str(outer["error_message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["faultcode"], "Client");
        assert_eq!(inner["faultstring"], "Node x could not be found.");
        assert!(inner["debuginfo"].is_null());
        let server: serde_json::Value =
            serde_json::from_str(&error_body(StatusCode::INTERNAL_SERVER_ERROR, "x")).unwrap();
        assert!(server["error_message"]
            .as_str()
            .unwrap()
            .contains("\"Server\""));
    }
}
