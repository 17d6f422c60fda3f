//! The Redfish HTTP client: one kept connection per BMC (and credentials),
//! a session token where the BMC has a SessionService and basic
//! authentication where it has not, `If-Match` on PATCH with sushy's 412
//! recovery, task monitors, and errors that say what the BMC said.
//!
//! Every request is bounded: a connect and a read deadline, a cap on calls in
//! flight over all BMCs and per BMC, and a cap on the size of an answer.
//! Connection failures (the BMC did not accept the connection) are retried
//! `connection_attempts` times, as Ironic does; nothing else is, since a
//! POST that timed out may have been carried out.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::drivers::{Error, Result};

/// Limits of the Redfish client, from `[conductor] redfish_*`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a TCP (and TLS) connection to a BMC may take.
    pub connect_timeout: Duration,
    /// How long a BMC may take to answer one request.
    pub read_timeout: Duration,
    /// Requests in flight at once, over all BMCs.
    pub max_concurrent: usize,
    /// Requests in flight at once to one BMC.
    pub per_bmc: usize,
    /// BMC connections (with their sessions) kept; the least recently used
    /// is logged out and dropped beyond this.
    pub cache_size: usize,
    /// Tries of a request whose connection the BMC did not accept.
    pub connection_attempts: u32,
    /// Wait between those tries.
    pub connection_retry_interval: Duration,
    /// Authentication of nodes without driver_info/redfish_auth_type.
    pub default_auth: AuthType,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_concurrent: 64,
            per_bmc: 2,
            cache_size: 1000,
            connection_attempts: 3,
            connection_retry_interval: Duration::from_secs(2),
            default_auth: AuthType::Auto,
        }
    }
}

/// Largest answer read from a BMC (a System with its inline members is a
/// few tens of KiB).
const MAX_BODY: usize = 4 << 20;

/// How a BMC's server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VerifyCa {
    /// Against the system's roots.
    Yes,
    /// Not at all (self-signed BMC certificates).
    No,
    /// Against the CA certificates in this file, or the files of this directory.
    Path(PathBuf),
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// A session token, falling back to basic when the BMC has no sessions.
    Auto,
    Session,
    Basic,
}

impl AuthType {
    pub fn parse(s: &str) -> Option<AuthType> {
        match s {
            "auto" => Some(AuthType::Auto),
            "session" => Some(AuthType::Session),
            "basic" => Some(AuthType::Basic),
            _ => None,
        }
    }
}

/// Where a BMC is and how to talk to it: what a connection is keyed by.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://authority`, no trailing slash.
    pub base: String,
    /// The service root path, `/redfish/v1/` unless the address has a path.
    pub root: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub verify_ca: VerifyCa,
    pub auth: AuthType,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("root", &self.root)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "******"))
            .field("verify_ca", &self.verify_ca)
            .field("auth", &self.auth)
            .finish()
    }
}

/// A changed password, user or trust setting gets a new connection; the
/// password is kept only as a salted hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    base: String,
    root: String,
    username: Option<String>,
    password: [u8; 32],
    verify_ca: VerifyCa,
    auth: AuthType,
}

impl Key {
    fn of(e: &Endpoint) -> Key {
        let mut h = Sha256::new();
        h.update(e.base.as_bytes());
        h.update([0]);
        h.update(e.password.as_deref().unwrap_or("").as_bytes());
        Key {
            base: e.base.clone(),
            root: e.root.clone(),
            username: e.username.clone(),
            password: h.finalize().into(),
            verify_ca: e.verify_ca.clone(),
            auth: e.auth,
        }
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub location: Option<String>,
    /// The JSON body; `Null` when empty.
    pub body: Value,
    /// `X-Auth-Token` of a session login.
    token: Hidden,
}

/// A value kept out of `Debug` output (a session token).
#[derive(Clone, Default)]
struct Hidden(Option<String>);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(******)"
        } else {
            "None"
        })
    }
}

/// How requests to one BMC are authenticated right now.
#[derive(Debug, Clone, Default)]
enum Auth {
    /// Not decided yet (no request made, or the session was lost).
    #[default]
    Unknown,
    /// `X-Auth-Token`, with the session's URI for the logout.
    Token { token: String, uri: Option<String> },
    /// `Authorization: Basic`, or nothing when no user is set.
    Basic,
}

fn token_of(a: &Auth) -> Option<&String> {
    match a {
        Auth::Token { token, .. } => Some(token),
        _ => None,
    }
}

