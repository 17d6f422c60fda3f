//! The SQLite schema and its migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::store::{Error, Result};

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: nodes, ports, history
    "CREATE TABLE nodes (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        name TEXT UNIQUE,
        instance_uuid TEXT UNIQUE,
        driver TEXT NOT NULL,
        provision_state TEXT NOT NULL,
        maintenance INTEGER NOT NULL,
        reservation TEXT,
        resource_class TEXT,
        conductor_group TEXT NOT NULL DEFAULT '',
        fault TEXT,
        owner TEXT,
        doc TEXT NOT NULL
     );
     CREATE INDEX nodes_provision_state ON nodes(provision_state);
     CREATE TABLE ports (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL UNIQUE,
        node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        doc TEXT NOT NULL
     );
     CREATE INDEX ports_node ON ports(node_id);
     CREATE TABLE node_history (
        id INTEGER PRIMARY KEY,
        node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        doc TEXT NOT NULL
     );
     CREATE INDEX node_history_node ON node_history(node_id, id);",
    // 2: DHCP leases (one row per address; written in batches)
    "CREATE TABLE dhcp_leases (
        ip TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        state TEXT NOT NULL,
        expires INTEGER NOT NULL
     );",
    // 3: row versions (optimistic concurrency); the reservation column is
    // the lock's only record from here on.
    "ALTER TABLE nodes ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX nodes_reservation ON nodes(reservation);",
    // 4: the other records (allocations, chassis, port groups, templates,
    // runbooks, inspection rules, volume connectors and targets), one
    // table: the document, the unique columns and the owning node.
    "CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        uuid TEXT NOT NULL UNIQUE,
        name TEXT,
        key TEXT,
        node_id INTEGER REFERENCES nodes(id) ON DELETE CASCADE,
        doc TEXT NOT NULL,
        UNIQUE (kind, name),
        UNIQUE (kind, key)
     );
     CREATE INDEX records_kind ON records(kind, id);
     CREATE INDEX records_node ON records(node_id);",
];

/// Brings the database to the newest schema; refuses a newer one.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let version = user_version(conn)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::Database(format!(
            "database schema version {version} is newer than this rackboot understands ({known}); \
             run a newer rackboot or restore a backup"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

pub(super) fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}
