//! Node rows: the document, the queried columns, the reservation
//! compare-and-set and the version check.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use rusqlite::types::Value as Sql;

use super::history::insert_history;
use super::records::{apply_writes, page_clause, sort_expr};
use super::{to_doc, unique_violation, Sqlite};
use crate::model::{HistoryEntry, Node, State};
use crate::store::{Error, NodeFilter, Page, RecordWrite, Reservation, Result};

/// The node columns a sort reads directly (the rest come from the document).
const SORT_COLUMNS: &[&str] = &[
    "uuid",
    "name",
    "instance_uuid",
    "driver",
    "provision_state",
    "maintenance",
    "resource_class",
    "conductor_group",
    "fault",
    "owner",
    "reservation",
];

/// The columns a node is read from, in the order [`node_from_row`] expects.
pub(super) const NODE_COLUMNS: &str = "doc, reservation, version";

/// A node from `doc, reservation, version` starting at column `at`.
pub(super) fn node_from_row(row: &rusqlite::Row, at: usize) -> Result<Node> {
    let doc: String = row.get(at)?;
    let mut node: Node =
        serde_json::from_str(&doc).map_err(|e| Error::Corrupt(format!("node document: {e}")))?;
    node.reservation = row.get(at + 1)?;
    node.version = row.get::<_, i64>(at + 2)?.max(0) as u64;
    Ok(node)
}

fn nodes_from(mut rows: rusqlite::Rows<'_>) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(node_from_row(row, 0)?);
    }
    Ok(out)
}

/// The error a unique constraint on a node column means.
fn node_conflict(tx: &Connection, e: &rusqlite::Error, node: &Node) -> Option<Error> {
    let msg = unique_violation(e)?;
    if msg.contains("nodes.name") {
        return Some(Error::DuplicateName(node.name.clone().unwrap_or_default()));
    }
    if msg.contains("nodes.uuid") {
        return Some(Error::DuplicateNodeUuid(node.uuid));
    }
    if msg.contains("nodes.instance_uuid") {
        let instance = node.instance_uuid.clone().unwrap_or_default();
        let other: Option<String> = tx
            .query_row(
                "SELECT uuid FROM nodes WHERE instance_uuid = ?1",
                [&instance],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        return Some(Error::InstanceAssociated {
            instance,
            node: other.unwrap_or_default(),
        });
    }
    None
}

/// The columns both writes of a node bind as ?1..?12: uuid, name,
/// instance_uuid, driver, provision_state, maintenance, resource_class,
/// conductor_group, fault, owner, the document and the version.
fn node_columns<'a>(node: &'a Node, doc: &'a str) -> [Box<dyn rusqlite::ToSql + 'a>; 12] {
    [
        Box::new(node.uuid.to_string()),
        Box::new(&node.name),
        Box::new(&node.instance_uuid),
        Box::new(&node.driver),
        Box::new(node.provision_state.as_str()),
        Box::new(node.maintenance),
        Box::new(&node.resource_class),
        Box::new(&node.conductor_group),
        Box::new(&node.fault),
        Box::new(&node.owner),
        Box::new(doc),
        Box::new(node.version as i64),
    ]
}

