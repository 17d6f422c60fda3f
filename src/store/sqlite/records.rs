//! Rows of the `records` table: one JSON document per record, the unique
//! columns (UUID, name and the kind's own key, each unique per kind) and the
//! owning node, whose deletion cascades to its records.

use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use uuid::Uuid;

use super::nodes::node_id;
use super::{unique_violation, Sqlite};
use crate::store::{Error, Kind, Page, RecordFilter, RecordRow, RecordWrite, Result, Taken};

/// The error a failed record write means.
fn record_conflict(e: rusqlite::Error, kind: Kind, row: &RecordRow) -> Error {
    let taken = match unique_violation(&e) {
        Some(m) if m.contains("records.uuid") => Taken::Uuid(row.uuid),
        Some(m) if m.contains("records.name") => Taken::Name(row.name.clone().unwrap_or_default()),
        Some(m) if m.contains("records.key") => Taken::Key(row.key.clone().unwrap_or_default()),
        _ => return e.into(),
    };
    Error::DuplicateRecord { kind, taken }
}

fn owner(conn: &Connection, row: &RecordRow) -> Result<Option<i64>> {
    row.node.map(|n| node_id(conn, n)).transpose()
}

/// Inserts (`insert`) or updates the row; a missing row to update is
/// RecordNotFound.
pub(super) fn write_record(
    conn: &Connection,
    kind: Kind,
    row: &RecordRow,
    insert: bool,
) -> Result<()> {
    let node = owner(conn, row)?;
    let sql = if insert {
        "INSERT INTO records (kind, uuid, name, key, node_id, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    } else {
        "UPDATE records SET name = ?3, key = ?4, node_id = ?5, doc = ?6
         WHERE kind = ?1 AND uuid = ?2"
    };
    let n = conn
        .prepare_cached(sql)?
        .execute(params![
            kind.as_str(),
            row.uuid.to_string(),
            row.name,
            row.key,
            node,
            row.doc
        ])
        .map_err(|e| record_conflict(e, kind, row))?;
    if n == 0 {
        return Err(Error::RecordNotFound {
            kind,
            ident: row.uuid.to_string(),
        });
    }
    Ok(())
}

pub(super) fn delete_record(conn: &Connection, kind: Kind, uuid: Uuid) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM records WHERE kind = ?1 AND uuid = ?2")?
        .execute(params![kind.as_str(), uuid.to_string()])?;
    if n == 0 {
        return Err(Error::RecordNotFound {
            kind,
            ident: uuid.to_string(),
        });
    }
    Ok(())
}

/// Applies record writes made with a node's save, in its transaction.
pub(super) fn apply_writes(conn: &Connection, writes: &[RecordWrite]) -> Result<()> {
    for w in writes {
        match w {
            RecordWrite::Put(kind, row) => write_record(conn, *kind, row, false)?,
            // Already gone is fine: the write's aim holds.
            RecordWrite::Delete(kind, uuid) => match delete_record(conn, *kind, *uuid) {
                Ok(()) | Err(Error::RecordNotFound { .. }) => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(())
}

const ROW_COLUMNS: &str = "r.uuid, r.name, n.uuid, r.key, r.doc";

fn row_from(r: &rusqlite::Row) -> Result<RecordRow> {
    let uuid: String = r.get(0)?;
    let node: Option<String> = r.get(2)?;
    let parse = |s: &str| {
        s.parse::<Uuid>()
            .map_err(|e| Error::Corrupt(format!("record UUID {s}: {e}")))
    };
    Ok(RecordRow {
        uuid: parse(&uuid)?,
        name: r.get(1)?,
        node: node.as_deref().map(parse).transpose()?,
        key: r.get(3)?,
        doc: r.get(4)?,
    })
}

/// A document field as an SQL value for an equality test.
fn sql_value(v: &Value) -> Option<Sql> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(Sql::Integer(*b as i64)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().unwrap_or_default()),
        }),
        Value::String(s) => Some(Sql::Text(s.clone())),
        // Arrays and objects compare as their JSON text.
        other => Some(Sql::Text(other.to_string())),
    }
}

/// The SQL expression a sort field is read from in the row aliased `a`: a
/// column when there is one, else the document (nulls first, as ''), and
/// always the row id after it.
pub(super) fn sort_expr(a: &str, field: &str, columns: &[&str]) -> String {
    if field == "id" {
        format!("{a}.id")
    } else if columns.contains(&field) {
        format!("coalesce({a}.{field}, '')")
    } else if let Some(kind) = field.strip_suffix("_interface") {
        format!("coalesce(json_extract({a}.doc, '$.interfaces.{kind}'), '')")
    } else {
        format!("coalesce(json_extract({a}.doc, '$.{field}'), '')")
    }
}