/// One BMC's kept connection.
pub struct Bmc {
    http: reqwest::Client,
    endpoint: Endpoint,
    settings: Settings,
    gate: Semaphore,
    all: Arc<Semaphore>,
    auth: tokio::sync::Mutex<Auth>,
    /// The service root, read once per connection.
    service_root: tokio::sync::OnceCell<Value>,
    /// System paths found, by `redfish_system_id` (None: the only one).
    systems: Mutex<HashMap<Option<String>, String>>,
}

/// Kept BMC connections, least recently used first.
pub struct Pool {
    settings: Settings,
    all: Arc<Semaphore>,
    kept: Mutex<VecDeque<(Key, Arc<Bmc>)>>,
}

impl Pool {
    pub fn new(settings: Settings) -> Arc<Pool> {
        Arc::new(Pool {
            settings,
            all: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            kept: Mutex::new(VecDeque::new()),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The kept connection to `endpoint`, made on first use.
    pub fn bmc(&self, endpoint: &Endpoint) -> Result<Arc<Bmc>> {
        let key = Key::of(endpoint);
        let evicted;
        let bmc;
        {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
                let entry = kept.remove(i).expect("position is in range");
                let b = entry.1.clone();
                kept.push_back(entry);
                return Ok(b);
            }
            bmc = Arc::new(Bmc::new(endpoint.clone(), self.settings, self.all.clone())?);
            if self.settings.cache_size == 0 {
                return Ok(bmc);
            }
            kept.push_back((key, bmc.clone()));
            evicted = if kept.len() > self.settings.cache_size {
                kept.pop_front().map(|(_, b)| b)
            } else {
                None
            };
        }
        if let Some(old) = evicted {
            tokio::spawn(async move { old.logout().await });
        }
        Ok(bmc)
    }

    /// Logs out of every kept session (at shutdown).
    pub async fn close_all(&self) {
        let all: Vec<_> = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        futures_util::future::join_all(all.iter().map(|b| b.logout())).await;
    }
}

/// What went wrong with one request, before it is put in words.
enum Failure {
    /// The BMC did not accept the connection: worth another try.
    Connect(String),
    /// Anything else: final.
    Final(Error),
}

impl Bmc {
    fn new(endpoint: Endpoint, settings: Settings, all: Arc<Semaphore>) -> Result<Bmc> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.connect_timeout + settings.read_timeout)
            .pool_max_idle_per_host(settings.per_bmc.max(1))
            .pool_idle_timeout(Duration::from_secs(50))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rackboot/", env!("CARGO_PKG_VERSION")));
        match &endpoint.verify_ca {
            VerifyCa::Yes => {}
            VerifyCa::No => b = b.danger_accept_invalid_certs(true),
            VerifyCa::Path(p) => {
                for cert in read_cas(p)? {
                    b = b.add_root_certificate(cert);
                }
            }
        }
        let http = b.build().map_err(|e| {
            Error::Failed(format!(
                "cannot set up the HTTP client for Redfish BMC {}: {e}",
                endpoint.base
            ))
        })?;
        Ok(Bmc {
            http,
            gate: Semaphore::new(settings.per_bmc.max(1)),
            all,
            auth: tokio::sync::Mutex::new(Auth::Unknown),
            service_root: tokio::sync::OnceCell::new(),
            systems: Mutex::new(HashMap::new()),
            endpoint,
            settings,
        })
    }

    /// The system paths found so far (a poisoned lock is still usable: the
    /// map holds plain paths).
    fn systems(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, String>> {
        self.systems.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `scheme://authority` of this BMC, for messages.
    pub fn base(&self) -> &str {
        &self.endpoint.base
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.endpoint.base)
        } else {
            format!("{}/{path}", self.endpoint.base)
        }
    }

    /// The service root (read once; it needs no authentication).
    pub async fn service_root(&self) -> Result<&Value> {
        self.service_root
            .get_or_try_init(|| async {
                let root = self.endpoint.root.clone();
                let r = self.send(Method::GET, &root, None, None, None).await?;
                check(&self.endpoint.base, "GET", &root, &r)?;
                Ok(r.body)
            })
            .await
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        let r = self.call(Method::GET, path, None, None).await?;
        check(&self.endpoint.base, "GET", path, &r)?;
        Ok(r)
    }

    /// POSTs `body`; an answer of 202 with a task monitor is followed until
    /// the task ends or `deadline` passes.
    pub async fn post(&self, path: &str, body: &Value, deadline: Duration) -> Result<Reply> {
        let r = self.call(Method::POST, path, Some(body), None).await?;
        check(&self.endpoint.base, "POST", path, &r)?;
        self.follow_task(r, deadline).await
    }