/// A node's row id, or NodeNotFound.
pub(super) fn node_id(conn: &Connection, uuid: Uuid) -> Result<i64> {
    conn.prepare_cached("SELECT id FROM nodes WHERE uuid = ?1")?
        .query_row([uuid.to_string()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NodeNotFound(uuid.to_string()))
}

impl Sqlite {
    pub(super) fn insert_node(&self, node: &Node, history: &HistoryEntry) -> Result<()> {
        let doc = to_doc(node)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let [c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12] = node_columns(node, &doc);
        let res = tx.execute(
            "INSERT INTO nodes (uuid, name, instance_uuid, driver, provision_state, maintenance,
                                resource_class, conductor_group, fault, owner, doc, version,
                                reservation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                c1,
                c2,
                c3,
                c4,
                c5,
                c6,
                c7,
                c8,
                c9,
                c10,
                c11,
                c12,
                node.reservation
            ],
        );
        if let Err(e) = res {
            return Err(node_conflict(&tx, &e, node).unwrap_or_else(|| e.into()));
        }
        let id = tx.last_insert_rowid();
        insert_history(&tx, id, history, self.options.history_max_entries)?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn find_node(&self, ident: &str) -> Result<Node> {
        let conn = self.reader();
        let (sql, key) = match ident.parse::<Uuid>() {
            Ok(u) => (
                format!("SELECT {NODE_COLUMNS} FROM nodes WHERE uuid = ?1"),
                u.to_string(),
            ),
            Err(_) => (
                format!("SELECT {NODE_COLUMNS} FROM nodes WHERE name = ?1"),
                ident.to_string(),
            ),
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([key])?;
        match rows.next()? {
            Some(row) => node_from_row(row, 0),
            None => Err(Error::NodeNotFound(ident.to_string())),
        }
    }

    pub(super) fn select_nodes(&self, filter: &NodeFilter, page: Page) -> Result<Vec<Node>> {
        let mut sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE 1=1");
        let mut args: Vec<Sql> = Vec::new();
        let mut eq = |col: &str, v: Sql, sql: &mut String| {
            args.push(v);
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        };
        if let Some(s) = filter.provision_state {
            eq("provision_state", Sql::Text(s.as_str().into()), &mut sql);
        }
        if let Some(d) = &filter.driver {
            eq("driver", Sql::Text(d.clone()), &mut sql);
        }
        if let Some(m) = filter.maintenance {
            eq("maintenance", Sql::Integer(m as i64), &mut sql);
        }
        if let Some(i) = &filter.instance_uuid {
            eq("instance_uuid", Sql::Text(i.clone()), &mut sql);
        }
        if let Some(r) = &filter.resource_class {
            eq("resource_class", Sql::Text(r.clone()), &mut sql);
        }
        if let Some(g) = &filter.conductor_group {
            eq("conductor_group", Sql::Text(g.clone()), &mut sql);
        }
        if let Some(f) = &filter.fault {
            eq("fault", Sql::Text(f.clone()), &mut sql);
        }
        if let Some(o) = &filter.owner {
            eq("owner", Sql::Text(o.clone()), &mut sql);
        }
        match filter.associated {
            Some(true) => sql.push_str(" AND instance_uuid IS NOT NULL"),
            Some(false) => sql.push_str(" AND instance_uuid IS NULL"),
            None => {}
        }
        // Fields kept only in the document.
        if let Some(r) = filter.retired {
            eq(
                "coalesce(json_extract(doc, '$.retired'), 0)",
                Sql::Integer(r as i64),
                &mut sql,
            );
        }
        for (field, value) in [
            ("lessee", &filter.lessee),
            ("instance_name", &filter.instance_name),
            ("shard", &filter.shard),
            ("parent_node", &filter.parent_node),
        ] {
            if let Some(v) = value {
                eq(
                    &format!("json_extract(doc, '$.{field}')"),
                    Sql::Text(v.clone()),
                    &mut sql,
                );
            }
        }
        if let Some(c) = &filter.chassis_uuid {
            eq(
                "json_extract(doc, '$.chassis_uuid')",
                Sql::Text(c.to_string()),
                &mut sql,
            );
        }
        match filter.sharded {
            Some(true) => sql.push_str(" AND json_extract(doc, '$.shard') IS NOT NULL"),
            Some(false) => sql.push_str(" AND json_extract(doc, '$.shard') IS NULL"),
            None => {}
        }
        if let Some(p) = &filter.project {
            args.push(Sql::Text(p.clone()));
            let n = args.len();
            sql.push_str(&format!(
                " AND (owner = ?{n} OR json_extract(doc, '$.lessee') = ?{n})"
            ));
        }
        if let Some(d) = &filter.description_contains {
            let escaped = d
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(Sql::Text(format!("%{escaped}%")));
            sql.push_str(&format!(
                " AND json_extract(doc, '$.description') LIKE ?{} ESCAPE '\\'",
                args.len()
            ));
        }
        if filter.exclude_children {
            sql.push_str(" AND json_extract(doc, '$.parent_node') IS NULL");
        }
        let conn = self.reader();
        let sort = page.sort.unwrap_or("id");
        sql.push_str(&page_clause(
            &conn,
            "nodes",
            "nodes",
            &|a| sort_expr(a, sort, SORT_COLUMNS),
            page,
            &mut args,
            Error::NodeNotFound,
        )?);
        let mut stmt = conn.prepare_cached(&sql)?;
        let out = nodes_from(stmt.query(rusqlite::params_from_iter(args.iter()))?)?;
        Ok(out)
    }

    pub(super) fn select_in_states(&self, states: &[State]) -> Result<Vec<Node>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE provision_state = ?1 ORDER BY id"
        ))?;
        let mut out = Vec::new();
        for s in states {
            out.extend(nodes_from(stmt.query([s.as_str()])?)?);
        }
        Ok(out)
    }

    pub(super) fn select_reserved_by(&self, host: &str) -> Result<Vec<Node>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE reservation = ?1 ORDER BY id"
        ))?;
        let out = nodes_from(stmt.query([host])?)?;
        Ok(out)
    }

    pub(super) fn update_node(
        &self,
        node: &Node,
        history: &[HistoryEntry],
        release: Option<&str>,
        records: &[RecordWrite],
    ) -> Result<u64> {
        let doc = to_doc(node)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let [c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12] = node_columns(node, &doc);
        let res = tx.execute(
            "UPDATE nodes SET name = ?2, instance_uuid = ?3, driver = ?4, provision_state = ?5,
                maintenance = ?6, resource_class = ?7, conductor_group = ?8, fault = ?9,
                owner = ?10, doc = ?11, version = version + 1,
                reservation = CASE WHEN ?13 IS NOT NULL AND reservation = ?13 THEN NULL
                                   ELSE reservation END
             WHERE uuid = ?1 AND version = ?12",
            params![c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, release],
        );
        let changed = match res {
            Ok(n) => n,
            Err(e) => return Err(node_conflict(&tx, &e, node).unwrap_or_else(|| e.into())),
        };
        if changed == 0 {
            let found: Option<i64> = tx
                .query_row(
                    "SELECT version FROM nodes WHERE uuid = ?1",
                    [node.uuid.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            return Err(match found {
                None => Error::NodeNotFound(node.uuid.to_string()),
                Some(found) => Error::Conflict {
                    node: node.uuid,
                    expected: node.version,
                    found: found.max(0) as u64,
                },
            });
        }
        if !history.is_empty() {
            let id = node_id(&tx, node.uuid)?;
            for h in history {
                insert_history(&tx, id, h, self.options.history_max_entries)?;
            }
        }
        apply_writes(&tx, records)?;
        tx.commit()?;
        Ok(node.version + 1)
    }

    pub(super) fn remove_node(&self, uuid: Uuid) -> Result<()> {
        let conn = self.writer();
        let n = conn.execute("DELETE FROM nodes WHERE uuid = ?1", [uuid.to_string()])?;
        if n == 0 {
            return Err(Error::NodeNotFound(uuid.to_string()));
        }
        Ok(())
    }

    pub(super) fn compare_and_reserve(&self, uuid: Uuid, host: &str) -> Result<Reservation> {
        let conn = self.writer();
        let mut stmt = conn.prepare_cached(&format!(
            "UPDATE nodes SET reservation = ?2 WHERE uuid = ?1 AND reservation IS NULL
             RETURNING {NODE_COLUMNS}"
        ))?;
        let mut rows = stmt.query(params![uuid.to_string(), host])?;
        if let Some(row) = rows.next()? {
            let node = node_from_row(row, 0);
            drop(rows);
            return match node {
                Ok(node) => Ok(Reservation::Taken(Box::new(node))),
                Err(e) => {
                    // Taken but unreadable: give it back before failing.
                    conn.execute(
                        "UPDATE nodes SET reservation = NULL WHERE uuid = ?1 AND reservation = ?2",
                        params![uuid.to_string(), host],
                    )?;
                    Err(e)
                }
            };
        }
        drop(rows);
        let holder: Option<Option<String>> = conn
            .prepare_cached("SELECT reservation FROM nodes WHERE uuid = ?1")?
            .query_row([uuid.to_string()], |r| r.get(0))
            .optional()?;
        match holder {
            None => Err(Error::NodeNotFound(uuid.to_string())),
            Some(Some(h)) => Ok(Reservation::HeldBy(h)),
            // Released between the two statements: whoever is next wins.
            Some(None) => Ok(Reservation::HeldBy(String::from("(just released)"))),
        }
    }

    pub(super) fn release_reservation(&self, uuid: Uuid, host: &str) -> Result<bool> {
        let conn = self.writer();
        let n = conn
            .prepare_cached(
                "UPDATE nodes SET reservation = NULL WHERE uuid = ?1 AND reservation = ?2",
            )?
            .execute(params![uuid.to_string(), host])?;
        Ok(n == 1)
    }

    pub(super) fn count_by_state(&self) -> Result<Vec<(String, u64)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT provision_state, count(*) FROM nodes GROUP BY provision_state ORDER BY provision_state",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let n: i64 = r.get(1)?;
            out.push((r.get::<_, String>(0)?, n as u64));
        }
        Ok(out)
    }
}
