//! Port rows: the document, the unique MAC column and the owning node; each
//! change writes its history notes in the same transaction.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use rusqlite::types::Value as Sql;

use super::history::note_nodes;
use super::nodes::{node_from_row, node_id, NODE_COLUMNS};
use super::records::{page_clause, sort_expr};
use super::{collect, to_doc, unique_violation, Sqlite};
use crate::model::{Mac, Node, Port};
use crate::store::{Error, NodeNotes, Page, PortFilter, Result};

fn port_from_doc(doc: &str) -> Result<Port> {
    serde_json::from_str(doc).map_err(|e| Error::Corrupt(format!("port document: {e}")))
}

fn port_conflict(e: rusqlite::Error, port: &Port) -> Error {
    match unique_violation(&e) {
        Some(m) if m.contains("ports.address") => Error::DuplicateMac(port.address),
        Some(m) if m.contains("ports.uuid") => Error::DuplicatePortUuid(port.uuid),
        _ => e.into(),
    }
}

fn owner_id(conn: &Connection, port: &Port) -> Result<i64> {
    node_id(conn, port.node_uuid)
}

impl Sqlite {
    pub(super) fn insert_port(&self, port: &Port, notes: NodeNotes) -> Result<()> {
        self.write_port(
            "INSERT INTO ports (uuid, address, node_id, doc) VALUES (?1, ?2, ?3, ?4)",
            port,
            notes,
        )
    }

    /// Writes a port row with `sql` (binding uuid, address, node id and
    /// document as ?1..?4) and its notes, in one transaction; a row that
    /// was not there to write is PortNotFound, with nothing written.
    fn write_port(&self, sql: &str, port: &Port, notes: NodeNotes) -> Result<()> {
        let doc = to_doc(port)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let node_id = owner_id(&tx, port)?;
        let written = tx
            .execute(
                sql,
                params![
                    port.uuid.to_string(),
                    port.address.to_string(),
                    node_id,
                    doc
                ],
            )
            .map_err(|e| port_conflict(e, port))?;
        if written == 0 {
            return Err(Error::PortNotFound(port.uuid.to_string()));
        }
        note_nodes(&tx, notes, self.options.history_max_entries)?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn find_port(&self, ident: &str) -> Result<Port> {
        let conn = self.reader();
        let doc: Option<String> = if let Ok(u) = ident.parse::<Uuid>() {
            conn.prepare_cached("SELECT doc FROM ports WHERE uuid = ?1")?
                .query_row([u.to_string()], |r| r.get(0))
                .optional()?
        } else if let Ok(m) = ident.parse::<Mac>() {
            conn.prepare_cached("SELECT doc FROM ports WHERE address = ?1")?
                .query_row([m.to_string()], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        match doc {
            Some(d) => port_from_doc(&d),
            None => Err(Error::PortNotFound(ident.to_string())),
        }
    }

    pub(super) fn select_ports(&self, filter: &PortFilter, page: Page) -> Result<Vec<Port>> {
        let conn = self.reader();
        let mut sql =
            String::from("SELECT p.doc FROM ports p JOIN nodes n ON n.id = p.node_id WHERE 1=1");
        let mut args: Vec<Sql> = Vec::new();
        if let Some(n) = filter.node_uuid {
            args.push(Sql::Text(n.to_string()));
            sql.push_str(&format!(" AND n.uuid = ?{}", args.len()));
        }
        if let Some(g) = filter.portgroup_uuid {
            args.push(Sql::Text(g.to_string()));
            sql.push_str(&format!(
                " AND json_extract(p.doc, '$.portgroup_uuid') = ?{}",
                args.len()
            ));
        }
        if let Some(a) = filter.address {
            args.push(Sql::Text(a.to_string()));
            sql.push_str(&format!(" AND p.address = ?{}", args.len()));
        }
        super::records::node_in(
            &mut sql,
            &mut args,
            "json_extract(n.doc, '$.shard')",
            &filter.shards,
        );
        super::records::node_in(
            &mut sql,
            &mut args,
            "n.conductor_group",
            &filter.conductor_groups,
        );
        if let Some(d) = &filter.description_contains {
            args.push(Sql::Text(d.clone()));
            sql.push_str(&format!(
                " AND instr(coalesce(json_extract(p.doc, '$.description'), ''), ?{}) > 0",
                args.len()
            ));
        }
        let sort = page.sort.unwrap_or("id");
        sql.push_str(&page_clause(
            &conn,
            "ports",
            "p",
            &|a| sort_expr(a, sort, &["uuid", "address"]),
            page,
            &mut args,
            Error::PortNotFound,
        )?);
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let out = collect(rows, port_from_doc)?;
        Ok(out)
    }

    pub(super) fn update_port(&self, port: &Port, notes: NodeNotes) -> Result<()> {
        self.write_port(
            "UPDATE ports SET address = ?2, node_id = ?3, doc = ?4 WHERE uuid = ?1",
            port,
            notes,
        )
    }

    pub(super) fn remove_port(&self, uuid: Uuid, notes: NodeNotes) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM ports WHERE uuid = ?1", [uuid.to_string()])?;
        if n == 0 {
            return Err(Error::PortNotFound(uuid.to_string()));
        }
        note_nodes(&tx, notes, self.options.history_max_entries)?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn select_boot_entries(&self) -> Result<Vec<(Port, Node)>> {
        let conn = self.reader();
        let cols = NODE_COLUMNS
            .split(", ")
            .map(|c| format!("n.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT p.doc, {cols} FROM ports p JOIN nodes n ON n.id = p.node_id"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let p: String = r.get(0)?;
            out.push((port_from_doc(&p)?, node_from_row(r, 1)?));
        }
        Ok(out)
    }
}