    /// PATCHes `body` with `If-Match: etag` when the resource has one. On
    /// 412 a weak ETag is retried as strong, then without `If-Match`, as
    /// sushy does for BMCs that mishandle ETags.
    pub async fn patch(
        &self,
        path: &str,
        body: &Value,
        etag: Option<&str>,
        deadline: Duration,
    ) -> Result<Reply> {
        let mut tries: Vec<Option<String>> = Vec::new();
        if let Some(e) = etag.filter(|e| !e.is_empty()) {
            tries.push(Some(e.to_string()));
            if let Some(strong) = e.strip_prefix("W/") {
                tries.push(Some(strong.to_string()));
            }
        }
        tries.push(None);
        let last = tries.len() - 1;
        for (i, tag) in tries.into_iter().enumerate() {
            let r = self
                .call(Method::PATCH, path, Some(body), tag.as_deref())
                .await?;
            if r.status == StatusCode::PRECONDITION_FAILED && i < last {
                tracing::debug!(bmc = %self.endpoint.base, path, "412 on PATCH with If-Match {tag:?}; retrying");
                continue;
            }
            check(&self.endpoint.base, "PATCH", path, &r)?;
            return self.follow_task(r, deadline).await;
        }
        unreachable!("the last try returns")
    }

    /// Follows a task monitor (202 + Location) until the task is over.
    async fn follow_task(&self, r: Reply, deadline: Duration) -> Result<Reply> {
        let Some(monitor) = r
            .location
            .clone()
            .filter(|_| r.status == StatusCode::ACCEPTED)
        else {
            return Ok(r);
        };
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let m = self.call(Method::GET, &monitor, None, None).await?;
            let state = m.body.get("TaskState").and_then(Value::as_str);
            if m.status == StatusCode::ACCEPTED
                || matches!(state, Some("New" | "Starting" | "Running" | "Pending"))
            {
                if tokio::time::Instant::now() >= until {
                    return Err(Error::Failed(format!(
                        "Redfish BMC {}: task {monitor} did not finish within {} s",
                        self.endpoint.base,
                        deadline.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            check(&self.endpoint.base, "GET", &monitor, &m)?;
            if let Some(s @ ("Exception" | "Killed" | "Cancelled")) = state {
                return Err(Error::Failed(format!(
                    "Redfish BMC {}: task {monitor} ended {s}{}",
                    self.endpoint.base,
                    task_messages(&m.body)
                )));
            }
            return Ok(m);
        }
    }

    /// One request with authentication: a lost session (401 with a token)
    /// is logged in again once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply> {
        let auth = self.current_auth().await?;
        let r = self
            .send(method.clone(), path, body, if_match, Some(&auth))
            .await?;
        if r.status == StatusCode::UNAUTHORIZED && matches!(auth, Auth::Token { .. }) {
            {
                let mut kept = self.auth.lock().await;
                // Another request may have logged in again already.
                if matches!(&*kept, Auth::Token { token, .. } if Some(token) == token_of(&auth)) {
                    tracing::info!(bmc = %self.endpoint.base, "Redfish session expired; logging in again");
                    *kept = Auth::Unknown;
                }
            }
            let auth = self.current_auth().await?;
            return self.send(method, path, body, if_match, Some(&auth)).await;
        }
        Ok(r)
    }

    /// The authentication to use, logging in first when undecided.
    async fn current_auth(&self) -> Result<Auth> {
        let mut auth = self.auth.lock().await;
        if let Auth::Unknown = *auth {
            *auth = self.login().await?;
        }
        Ok(auth.clone())
    }

    /// Opens a session (session/auto) or settles on basic.
    async fn login(&self) -> Result<Auth> {
        let e = &self.endpoint;
        let Some(user) = e.username.clone() else {
            return Ok(Auth::Basic);
        };
        if e.auth == AuthType::Basic {
            return Ok(Auth::Basic);
        }
        let sessions = match self.sessions_link().await {
            Ok(Some(s)) => s,
            Ok(None) if e.auth == AuthType::Auto => {
                tracing::debug!(bmc = %e.base, "no SessionService; using basic authentication");
                return Ok(Auth::Basic);
            }
            Ok(None) => {
                return Err(Error::Failed(format!(
                    "Redfish BMC {} has no SessionService; set redfish_auth_type to basic or auto",
                    e.base
                )))
            }
            Err(err) if e.auth == AuthType::Auto => {
                tracing::debug!(bmc = %e.base, "cannot find the SessionService ({err}); using basic authentication");
                return Ok(Auth::Basic);
            }
            Err(err) => return Err(err),
        };
        let body = serde_json::json!({
            "UserName": user,
            "Password": e.password.clone().unwrap_or_default(),
        });
        let r = self
            .send(Method::POST, &sessions, Some(&body), None, None)
            .await?;
        let token = if r.status.is_success() {
            r.token.0.clone()
        } else {
            None
        };
        match token {
            Some(token) => Ok(Auth::Token {
                token,
                uri: r.location.clone(),
            }),
            None if e.auth == AuthType::Auto && r.status != StatusCode::UNAUTHORIZED => {
                tracing::debug!(bmc = %e.base, status = %r.status, "session login refused; using basic authentication");
                Ok(Auth::Basic)
            }
            None => {
                check(&e.base, "POST", &sessions, &r)?;
                Err(Error::Failed(format!(
                    "Redfish BMC {} opened a session without an X-Auth-Token; set redfish_auth_type to basic",
                    e.base
                )))
            }
        }
    }

    /// The Sessions collection, by the links of the service root.
    async fn sessions_link(&self) -> Result<Option<String>> {
        let root = self.service_root().await?;
        if let Some(s) = odata_id(root.pointer("/Links/Sessions")) {
            return Ok(Some(s));
        }
        let Some(service) = odata_id(root.get("SessionService")) else {
            return Ok(None);
        };
        let r = self
            .send(Method::GET, &service, None, None, Some(&Auth::Basic))
            .await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        check(&self.endpoint.base, "GET", &service, &r)?;
        Ok(odata_id(r.body.get("Sessions")))
    }

    /// Ends the session, if one is open (best effort, bounded).
    pub async fn logout(&self) {
        let auth = std::mem::take(&mut *self.auth.lock().await);
        if let Auth::Token {
            token,
            uri: Some(uri),
        } = auth
        {
            let req = self
                .http
                .delete(self.url(&uri))
                .header("X-Auth-Token", token);
            match tokio::time::timeout(self.settings.read_timeout, req.send()).await {
                Ok(Ok(r)) => {
                    tracing::debug!(bmc = %self.endpoint.base, status = %r.status(), "Redfish session closed")
                }
                Ok(Err(e)) => {
                    tracing::debug!(bmc = %self.endpoint.base, "cannot close the Redfish session: {e}")
                }
                Err(_) => {
                    tracing::debug!(bmc = %self.endpoint.base, "closing the Redfish session timed out")
                }
            }
        }
    }

    /// Sends one request, retrying connections the BMC did not accept.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        auth: Option<&Auth>,
    ) -> Result<Reply> {
        let attempts = self.settings.connection_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self
                .send_once(method.clone(), path, body, if_match, auth)
                .await
            {
                Ok(r) => return Ok(r),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Connect(why)) if attempt >= attempts => {
                    return Err(Error::Failed(format!(
                        "cannot connect to Redfish BMC {} ({attempts} tries): {why}; check redfish_address and that the BMC is reachable",
                        self.endpoint.base
                    )))
                }
                Err(Failure::Connect(why)) => {
                    tracing::debug!(bmc = %self.endpoint.base, attempt, "Redfish connection failed: {why}");
                    attempt += 1;
                    tokio::time::sleep(self.settings.connection_retry_interval).await;
                }
            }
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        auth: Option<&Auth>,
    ) -> std::result::Result<Reply, Failure> {
        let s = &self.settings;
        let wait = s.connect_timeout + s.read_timeout;
        let busy = || {
            Failure::Final(Error::Failed(format!(
                "too many Redfish calls in flight: none to BMC {} could start within {} s",
                self.endpoint.base,
                wait.as_secs()
            )))
        };
        let _all = tokio::time::timeout(wait, self.all.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let _one = tokio::time::timeout(wait, self.gate.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header("Accept", "application/json")
            .header("OData-Version", "4.0");
        match auth {
            None => {}
            Some(Auth::Token { token, .. }) => req = req.header("X-Auth-Token", token),
            Some(Auth::Basic | Auth::Unknown) => {
                if let Some(u) = &self.endpoint.username {
                    req = req.basic_auth(u, self.endpoint.password.as_deref());
                }
            }
        }
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let what = format!("{method} {path}");
        let exchange = async {
            let resp = req.send().await?;
            let status = resp.status();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let etag = header("etag");
            let location = header("location");
            let token = header("x-auth-token");
            let bytes = read_bounded(resp).await?;
            Ok::<_, reqwest::Error>((status, etag, location, token, bytes))
        };
        let (status, etag, location, token, bytes) = match tokio::time::timeout(wait, exchange)
            .await
        {
            Err(_) => {
                return Err(Failure::Final(Error::Failed(format!(
                    "Redfish BMC {} did not answer {what} within {} s",
                    self.endpoint.base,
                    wait.as_secs()
                ))))
            }
            Ok(Err(e)) if e.is_connect() && error_chain(&e).contains("certificate") => {
                // Trying again will not change the certificate.
                return Err(Failure::Final(Error::Failed(format!(
                    "Redfish BMC {}: the TLS certificate was refused: {}; check redfish_verify_ca (false for a self-signed BMC certificate, or the path of the CA that signed it)",
                    self.endpoint.base,
                    error_chain(&e)
                ))));
            }
            Ok(Err(e)) if e.is_connect() => return Err(Failure::Connect(error_chain(&e))),
            Ok(Err(e)) if e.is_timeout() => {
                return Err(Failure::Final(Error::Failed(format!(
                    "Redfish BMC {} did not answer {what} within {} s",
                    self.endpoint.base,
                    wait.as_secs()
                ))))
            }
            Ok(Err(e)) => {
                return Err(Failure::Final(Error::Failed(format!(
                    "Redfish BMC {}: {what} failed: {}",
                    self.endpoint.base,
                    error_chain(&e)
                ))))
            }
            Ok(Ok(parts)) => parts,
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into())
            })
        };
        Ok(Reply {
            status,
            etag,
            location,
            body,
            token: Hidden(token),
        })
    }