/// Appends `AND expr IN (values…)` when there are values.
pub(super) fn node_in(sql: &mut String, args: &mut Vec<Sql>, expr: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let mut marks = Vec::with_capacity(values.len());
    for v in values {
        args.push(Sql::Text(v.clone()));
        marks.push(format!("?{}", args.len()));
    }
    // Case-insensitive, as the API lower-cases the values it is given.
    sql.push_str(&format!(" AND lower({expr}) IN ({})", marks.join(", ")));
}

/// Appends the marker condition, the order and the limit of `page` to a
/// query of `table` (aliased `alias`), binding into `args`. `key(a)` is the
/// sort expression for the row aliased `a`. The marker must exist (else
/// `missing`), and the page continues after it in (sort key, id) order.
pub(super) fn page_clause(
    conn: &Connection,
    table: &str,
    alias: &str,
    key: &dyn Fn(&str) -> String,
    page: Page,
    args: &mut Vec<Sql>,
    missing: impl FnOnce(String) -> Error,
) -> Result<String> {
    let mut sql = String::new();
    let (op, dir) = if page.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(m) = page.marker {
        let known: Option<i64> = conn
            .prepare_cached(&format!("SELECT id FROM {table} WHERE uuid = ?1"))?
            .query_row([m.to_string()], |r| r.get(0))
            .optional()?;
        if known.is_none() {
            return Err(missing(m.to_string()));
        }
        args.push(Sql::Text(m.to_string()));
        sql.push_str(&format!(
            " AND ({}, {alias}.id) {op} (SELECT {}, m.id FROM {table} m WHERE m.uuid = ?{})",
            key(alias),
            key("m"),
            args.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY {} {dir}, {alias}.id {dir} LIMIT {}",
        key(alias),
        page.limit
    ));
    Ok(sql)
}

impl Sqlite {
    pub(super) fn put_record(&self, kind: Kind, row: &RecordRow, insert: bool) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_record(&tx, kind, row, insert)?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn drop_record(&self, kind: Kind, uuid: Uuid) -> Result<()> {
        delete_record(&self.writer(), kind, uuid)
    }

    pub(super) fn get_record_row(&self, kind: Kind, ident: &str) -> Result<RecordRow> {
        let conn = self.reader();
        let by = if ident.parse::<Uuid>().is_ok() {
            "uuid"
        } else {
            "name"
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM records r LEFT JOIN nodes n ON n.id = r.node_id
             WHERE r.kind = ?1 AND r.{by} = ?2"
        ))?;
        let mut rows = stmt.query(params![kind.as_str(), ident])?;
        match rows.next()? {
            Some(r) => row_from(r),
            None => Err(Error::RecordNotFound {
                kind,
                ident: ident.to_string(),
            }),
        }
    }

    pub(super) fn list_record_rows(
        &self,
        kind: Kind,
        filter: &RecordFilter,
        page: Page,
    ) -> Result<Vec<RecordRow>> {
        let conn = self.reader();
        let mut args: Vec<Sql> = vec![Sql::Text(kind.as_str().to_string())];
        let mut sql = format!(
            "SELECT {ROW_COLUMNS} FROM records r LEFT JOIN nodes n ON n.id = r.node_id
             WHERE r.kind = ?1"
        );
        if let Some(node) = filter.node {
            args.push(Sql::Text(node.to_string()));
            sql.push_str(&format!(" AND n.uuid = ?{}", args.len()));
        }
        for (field, value) in &filter.fields {
            let expr = format!("json_extract(r.doc, '$.{field}')");
            match sql_value(value) {
                None => sql.push_str(&format!(" AND {expr} IS NULL")),
                Some(v) => {
                    args.push(v);
                    sql.push_str(&format!(" AND {expr} = ?{}", args.len()));
                }
            }
        }
        node_in(
            &mut sql,
            &mut args,
            "json_extract(n.doc, '$.shard')",
            &filter.node_shards,
        );
        node_in(
            &mut sql,
            &mut args,
            "n.conductor_group",
            &filter.node_conductor_groups,
        );
        if !filter.any_of.is_empty() {
            let mut any = Vec::new();
            for (field, value) in &filter.any_of {
                let expr = format!("json_extract(r.doc, '$.{field}')");
                match sql_value(value) {
                    None => any.push(format!("{expr} IS NULL")),
                    Some(v) => {
                        args.push(v);
                        any.push(format!("{expr} = ?{}", args.len()));
                    }
                }
            }
            sql.push_str(&format!(" AND ({})", any.join(" OR ")));
        }
        let sort = page.sort.unwrap_or("id");
        sql.push_str(&page_clause(
            &conn,
            "records",
            "r",
            &|a| sort_expr(a, sort, &["uuid", "name"]),
            page,
            &mut args,
            |ident| Error::RecordNotFound { kind, ident },
        )?);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row_from(r)?);
        }
        Ok(out)
    }
}
