//! The agent token (Ironic's `agent_secret_token`): issued once per boot of
//! the ramdisk, at its first lookup, and required on every heartbeat of that
//! boot, so only the ramdisk that looked itself up can move its node on.

use base64::Engine;

use super::*;
use crate::model::internal;

/// What a lookup after the first gets instead of the token (as Ironic).
pub const TOKEN_SHOWN_AGAIN: &str = "******";

/// A new token: 32 random bytes, URL-safe base64 (Python's
/// `secrets.token_urlsafe()`, which Ironic uses).
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Invalid(format!("cannot make an agent token: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Why a heartbeat's token is refused, if it is.
pub fn check_token(node: &Node, given: Option<&str>) -> std::result::Result<(), &'static str> {
    match (node.agent_token(), given) {
        (_, None) => Err("Agent token is required for heartbeat processing."),
        (Some(known), Some(t)) if known == t && known != TOKEN_SHOWN_AGAIN => Ok(()),
        _ => Err("Invalid or missing agent token received."),
    }
}

impl Conductor {
    /// The token for a ramdisk's lookup: a new one the first time in this
    /// boot (recorded under the node's lock), `******` after that.
    pub async fn agent_token_for_lookup(&self, uuid: Uuid) -> Result<String> {
        let (lock, mut node) = self.lock(uuid, &uuid.to_string()).await?;
        if node.agent_token().is_some() {
            drop(lock);
            tracing::warn!(node = %uuid, "a lookup asked for a token again; it is not shown twice");
            return Ok(TOKEN_SHOWN_AGAIN.to_string());
        }
        let token = new_token()?;
        node.driver_internal_info
            .insert(internal::AGENT_TOKEN.into(), Value::String(token.clone()));
        node.updated_at = Some(now());
        let h = HistoryEntry::new(
            Severity::Info,
            "agent",
            "lookup: the ramdisk found its node; agent token issued",
        );
        self.save_locked(node, vec![h], lock).await?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_different() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 43, "{a}");
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn heartbeat_tokens() {
        let mut n = crate::conductor::tests::fake_node("t1", State::WaitCallBack);
        assert_eq!(
            check_token(&n, None),
            Err("Agent token is required for heartbeat processing.")
        );
        assert_eq!(
            check_token(&n, Some("x")),
            Err("Invalid or missing agent token received.")
        );
        n.driver_internal_info
            .insert(internal::AGENT_TOKEN.into(), Value::from("secret-1"));
        assert_eq!(check_token(&n, Some("secret-1")), Ok(()));
        assert_eq!(
            check_token(&n, Some("secret-2")),
            Err("Invalid or missing agent token received.")
        );
        n.driver_internal_info
            .insert(internal::AGENT_TOKEN.into(), Value::from(TOKEN_SHOWN_AGAIN));
        assert!(check_token(&n, Some(TOKEN_SHOWN_AGAIN)).is_err());
    }
}