    /// The path of the node's ComputerSystem: `system_id` when set (a path,
    /// or the Id of a member), else the only member of Systems.
    pub async fn system_path(&self, system_id: Option<&str>) -> Result<String> {
        let key = system_id.map(str::to_string);
        if let Some(p) = self.systems().get(&key) {
            return Ok(p.clone());
        }
        let found = match system_id {
            Some(p) if p.starts_with('/') => p.to_string(),
            _ => {
                let members = self.system_members().await?;
                match (system_id, members.as_slice()) {
                    (None, [one]) => one.clone(),
                    (None, []) => {
                        return Err(Error::Failed(format!(
                            "Redfish BMC {} lists no system in its Systems collection",
                            self.endpoint.base
                        )))
                    }
                    (None, many) => {
                        return Err(Error::Failed(format!(
                            "Redfish BMC {} manages {} systems ({}); set redfish_system_id to the one of this node",
                            self.endpoint.base,
                            many.len(),
                            many.join(", ")
                        )))
                    }
                    (Some(id), all) => match all
                        .iter()
                        .find(|m| m.trim_end_matches('/').rsplit('/').next() == Some(id))
                    {
                        Some(m) => m.clone(),
                        None => {
                            return Err(Error::Failed(format!(
                                "system {id} not found on Redfish BMC {}; set redfish_system_id to one of: {}",
                                self.endpoint.base,
                                all.join(", ")
                            )))
                        }
                    },
                }
            }
        };
        self.systems().insert(key, found.clone());
        Ok(found)
    }

