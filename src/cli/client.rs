//! The HTTP client that talks to the appliance's Ironic-compatible API:
//! endpoint and credentials from the environment, one request helper that
//! turns Ironic error bodies into operator messages, listing pagination and
//! waiting for a provision state.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::args::Conn;
use super::output::show_value;
use crate::model::states::{expected_end_state, State};

/// A client error: what went wrong, for the operator.
pub(super) struct Failure(pub(super) String);

pub(super) type Res<T> = Result<T, Failure>;

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
    pub(super) json: bool,
}

fn ironic_message(body: &str) -> Option<String> {
    let outer: Value = serde_json::from_str(body).ok()?;
    let inner: Value = serde_json::from_str(outer["error_message"].as_str()?).ok()?;
    inner["faultstring"].as_str().map(str::to_string)
}

impl Client {
    pub(super) fn new(conn: &Conn) -> Res<Client> {
        let base = conn
            .endpoint
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:6385".into());
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        let auth = match std::env::var("OS_AUTH_TYPE").ok().as_deref() {
            None | Some("none") | Some("noauth") => None,
            Some("http_basic") => {
                let user = std::env::var("OS_USERNAME")
                    .map_err(|_| Failure("OS_AUTH_TYPE=http_basic needs OS_USERNAME".into()))?;
                let pass = std::env::var("OS_PASSWORD")
                    .map_err(|_| Failure("OS_AUTH_TYPE=http_basic needs OS_PASSWORD".into()))?;
                Some((user, pass))
            }
            Some(other) => {
                return Err(Failure(format!(
                    "OS_AUTH_TYPE={other} is not supported; use none or http_basic"
                )))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            auth,
            json: conn.json,
        })
    }

    /// Sends one request; returns the status and the body text.
    async fn send(
        &self,
        method: &reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Res<(reqwest::StatusCode, String)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-OpenStack-Ironic-API-Version", "1.115")
            .header("Accept", "application/json");
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure(format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Res<Value> {
        let (status, text) = self.send(&method, path, body).await?;
        if !status.is_success() {
            let msg = ironic_message(&text).unwrap_or(text);
            return Err(Failure(format!("{msg} (HTTP {})", status.as_u16())));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| Failure(format!("unreadable answer from {method} {path}: {e}")))
    }

    /// GET that takes 404 as "not there" (`Ok(None)`) rather than an error.
    pub(super) async fn find(&self, path: &str) -> Res<Option<Value>> {
        let method = reqwest::Method::GET;
        let (status, text) = self.send(&method, path, None).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let msg = ironic_message(&text).unwrap_or(text);
            return Err(Failure(format!("{msg} (HTTP {})", status.as_u16())));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Failure(format!("unreadable answer from GET {path}: {e}")))
    }

    pub(super) async fn get(&self, path: &str) -> Res<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

impl Client {
    /// Follows `next` links to collect a whole listing.
    pub(super) async fn list_all(&self, path: &str, key: &str) -> Res<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let page = self.get(&p).await?;
            out.extend(page[key].as_array().cloned().unwrap_or_default());
            if let Some(n) = page["next"].as_str() {
                next = n.find("/v1/").map(|i| n[i..].to_string());
            }
        }
        Ok(out)
    }

    pub(super) async fn wait(&self, node: &str, target: &str, limit: Option<u64>) -> Res<()> {
        let Some(expected) = expected_end_state(target) else {
            return Ok(());
        };
        let deadline = limit
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s));
        eprintln!("Waiting for provision state {expected} on node(s) {node}");
        loop {
            let n = self.get(&format!("/v1/nodes/{node}")).await?;
            let state = n["provision_state"].as_str().unwrap_or("");
            if state == expected.as_str() {
                return Ok(());
            }
            if state == "error" || state.ends_with(" failed") {
                return Err(Failure(format!(
                    "Node {node} failed to reach state {expected}. It's in state {state}. Error: {}",
                    show_value(&n["last_error"])
                )));
            }
            if n["target_provision_state"].is_null()
                && state.parse::<State>().is_ok_and(|s| s.is_stable())
            {
                return Err(Failure(format!(
                    "Node {node} reached unexpected stable state {state} while waiting for {expected}. Error: {}",
                    show_value(&n["last_error"])
                )));
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(Failure(format!(
                    "Node {node} did not reach {expected} within {}s",
                    limit.unwrap_or(0)
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
