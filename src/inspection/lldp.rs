//! LLDP TLVs as ironic-python-agent reports them (`[[type, "<hex>"], …]`
//! per interface) turned into a port's `local_link_connection`, as Ironic's
//! local-link-connection hook does: the Port ID TLV gives `port_id`, a
//! MAC chassis ID gives `switch_id`, the System Name gives `switch_info`.

use serde_json::Value;

const CHASSIS_ID: u64 = 1;
const PORT_ID: u64 = 2;
const SYSTEM_NAME: u64 = 5;

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("TLV value {s:?} is not valid hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| format!("TLV value {s:?} is not valid hex"))
        })
        .collect()
}

fn mac_text(b: &[u8]) -> Option<String> {
    (b.len() == 6).then(|| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// An IANA address family value (RFC 2922) as text.
fn address(b: &[u8]) -> Option<String> {
    let (&family, a) = b.split_first()?;
    match family {
        1 => <[u8; 4]>::try_from(a)
            .ok()
            .map(|o| std::net::Ipv4Addr::from(o).to_string()),
        2 => <[u8; 16]>::try_from(a)
            .ok()
            .map(|o| std::net::Ipv6Addr::from(o).to_string()),
        6 => mac_text(a),
        _ => None,
    }
}

/// The keys a list of TLVs gives. Err says why the list was given up on
/// (Ironic stops at the first bad TLV of an interface and keeps nothing).
pub fn local_link_connection(tlvs: &Value) -> Result<Vec<(String, String)>, String> {
    let list = tlvs
        .as_array()
        .ok_or_else(|| "LLDP data is not a list of [type, value] pairs".to_string())?;
    let mut out = Vec::new();
    for t in list {
        let (Some(kind), Some(value)) = (
            t.get(0).and_then(Value::as_u64),
            t.get(1).and_then(Value::as_str),
        ) else {
            return Err(format!("LLDP TLV {t} is not a [type, hex value] pair"));
        };
        if !matches!(kind, CHASSIS_ID | PORT_ID | SYSTEM_NAME) {
            continue;
        }
        let bytes = hex(value)?;
        let text = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .trim_end_matches('\0')
                .to_string()
        };
        match kind {
            PORT_ID => {
                let (&sub, rest) = bytes
                    .split_first()
                    .ok_or_else(|| "empty Port ID TLV".to_string())?;
                let v = match sub {
                    1 | 2 | 5 | 7 => Some(text(rest)),
                    3 => mac_text(rest),
                    4 => address(rest),
                    _ => return Err(format!("Port ID subtype {sub} is not understood")),
                };
                let v = v.ok_or_else(|| format!("Port ID of subtype {sub} is malformed"))?;
                out.push(("port_id".into(), v));
            }
            CHASSIS_ID => {
                let (&sub, rest) = bytes
                    .split_first()
                    .ok_or_else(|| "empty Chassis ID TLV".to_string())?;
                // Only a MAC chassis ID names the switch (as Ironic).
                if sub == 4 {
                    let v =
                        mac_text(rest).ok_or_else(|| "Chassis ID MAC is malformed".to_string())?;
                    out.push(("switch_id".into(), v));
                }
            }
            _ => out.push(("switch_info".into(), text(&bytes))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tlv_table() {
        // TLVs as lldpd-fed switches send them, hex as IPA reports them.
        type Case = (
            Value,
            Result<Vec<(&'static str, &'static str)>, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                json!([
                    [1, "04885a92ec5459"],
                    [2, "0545746865726e6574312f3138"],
                    [5, "737769746368302e6c6162"],
                    [8, "0501c0a80001"]
                ]),
                Ok(vec![
                    ("switch_id", "88:5a:92:ec:54:59"),
                    ("port_id", "Ethernet1/18"),
                    ("switch_info", "switch0.lab"),
                ]),
            ),
            // Port ID as a MAC; a chassis ID that is not a MAC is not used.
            (
                json!([[1, "0773773031"], [2, "03aabbccddeeff"]]),
                Ok(vec![("port_id", "aa:bb:cc:dd:ee:ff")]),
            ),
            // Port ID as an IPv4 network address.
            (
                json!([[2, "0401c0a8000a"]]),
                Ok(vec![("port_id", "192.168.0.10")]),
            ),
            (json!([[2, "zz"]]), Err("not valid hex")),
            (json!([[2, "09aa"]]), Err("subtype 9")),
            (json!([[1, "04aabb"]]), Err("Chassis ID MAC is malformed")),
            (json!({"x": 1}), Err("not a list")),
        ];
        for (tlvs, want) in cases {
            let got = local_link_connection(&tlvs);
            match want {
                Ok(w) => {
                    let w: Vec<(String, String)> = w
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    assert_eq!(got, Ok(w), "{tlvs}");
                }
                Err(part) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(part)),
                    "{tlvs}: {got:?}"
                ),
            }
        }
    }
}