    /// Reads the node's ComputerSystem; a system that is gone is named, with
    /// the ones the BMC has.
    pub async fn system(&self, system_id: Option<&str>) -> Result<(String, Reply)> {
        let path = self.system_path(system_id).await?;
        let r = self.call(Method::GET, &path, None, None).await?;
        if r.status == StatusCode::NOT_FOUND {
            self.systems().clear();
            let members = self.system_members().await.unwrap_or_default();
            return Err(Error::Failed(format!(
                "system {path} not found on Redfish BMC {}; set redfish_system_id to one of: {}",
                self.endpoint.base,
                if members.is_empty() {
                    "(none listed)".to_string()
                } else {
                    members.join(", ")
                }
            )));
        }
        check(&self.endpoint.base, "GET", &path, &r)?;
        Ok((path, r))
    }

    /// The member links of the Systems collection.
    async fn system_members(&self) -> Result<Vec<String>> {
        let root = self.service_root().await?;
        let Some(systems) = odata_id(root.get("Systems")) else {
            return Err(Error::Failed(format!(
                "Redfish BMC {} has no Systems collection in its service root",
                self.endpoint.base
            )));
        };
        let r = self.get(&systems).await?;
        Ok(r.body
            .get("Members")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|m| odata_id(Some(m))).collect())
            .unwrap_or_default())
    }
}

/// `x["@odata.id"]` as a string.
pub fn odata_id(v: Option<&Value>) -> Option<String> {
    v?.get("@odata.id")?.as_str().map(str::to_string)
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read_bounded(mut resp: reqwest::Response) -> reqwest::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room < chunk.len() {
            break;
        }
    }
    Ok(out)
}

