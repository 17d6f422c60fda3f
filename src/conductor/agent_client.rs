//! The conductor's client for ironic-python-agent's command API
//! (`<agent_url>/v1/commands/`), as Ironic's agent client calls it: a POST
//! per command with `wait=true|false` and the node's `agent_token` in the
//! query, a bounded wait per call, connection failures retried, and a
//! command still running after a lost connection taken as the result.
//!
//! The token travels in the query string, so no error or log line here
//! carries a URL: reqwest's errors are stripped of theirs.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// Limits of the agent client (`[agent]` in the configuration).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Deadline of one call to the agent (Ironic's `[agent] command_timeout`).
    pub command_timeout: Duration,
    /// Tries of a call whose connection fails (`max_command_attempts`).
    pub max_command_attempts: u32,
    /// Wait between two reads of a running asynchronous command.
    pub poll_interval: Duration,
    /// Reads of a running asynchronous command before giving up.
    pub poll_attempts: u32,
    /// Largest answer read from the agent (its command list holds every
    /// result of the boot, logs included).
    pub max_answer_bytes: usize,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            command_timeout: Duration::from_secs(60),
            max_command_attempts: 3,
            poll_interval: Duration::from_secs(6),
            poll_attempts: 100,
            max_answer_bytes: 16 << 20,
        }
    }
}

/// One command's result, as the agent serializes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommandResult {
    #[serde(default)]
    pub id: Option<String>,
    /// The command without its extension (`get_clean_steps`).
    pub command_name: String,
    /// RUNNING, SUCCEEDED, FAILED or CLEAN_VERSION_MISMATCH.
    pub command_status: String,
    #[serde(default)]
    pub command_error: Option<Value>,
    #[serde(default)]
    pub command_result: Option<Value>,
}

impl CommandResult {
    pub fn running(&self) -> bool {
        self.command_status == "RUNNING"
    }

    /// The failure the agent reported, in a line.
    pub fn error_text(&self) -> String {
        match &self.command_error {
            None | Some(Value::Null) => format!("status {}", self.command_status),
            Some(Value::Object(e)) => {
                let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                let (t, m, d) = (field("type"), field("message"), field("details"));
                [t, m, d]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(": ")
            }
            Some(other) => other.to_string(),
        }
    }
}

/// Why a call to the agent did not give a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// No answer: connection refused or reset, or no reply in time.
    #[error("the agent at {url} is unreachable: {why}")]
    Unreachable { url: String, why: String },
    /// The agent runs another command (409 "Agent is busy").
    #[error("the agent is busy: {0}")]
    Busy(String),
    /// The agent refused the call (an HTTP error).
    #[error("the agent refused {command}: HTTP {status}: {fault}")]
    Refused {
        command: String,
        status: u16,
        fault: String,
    },
    /// The agent ran the command and it failed.
    #[error("the agent's {command} failed: {why}")]
    CommandFailed { command: String, why: String },
    /// The agent answered something that is not its command API's answer.
    #[error("the agent's answer to {command} is unreadable: {why}")]
    BadAnswer { command: String, why: String },
    /// The node has no agent to call.
    #[error("{0}")]
    NoAgent(String),
}

/// The agent's error body: `{"faultcode", "faultstring"}`.
fn fault_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("faultstring")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string()
        })
}

/// The agent's base URL without its secrets (for messages).
fn shown(url: &str) -> String {
    crate::redact::redact(url)
}

/// Checks an `agent_url` a heartbeat reported: an http(s) URL with a host.
pub fn check_agent_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err("it must be an http:// or https:// URL with a host".into());
    }
    Ok(())
}

/// The command client over a shared HTTP client.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    settings: AgentSettings,
}

impl AgentClient {
    pub fn new(settings: AgentSettings) -> AgentClient {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.command_timeout)
            .timeout(settings.command_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rackboot/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        AgentClient { http, settings }
    }

