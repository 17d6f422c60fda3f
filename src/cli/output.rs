//! How client answers are printed: aligned tables for people, pretty JSON
//! with `--json` for scripts.

use serde_json::Value;

use super::client::Client;

pub(super) fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows as an aligned table.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = || {
        let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        println!("+{}+", parts.join("+"));
    };
    let row = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        println!("|{}|", parts.join("|"));
    };
    line();
    row(headers.iter().map(|h| h.to_string()).collect());
    line();
    for r in rows {
        row(r.clone());
    }
    line();
}

impl Client {
    pub(super) fn print_object(&self, v: &Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            return;
        }
        let rows: Vec<Vec<String>> = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "links" | "ports" | "states" | "portgroups" | "volume"
                        )
                    })
                    .map(|(k, v)| vec![k.clone(), show_value(v)])
                    .collect()
            })
            .unwrap_or_default();
        table(&["Field", "Value"], &rows);
    }

    pub(super) fn print_list(&self, items: &[Value], columns: &[(&str, &str)]) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&Value::Array(items.to_vec())).unwrap_or_default()
            );
            return;
        }
        let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| columns.iter().map(|(_, k)| show_value(&i[*k])).collect())
            .collect();
        table(&headers, &rows);
    }
}