/// An error with its causes (reqwest's top level says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The CA certificates of a file, or of every file in a directory.
fn read_cas(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| {
                Error::InvalidParameter(format!(
                    "cannot read the redfish_verify_ca directory {}: {e}",
                    path.display()
                ))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut certs = Vec::new();
    for f in files {
        let pem = std::fs::read(&f).map_err(|e| {
            Error::InvalidParameter(format!(
                "cannot read the redfish_verify_ca file {}: {e}",
                f.display()
            ))
        })?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(c) => certs.extend(c),
            Err(e) => {
                return Err(Error::InvalidParameter(format!(
                    "redfish_verify_ca file {} is not PEM certificates: {e}",
                    f.display()
                )))
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::InvalidParameter(format!(
            "redfish_verify_ca {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Turns an answer that is not a success into an error in words: the
/// status, the BMC's message and its `@Message.ExtendedInfo`, and what to
/// check.
pub fn check(base: &str, method: &str, path: &str, r: &Reply) -> Result<()> {
    if r.status.is_success() {
        return Ok(());
    }
    let said = bmc_message(&r.body);
    let hint = match r.status {
        StatusCode::UNAUTHORIZED => "; check redfish_username/redfish_password",
        StatusCode::FORBIDDEN => "; the BMC user lacks the privilege for this (check its role, e.g. Administrator or Operator)",
        StatusCode::NOT_FOUND => "; the BMC has no such resource",
        _ => "",
    };
    Err(Error::Failed(format!(
        "Redfish BMC {base}: {method} {path} answered {}{}{hint}",
        r.status,
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    )))
}

/// The BMC's own words from a Redfish error body: `error.message` and each
/// `@Message.ExtendedInfo` entry's Message (or MessageId) and Resolution.
pub fn bmc_message(body: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    let err = body.get("error").unwrap_or(body);
    if let Some(m) = err.get("message").and_then(Value::as_str) {
        parts.push(m.to_string());
    }
    if let Some(infos) = err.get("@Message.ExtendedInfo").and_then(Value::as_array) {
        let has_message = !parts.is_empty();
        for i in infos {
            // A MessageId alone says little once the BMC gave a message.
            let msg = i.get("Message").and_then(Value::as_str).or_else(|| {
                (!has_message)
                    .then(|| i.get("MessageId").and_then(Value::as_str))
                    .flatten()
            });
            if let Some(m) = msg {
                let mut s = m.to_string();
                if let Some(r) = i.get("Resolution").and_then(Value::as_str) {
                    s.push_str(&format!(" ({r})"));
                }
                if !parts.contains(&s) && !parts.iter().any(|p| p.contains(&s)) {
                    parts.push(s);
                }
            }
        }
    }
    if parts.is_empty() {
        if let Value::String(s) = body {
            parts.push(s.trim().chars().take(200).collect());
        }
    }
    let s = parts.join("; ");
    crate::redact::redact(&s)
}

/// The messages of a finished task, for an error.
fn task_messages(body: &Value) -> String {
    let msgs: Vec<&str> = body
        .get("Messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|m| m.get("Message").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if msgs.is_empty() {
        String::new()
    } else {
        format!(": {}", msgs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    //! The session, ETag and task-monitor logic against a scripted BMC on
    //! loopback: sushy-tools has neither sessions nor ETags, so what real
    //! BMCs do (iDRAC, iLO: sessions that expire, weak ETags refused with
    //! 412, 202 with a task monitor) is played here.

    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method as HttpMethod, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::json;

    #[derive(Default)]
    struct Script {
        /// "METHOD PATH auth" per request.
        seen: Vec<String>,
        sessions: bool,
        /// Tokens handed out; the first is expired after one use.
        issued: u32,
        valid: Option<String>,
        monitor_polls: u32,
    }

    type Shared = Arc<Mutex<Script>>;

    async fn bmc(
        State(s): State<Shared>,
        method: HttpMethod,
        uri: Uri,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let path = uri.path().to_string();
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let auth = match (h("x-auth-token"), h("authorization")) {
            (Some(t), _) => format!("token:{t}"),
            (None, Some(b)) if b.starts_with("Basic ") => "basic".into(),
            _ => "none".into(),
        };
        let if_match = h("if-match").unwrap_or_default();
        let mut st = s.lock().unwrap();
        st.seen.push(
            format!("{method} {path} {auth} {if_match}")
                .trim()
                .to_string(),
        );
        let json = |code: u16, v: Value| {
            (StatusCode::from_u16(code).unwrap(), axum::Json(v)).into_response()
        };
        match (method.as_str(), path.as_str()) {
            ("GET", "/redfish/v1/") => {
                let mut root = json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}});
                if st.sessions {
                    root["Links"] =
                        json!({"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}});
                }
                json(200, root)
            }
            ("POST", "/redfish/v1/SessionService/Sessions") => {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if v["Password"] != "pw" {
                    return json(401, json!({"error": {"message": "bad login"}}));
                }
                st.issued += 1;
                let token = format!("t{}", st.issued);
                st.valid = Some(token.clone());
                let mut r = json(201, json!({}));
                r.headers_mut()
                    .insert("x-auth-token", token.parse().unwrap());
                r.headers_mut().insert(
                    "location",
                    format!("/redfish/v1/SessionService/Sessions/{}", st.issued)
                        .parse()
                        .unwrap(),
                );
                r
            }
            _ => {
                let authorized = match auth.strip_prefix("token:") {
                    Some(t) => st.valid.as_deref() == Some(t),
                    None => auth == "basic",
                };
                if !authorized {
                    return json(
                        401,
                        json!({"error": {"message": "session expired",
                        "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.NoValidSession", "Message": "There is no valid session established with the implementation.", "Resolution": "Establish a session before attempting any operations."}]}}),
                    );
                }
                // The first token expires after one use.
                if auth == "token:t1" {
                    st.valid = None;
                }
                match (method.as_str(), path.as_str()) {
                    ("DELETE", p) if p.starts_with("/redfish/v1/SessionService/Sessions/") => {
                        StatusCode::NO_CONTENT.into_response()
                    }
                    ("GET", "/redfish/v1/Systems/1") => {
                        let mut r = json(200, json!({"PowerState": "On"}));
                        r.headers_mut().insert("etag", "W/\"7\"".parse().unwrap());
                        r
                    }
                    // Refuses the weak and the strong ETag: only no If-Match works.
                    ("PATCH", "/redfish/v1/Systems/1") if !if_match.is_empty() => {
                        json(412, json!({"error": {"message": "precondition failed"}}))
                    }
                    ("PATCH", "/redfish/v1/Systems/1") => StatusCode::NO_CONTENT.into_response(),
                    ("POST", "/redfish/v1/Systems/1/Actions/Slow") => {
                        let mut r = StatusCode::ACCEPTED.into_response();
                        r.headers_mut()
                            .insert("location", "/redfish/v1/TaskMonitors/9".parse().unwrap());
                        r
                    }
                    ("GET", "/redfish/v1/TaskMonitors/9") => {
                        st.monitor_polls += 1;
                        if st.monitor_polls < 2 {
                            json(202, json!({"TaskState": "Running"}))
                        } else {
                            json(200, json!({"TaskState": "Completed"}))
                        }
                    }
                    _ => json(404, json!({"error": {"message": format!("no {path}")}})),
                }
            }
        }
    }

    async fn serve(sessions: bool) -> (String, Shared) {
        let shared: Shared = Arc::new(Mutex::new(Script {
            sessions,
            ..Script::default()
        }));
        let app = axum::Router::new().fallback(bmc).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), shared)
    }

    fn endpoint(base: &str, auth: AuthType, password: &str) -> Endpoint {
        Endpoint {
            base: base.to_string(),
            root: "/redfish/v1/".into(),
            username: Some("admin".into()),
            password: Some(password.into()),
            verify_ca: VerifyCa::Yes,
            auth,
        }
    }

    fn seen(s: &Shared) -> Vec<String> {
        std::mem::take(&mut s.lock().unwrap().seen)
    }

    #[tokio::test]
    async fn sessions_are_opened_renewed_on_401_and_closed() {
        let (base, script) = serve(true).await;
        let pool = Pool::new(Settings::default());
        let bmc = pool.bmc(&endpoint(&base, AuthType::Auto, "pw")).unwrap();
        assert_eq!(
            bmc.get("/redfish/v1/Systems/1").await.unwrap().body["PowerState"],
            "On"
        );
        // t1 has expired: the next call is refused, logs in again, retries.
        assert_eq!(
            bmc.get("/redfish/v1/Systems/1").await.unwrap().status,
            StatusCode::OK
        );
        assert_eq!(
            seen(&script),
            [
                "GET /redfish/v1/ none",
                "POST /redfish/v1/SessionService/Sessions none",
                "GET /redfish/v1/Systems/1 token:t1",
                "GET /redfish/v1/Systems/1 token:t1",
                "POST /redfish/v1/SessionService/Sessions none",
                "GET /redfish/v1/Systems/1 token:t2",
            ]
        );
        // The same endpoint reuses the kept connection and its session.
        let again = pool.bmc(&endpoint(&base, AuthType::Auto, "pw")).unwrap();
        assert!(Arc::ptr_eq(&bmc, &again));
        // A changed password is another connection.
        let other = pool.bmc(&endpoint(&base, AuthType::Auto, "pw2")).unwrap();
        assert!(!Arc::ptr_eq(&bmc, &other));
        pool.close_all().await;
        let closed = seen(&script);
        assert_eq!(
            closed,
            ["DELETE /redfish/v1/SessionService/Sessions/2 token:t2"]
        );
    }

    #[tokio::test]
    async fn auto_falls_back_to_basic_and_basic_names_the_credentials() {
        let (base, script) = serve(false).await;
        let pool = Pool::new(Settings::default());
        let bmc = pool.bmc(&endpoint(&base, AuthType::Auto, "pw")).unwrap();
        bmc.get("/redfish/v1/Systems/1").await.unwrap();
        assert_eq!(
            seen(&script),
            ["GET /redfish/v1/ none", "GET /redfish/v1/Systems/1 basic"]
        );
        // Session auth demanded of a BMC without sessions: said plainly.
        let s = pool.bmc(&endpoint(&base, AuthType::Session, "pw")).unwrap();
        let e = s
            .get("/redfish/v1/Systems/1")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has no SessionService; set redfish_auth_type to basic or auto"),
            "{e}"
        );
        // A wrong session password: 401 at login, in words, no password.
        let (base, _) = serve(true).await;
        let bad = pool
            .bmc(&endpoint(&base, AuthType::Session, "wrong-pw"))
            .unwrap();
        let e = bad
            .get("/redfish/v1/Systems/1")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("401") && e.contains("check redfish_username/redfish_password"),
            "{e}"
        );
        assert!(!e.contains("wrong-pw"), "{e}");
    }

    #[tokio::test]
    async fn patch_412_retries_weak_as_strong_then_without_if_match() {
        let (base, script) = serve(false).await;
        let pool = Pool::new(Settings::default());
        let bmc = pool.bmc(&endpoint(&base, AuthType::Basic, "pw")).unwrap();
        let sys = bmc.get("/redfish/v1/Systems/1").await.unwrap();
        assert_eq!(sys.etag.as_deref(), Some("W/\"7\""));
        let r = bmc
            .patch(
                "/redfish/v1/Systems/1",
                &json!({"Boot": {}}),
                sys.etag.as_deref(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            seen(&script)[1..],
            [
                "PATCH /redfish/v1/Systems/1 basic W/\"7\"",
                "PATCH /redfish/v1/Systems/1 basic \"7\"",
                "PATCH /redfish/v1/Systems/1 basic",
            ]
        );
    }

    #[tokio::test]
    async fn task_monitors_are_followed_and_errors_carry_extended_info() {
        let (base, script) = serve(false).await;
        let pool = Pool::new(Settings::default());
        let bmc = pool.bmc(&endpoint(&base, AuthType::Basic, "pw")).unwrap();
        let r = bmc
            .post(
                "/redfish/v1/Systems/1/Actions/Slow",
                &json!({}),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(r.body["TaskState"], "Completed");
        assert_eq!(script.lock().unwrap().monitor_polls, 2);
        let e = bmc.get("/redfish/v1/Nope").await.unwrap_err().to_string();
        assert_eq!(
            e,
            format!("Redfish BMC {base}: GET /redfish/v1/Nope answered 404 Not Found: no /redfish/v1/Nope; the BMC has no such resource")
        );
        let body = json!({"error": {"code": "Base.1.8.GeneralError", "message": "A general error has occurred.",
            "@Message.ExtendedInfo": [{"MessageId": "IDRAC.2.8.SYS011", "Message": "Pending configuration values are already committed.", "Resolution": "Wait for the job to finish."}]}});
        assert_eq!(
            bmc_message(&body),
            "A general error has occurred.; Pending configuration values are already committed. (Wait for the job to finish.)"
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let (base, _) = serve(false).await;
        let pool = Pool::new(Settings {
            cache_size: 2,
            ..Settings::default()
        });
        let first = pool.bmc(&endpoint(&base, AuthType::Basic, "a")).unwrap();
        pool.bmc(&endpoint(&base, AuthType::Basic, "b")).unwrap();
        pool.bmc(&endpoint(&base, AuthType::Basic, "c")).unwrap();
        assert_eq!(pool.kept.lock().unwrap().len(), 2);
        let again = pool.bmc(&endpoint(&base, AuthType::Basic, "a")).unwrap();
        assert!(!Arc::ptr_eq(&first, &again), "the oldest was dropped");
    }
}