    fn commands_url(agent_url: &str) -> String {
        format!("{}/v1/commands/", agent_url.trim_end_matches('/'))
    }

    /// One HTTP exchange, bounded; Err(Unreachable) when no answer came.
    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
        agent_url: &str,
    ) -> Result<(u16, Vec<u8>), AgentError> {
        let unreachable = |why: String| AgentError::Unreachable {
            url: shown(agent_url),
            why,
        };
        let cap = self.settings.max_answer_bytes;
        let work = async {
            let mut resp = req.send().await.map_err(|e| e.without_url().to_string())?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| e.without_url().to_string())?
            {
                if body.len() + chunk.len() > cap {
                    return Err(format!(
                        "its answer is larger than {cap} bytes ([agent] max_answer_bytes)"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(self.settings.command_timeout, work).await {
            Err(_) => Err(unreachable(format!(
                "no answer within {} s ([agent] command_timeout)",
                self.settings.command_timeout.as_secs()
            ))),
            Ok(Err(why)) => Err(unreachable(why)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Runs `name` (`extension.command`) with `params`. With `wait`, the
    /// agent answers once it is done; without, it answers at once with the
    /// command RUNNING. A failed command is [`AgentError::CommandFailed`].
    pub async fn execute(
        &self,
        agent_url: &str,
        token: &str,
        name: &str,
        params: Value,
        wait: bool,
    ) -> Result<CommandResult, AgentError> {
        let short = name.rsplit('.').next().unwrap_or(name).to_string();
        let body = json!({"name": name, "params": params});
        let mut last = None;
        for attempt in 1..=self.settings.max_command_attempts.max(1) {
            let req = self
                .http
                .post(Self::commands_url(agent_url))
                .query(&[
                    ("wait", if wait { "true" } else { "false" }),
                    ("agent_token", token),
                ])
                .json(&body);
            match self.exchange(req, agent_url).await {
                Ok((status, bytes)) => return self.answer(name, status, &bytes),
                Err(e) => {
                    tracing::warn!(command = name, attempt, error = %e, "agent command: no answer");
                    last = Some(e);
                }
            }
            // The command may have reached the agent before the connection
            // broke: if it runs there, that is this call's result.
            if let Ok(list) = self.commands(agent_url, token).await {
                if let Some(r) = list
                    .last()
                    .filter(|r| r.command_name == short && r.running())
                {
                    return Ok(r.clone());
                }
            }
        }
        Err(last.unwrap_or_else(|| AgentError::NoAgent("no attempt made".into())))
    }

    fn answer(&self, name: &str, status: u16, body: &[u8]) -> Result<CommandResult, AgentError> {
        if status >= 400 {
            let fault = fault_of(body);
            if status == 409 || fault.to_ascii_lowercase().contains("agent is busy") {
                return Err(AgentError::Busy(fault));
            }
            return Err(AgentError::Refused {
                command: name.to_string(),
                status,
                fault,
            });
        }
        let r: CommandResult = serde_json::from_slice(body).map_err(|e| AgentError::BadAnswer {
            command: name.to_string(),
            why: e.to_string(),
        })?;
        if r.command_status == "FAILED" {
            return Err(AgentError::CommandFailed {
                command: name.to_string(),
                why: r.error_text(),
            });
        }
        Ok(r)
    }

    /// The agent's commands, oldest first (`GET /v1/commands/`).
    pub async fn commands(
        &self,
        agent_url: &str,
        token: &str,
    ) -> Result<Vec<CommandResult>, AgentError> {
        let req = self
            .http
            .get(Self::commands_url(agent_url))
            .query(&[("agent_token", token)]);
        let (status, body) = self.exchange(req, agent_url).await?;
        if status >= 400 {
            return Err(AgentError::Refused {
                command: "the command list".into(),
                status,
                fault: fault_of(&body),
            });
        }
        #[derive(Deserialize)]
        struct List {
            commands: Vec<CommandResult>,
        }
        serde_json::from_slice::<List>(&body)
            .map(|l| l.commands)
            .map_err(|e| AgentError::BadAnswer {
                command: "the command list".into(),
                why: e.to_string(),
            })
    }

    /// (The direct deploy's bootloader install is polled this way; issue 13.)
    #[cfg_attr(not(test), allow(dead_code))]
    /// Waits for the last command named `name` (without its extension) to
    /// finish, reading the list every `poll_interval`, `poll_attempts`
    /// times at most; a failed command is [`AgentError::CommandFailed`].
    pub async fn wait_for(
        &self,
        agent_url: &str,
        token: &str,
        name: &str,
    ) -> Result<CommandResult, AgentError> {
        let short = name.rsplit('.').next().unwrap_or(name);
        for _ in 0..self.settings.poll_attempts.max(1) {
            let list = self.commands(agent_url, token).await?;
            match list.iter().rev().find(|r| r.command_name == short) {
                Some(r) if r.running() => {}
                Some(r) if r.command_status == "FAILED" => {
                    return Err(AgentError::CommandFailed {
                        command: name.to_string(),
                        why: r.error_text(),
                    })
                }
                Some(r) => return Ok(r.clone()),
                None => {
                    return Err(AgentError::BadAnswer {
                        command: name.to_string(),
                        why: "the agent does not list it".into(),
                    })
                }
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
        Err(AgentError::CommandFailed {
            command: name.to_string(),
            why: format!(
                "still running after {} reads {} s apart ([agent] poll_attempts, poll_interval)",
                self.settings.poll_attempts,
                self.settings.poll_interval.as_secs()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A canned agent on 127.0.0.1: each request gets the next answer
    /// (status, body); the request lines are kept.
    async fn canned(
        answers: Vec<(u16, &'static str)>,
    ) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        let next = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let mut got = 0;
                // Read the head and any body announced by Content-Length.
                loop {
                    let n = s.read(&mut buf[got..]).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got >= end + 4 + len {
                            break;
                        }
                    }
                }
                let req = String::from_utf8_lossy(&buf[..got]).to_string();
                kept.lock().unwrap().push(req);
                let i = next.fetch_add(1, Ordering::SeqCst);
                let (status, body) = answers.get(i).copied().unwrap_or((500, "{}"));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (url, seen)
    }

    /// IPA 13.0.0's answer to `clean.get_clean_steps` with `wait=true`
    /// (captured from the agent, steps cut down to one).
    const CLEAN_STEPS: &str = r#"{"id": "9f0a4a6e-0d7e-4d1e-9f5e-0d2b8b1b6c11", "command_name": "get_clean_steps", "command_status": "SUCCEEDED", "command_error": null, "command_result": {"clean_steps": {"GenericHardwareManager": [{"step": "erase_devices_metadata", "priority": 99, "interface": "deploy", "reboot_requested": false, "abortable": true}]}, "hardware_manager_version": {"generic_hardware_manager": "1.2"}}}"#;

    fn client() -> AgentClient {
        AgentClient::new(AgentSettings {
            command_timeout: Duration::from_secs(2),
            max_command_attempts: 3,
            poll_interval: Duration::from_millis(10),
            poll_attempts: 3,
            max_answer_bytes: 4096,
        })
    }

    #[tokio::test]
    async fn a_synchronous_command_sends_its_token_and_reads_the_result() {
        let (url, seen) = canned(vec![(200, CLEAN_STEPS)]).await;
        let r = client()
            .execute(
                &url,
                "tok-1",
                "clean.get_clean_steps",
                json!({"node": {}, "ports": []}),
                true,
            )
            .await
            .unwrap();
        assert_eq!(r.command_name, "get_clean_steps");
        assert!(r.command_result.unwrap()["clean_steps"]["GenericHardwareManager"].is_array());
        let req = seen.lock().unwrap()[0].clone();
        assert!(
            req.starts_with("POST /v1/commands/?wait=true&agent_token=tok-1 HTTP/1.1"),
            "{req}"
        );
        assert!(req.contains(r#""name":"clean.get_clean_steps""#), "{req}");
    }

    #[tokio::test]
    async fn agent_answers_become_clear_errors() {
        let busy = r#"{"faultcode": "Client", "faultstring": "Agent is busy: executing command erase_devices"}"#;
        let bad_token =
            r#"{"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."}"#;
        let failed = r#"{"id": "x", "command_name": "execute_clean_step", "command_status": "FAILED", "command_error": {"type": "CommandExecutionError", "code": 500, "message": "Command execution failed", "details": "disk is gone"}, "command_result": null}"#;
        let cases: Vec<(u16, &str, AgentError)> = vec![
            (
                409,
                busy,
                AgentError::Busy("Agent is busy: executing command erase_devices".into()),
            ),
            (
                401,
                bad_token,
                AgentError::Refused {
                    command: "clean.x".into(),
                    status: 401,
                    fault: "401 Unauthorized: Token invalid.".into(),
                },
            ),
            (
                200,
                failed,
                AgentError::CommandFailed {
                    command: "clean.x".into(),
                    why: "CommandExecutionError: Command execution failed: disk is gone".into(),
                },
            ),
            (
                200,
                "<html>",
                AgentError::BadAnswer {
                    command: "clean.x".into(),
                    why: "expected value at line 1 column 1".into(),
                },
            ),
        ];
        for (status, body, want) in cases {
            let (url, _) = canned(vec![(status, body)]).await;
            let got = client()
                .execute(&url, "t", "clean.x", json!({}), true)
                .await;
            assert_eq!(got, Err(want), "{status} {body}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_agent_is_tried_again_and_named_without_its_token() {
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let err = client()
            .execute(
                &url,
                "secret-token",
                "clean.get_clean_steps",
                json!({}),
                true,
            )
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, AgentError::Unreachable { .. }), "{text}");
        assert!(text.contains(&url), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[tokio::test]
    async fn a_polled_command_is_read_until_it_ends() {
        let running = r#"{"commands": [{"id": "1", "command_name": "get_clean_steps", "command_status": "SUCCEEDED", "command_error": null, "command_result": {}}, {"id": "2", "command_name": "execute_clean_step", "command_status": "RUNNING", "command_error": null, "command_result": null}]}"#;
        let done = r#"{"commands": [{"id": "2", "command_name": "execute_clean_step", "command_status": "SUCCEEDED", "command_error": null, "command_result": {"clean_result": null}}]}"#;
        let (url, seen) = canned(vec![(200, running), (200, done)]).await;
        let r = client()
            .wait_for(&url, "t", "clean.execute_clean_step")
            .await
            .unwrap();
        assert_eq!(r.id.as_deref(), Some("2"));
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(seen.lock().unwrap()[0].starts_with("GET /v1/commands/?agent_token=t "));
        // Never ending: the bound says so.
        let (url, _) = canned(vec![(200, running), (200, running), (200, running)]).await;
        let err = client()
            .wait_for(&url, "t", "execute_clean_step")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("still running after 3 reads"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused() {
        let big: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
        let (url, _) = canned(vec![(200, big)]).await;
        let err = client().commands(&url, "t").await.unwrap_err().to_string();
        assert!(err.contains("larger than 4096 bytes"), "{err}");
    }

    #[test]
    fn agent_urls() {
        assert!(check_agent_url("http://10.0.0.5:9999").is_ok());
        assert!(check_agent_url("https://[fd00::5]:9999/").is_ok());
        assert!(check_agent_url("").is_err());
        assert!(check_agent_url("file:///etc/passwd").is_err());
        assert!(check_agent_url("10.0.0.5:9999").is_err());
    }
}
