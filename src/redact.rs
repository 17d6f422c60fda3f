//! Secret masking, in one place: which keys are secrets (oslo's sanitize
//! list), JSON maps serialized with their secrets masked (`Masked`), free
//! text with embedded credentials masked (`mask_text`), and image references
//! made safe for messages and logs (`redact`).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Key fragments whose values are never shown (oslo's sanitize keys).
const SECRET_KEYS: &[&str] = &[
    "password",
    "secret",
    "token",
    "admin_pass",
    "configdrive",
    "private_key",
    "passphrase",
    "snmp_auth_key",
    "snmp_priv_key",
    "fernetkey",
    "sslkey",
    "cephkey",
    "encrypted_key",
    "access_key",
    "cert_key",
    "vnc_key",
    "keystone_key",
    "chappassword",
    "sys_pswd",
    "new_pass",
];

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
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

/// A JSON map shown with secrets masked, serialized without copying it.
pub struct Masked<'a> {
    pub map: &'a Map<String, Value>,
    pub extra: &'a [&'a str],
}

impl Serialize for Masked<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            if is_secret(k) || self.extra.contains(&k.as_str()) {
                m.serialize_entry(k, "******")?;
            } else {
                m.serialize_entry(
                    k,
                    &MaskedValue {
                        value: v,
                        extra: self.extra,
                    },
                )?;
            }
        }
        m.end()
    }
}

/// A value inside a masked map: nested maps and lists are masked too, and
/// strings lose embedded credentials (`http://user:pw@…`, `password=…`).
struct MaskedValue<'a> {
    value: &'a Value,
    extra: &'a [&'a str],
}

impl Serialize for MaskedValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(inner) => Masked {
                map: inner,
                extra: self.extra,
            }
            .serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&MaskedValue {
                        value: item,
                        extra: self.extra,
                    })?;
                }
                seq.end()
            }
            Value::String(text) => s.serialize_str(&mask_text(text)),
            other => other.serialize(s),
        }
    }
}

/// Masks credentials inside free text: URL user info and secret-looking
/// query values (via `redact`), and `password=…`/`token: …` pairs.
pub fn mask_text(text: &str) -> std::borrow::Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let words = ["password", "passwd", "secret", "token"];
    if !text.contains("://") && !words.iter().any(|w| lower.contains(w)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = redact(text);
    for w in words {
        let mut from = 0;
        loop {
            let lower_out = out.to_ascii_lowercase();
            let Some(pos) = lower_out[from..].find(w).map(|p| p + from) else {
                break;
            };
            let bytes = out.as_bytes();
            let is_space = |b: u8| b == b' ' || b == b'\t';
            let is_quote = |b: u8| b == b'"' || b == b'\'';
            // The rest of the key ("password_hash"), a closing quote and
            // spaces (JSON style), then "=" or ":".
            let mut i = pos + w.len();
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            while i < bytes.len() && (is_space(bytes[i]) || is_quote(bytes[i])) {
                i += 1;
            }
            if i >= bytes.len() || !(bytes[i] == b'=' || bytes[i] == b':') {
                from = i;
                continue;
            }
            i += 1;
            while i < bytes.len() && is_space(bytes[i]) {
                i += 1;
            }
            // A quoted value runs to its closing quote; a bare one to a separator.
            let (start, end) = if i < bytes.len() && is_quote(bytes[i]) {
                let q = bytes[i];
                let close = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == q)
                    .map_or(bytes.len(), |p| i + 1 + p);
                (i + 1, close)
            } else {
                let stop = bytes[i..]
                    .iter()
                    .position(|&b| is_space(b) || is_quote(b) || matches!(b, b'&' | b',' | b';'))
                    .map_or(bytes.len(), |p| i + p);
                (i, stop)
            };
            // Offsets stay on char boundaries: every scan stops on an ASCII
            // byte or the end, and "******" is ASCII.
            if end > start {
                out.replace_range(start..end, "******");
                from = start + "******".len();
            } else {
                from = i;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn secrets_are_masked_recursively() {
        let m = json!({
            "ipmi_address": "10.0.0.5",
            "ipmi_password": "hunter2",
            "nested": {"auth_token": "abc", "x": 1},
            "url": "http://u:pw@h/x?token=t"
        });
        let masked = serde_json::to_value(Masked {
            map: m.as_object().unwrap(),
            extra: &[],
        })
        .unwrap();
        assert_eq!(masked["ipmi_password"], "******");
        assert_eq!(masked["nested"]["auth_token"], "******");
        assert_eq!(masked["nested"]["x"], 1);
        assert_eq!(masked["ipmi_address"], "10.0.0.5");
        assert!(!masked.to_string().contains("hunter2"));
        assert!(!masked.to_string().contains("pw@"));
    }

    #[test]
    fn text_masking_cases() {
        let cases = [
            ("plain text", "plain text"),
            ("password=hunter2 other", "password=****** other"),
            ("--password=\"a b\"", "--password=\"******\""),
            (
                "{\"password\": \"x y\", \"n\": 1}",
                "{\"password\": \"******\", \"n\": 1}",
            ),
            ("password = x", "password = ******"),
            ("password='unterminated", "password='******"),
            ("token: abc,next", "token: ******,next"),
            ("ipmi_password_hint", "ipmi_password_hint"),
            ("http://u:p@h/x", "http://******@h/x"),
            ("opts secret=1&x=2", "opts secret=******&x=2"),
            ("password=,ééé token=ü", "password=,ééé token=******"),
            ("ünïcødé password:é€", "ünïcødé password:******"),
            ("password=", "password="),
        ];
        for (input, want) in cases {
            assert_eq!(mask_text(input), want, "{input}");
        }
        // Every arrangement of awkward pieces: no panic, no secret left behind.
        let pieces = [
            "password", "=", ":", " ", "é", "\"", "&", ",", "token", "s3", "://", "@", "?",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let _ = mask_text(&format!("{a}{b}{c}{d}"));
                    }
                }
            }
        }
        assert!(!mask_text("x password=s3 y").contains("s3"));
        let nested = json!({"list": [{"ipmi_password": "x"}, "password=y"], "ok": [1, 2]});
        let masked = serde_json::to_value(Masked {
            map: nested.as_object().unwrap(),
            extra: &[],
        })
        .unwrap();
        assert_eq!(
            masked,
            json!({"list": [{"ipmi_password": "******"}, "password=******"], "ok": [1, 2]})
        );
    }
}
