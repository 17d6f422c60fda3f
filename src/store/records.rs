//! The inventory's other records — allocations, chassis, port groups, deploy
//! templates, runbooks, inspection rules, volume connectors and targets —
//! kept alike: one JSON document per record plus the columns that must be
//! unique (the UUID, the name, one kind-specific key) and the owning node,
//! whose deletion takes the record with it.
//!
//! Typed access goes through [`Record`] and the `Store` helpers; the
//! [`Backend`](super::Backend) sees only [`RecordRow`]s.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Page, Result, Store};
use crate::model::volume::KEY_SEP;

/// What kind of record a row is (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Allocation,
    Chassis,
    Portgroup,
    DeployTemplate,
    Runbook,
    InspectionRule,
    VolumeConnector,
    VolumeTarget,
    /// A node's inspection data (its UUID is the node's).
    Inventory,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Allocation => "allocation",
            Kind::Chassis => "chassis",
            Kind::Portgroup => "portgroup",
            Kind::DeployTemplate => "deploy_template",
            Kind::Runbook => "runbook",
            Kind::InspectionRule => "inspection_rule",
            Kind::VolumeConnector => "volume_connector",
            Kind::VolumeTarget => "volume_target",
            Kind::Inventory => "inventory",
        }
    }

    /// How Ironic's messages name the kind ("Portgroup", "Deploy template").
    pub fn label(self) -> &'static str {
        match self {
            Kind::Allocation => "Allocation",
            Kind::Chassis => "Chassis",
            Kind::Portgroup => "Portgroup",
            Kind::DeployTemplate => "Deploy template",
            Kind::Runbook => "Runbook",
            Kind::InspectionRule => "Rule",
            Kind::VolumeConnector => "Volume connector",
            Kind::VolumeTarget => "Volume target",
            Kind::Inventory => "Node inventory",
        }
    }

    /// The article and lower-case label of Ironic's "already exists" texts.
    fn a_label(self) -> String {
        let l = self.label().to_lowercase();
        let article = if matches!(self, Kind::Allocation) {
            "An"
        } else {
            "A"
        };
        format!("{article} {l}")
    }

    /// Ironic's message for a taken kind-specific unique key.
    fn duplicate_key(self, key: &str) -> String {
        match self {
            Kind::Portgroup => format!("A portgroup with MAC address {key} already exists."),
            Kind::VolumeConnector => {
                let (kind, id) = key.split_once(KEY_SEP).unwrap_or((key, ""));
                format!("A volume connector with type {kind} and connector ID {id} already exists.")
            }
            Kind::VolumeTarget => {
                let index = key.split_once(KEY_SEP).map_or(key, |(_, i)| i);
                format!(
                    "A volume target with boot index '{index}' for the same node already exists."
                )
            }
            k => format!("{} with key {key} already exists.", k.a_label()),
        }
    }
}

/// Which unique column a refused write collided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    Uuid(Uuid),
    Name(String),
    /// The kind's own unique key (a port group's MAC, …), as stored.
    Key(String),
}

/// The message of [`Error::DuplicateRecord`].
pub fn duplicate_message(kind: Kind, taken: &Taken) -> String {
    match taken {
        Taken::Uuid(u) => format!("{} with UUID {u} already exists.", kind.a_label()),
        Taken::Name(n) => format!("{} with name {n} already exists.", kind.a_label()),
        Taken::Key(k) => kind.duplicate_key(k),
    }
}

/// A record as the backend keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub uuid: Uuid,
    pub name: Option<String>,
    /// The node the record belongs to (deleted with it).
    pub node: Option<Uuid>,
    /// The kind-specific unique key, if the kind has one.
    pub key: Option<String>,
    /// The record's JSON document.
    pub doc: String,
}

/// One condition of a record listing: a top-level document field equals a
/// value (`Value::Null`: the field is null or absent).
pub type FieldEq = (&'static str, Value);

/// Which records a listing returns.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub node: Option<Uuid>,
    /// Every one of these holds.
    pub fields: Vec<FieldEq>,
    /// At least one of these holds (when any are given).
    pub any_of: Vec<FieldEq>,
    /// Records of nodes in one of these shards (when any are given).
    pub node_shards: Vec<String>,
    /// Records of nodes in one of these conductor groups (when any).
    pub node_conductor_groups: Vec<String>,
}

/// A record type the store keeps: its serde form is its document.
pub trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: Kind;
    fn uuid(&self) -> Uuid;
    fn name(&self) -> Option<&str> {
        None
    }
    fn node(&self) -> Option<Uuid> {
        None
    }
    fn unique_key(&self) -> Option<String> {
        None
    }

    /// The row this record is stored as.
    fn to_row(&self) -> Result<RecordRow> {
        Ok(RecordRow {
            uuid: self.uuid(),
            name: self.name().map(str::to_string),
            node: self.node(),
            key: self.unique_key(),
            doc: serde_json::to_string(self).map_err(|e| Error::Corrupt(e.to_string()))?,
        })
    }

    fn from_row(row: &RecordRow) -> Result<Self> {
        serde_json::from_str(&row.doc)
            .map_err(|e| Error::Corrupt(format!("{} document: {e}", Self::KIND.as_str())))
    }
}

/// A record write made in the same transaction as a node's save.
#[derive(Debug, Clone)]
pub enum RecordWrite {
    /// Replace a record that exists (matched by UUID; RecordNotFound, and
    /// nothing written, if it is gone).
    Put(Kind, RecordRow),
    Delete(Kind, Uuid),
}

impl RecordWrite {
    pub fn put<T: Record>(r: &T) -> Result<RecordWrite> {
        Ok(RecordWrite::Put(T::KIND, r.to_row()?))
    }
}

impl Store {
    /// Inserts a new record.
    pub fn create_record<T: Record>(&self, r: &T) -> Result<()> {
        self.insert_record(T::KIND, &r.to_row()?)
    }

    /// Writes a changed record (matched by UUID).
    pub fn save_record<T: Record>(&self, r: &T) -> Result<()> {
        self.update_record(T::KIND, &r.to_row()?)
    }

    /// Inserts a record, or replaces the one with its UUID.
    pub fn put_record<T: Record>(&self, r: &T) -> Result<()> {
        let row = r.to_row()?;
        match self.update_record(T::KIND, &row) {
            Err(Error::RecordNotFound { .. }) => self.insert_record(T::KIND, &row),
            other => other,
        }
    }

    /// Finds a record by UUID or name.
    pub fn get_record<T: Record>(&self, ident: &str) -> Result<T> {
        T::from_row(&self.find_record(T::KIND, ident)?)
    }

    /// Lists records in creation order (or by `page.sort`), a page at a time.
    pub fn list_records<T: Record>(&self, filter: &RecordFilter, page: Page) -> Result<Vec<T>> {
        self.select_records(T::KIND, filter, page)?
            .iter()
            .map(T::from_row)
            .collect()
    }

    /// Deletes a record.
    pub fn delete_record<T: Record>(&self, uuid: Uuid) -> Result<()> {
        self.remove_record(T::KIND, uuid)
    }
}

impl Record for crate::model::DeployTemplate {
    const KIND: Kind = Kind::DeployTemplate;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl Record for crate::model::Runbook {
    const KIND: Kind = Kind::Runbook;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl Record for crate::model::NodeInventory {
    const KIND: Kind = Kind::Inventory;
    fn uuid(&self) -> Uuid {
        self.node_uuid
    }
    fn node(&self) -> Option<Uuid> {
        Some(self.node_uuid)
    }
}

impl Record for crate::model::InspectionRule {
    const KIND: Kind = Kind::InspectionRule;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl Record for crate::model::VolumeConnector {
    const KIND: Kind = Kind::VolumeConnector;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
    fn node(&self) -> Option<Uuid> {
        Some(self.node_uuid)
    }
    fn unique_key(&self) -> Option<String> {
        Some(crate::model::VolumeConnector::unique_key(self))
    }
}

impl Record for crate::model::VolumeTarget {
    const KIND: Kind = Kind::VolumeTarget;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
    fn node(&self) -> Option<Uuid> {
        Some(self.node_uuid)
    }
    fn unique_key(&self) -> Option<String> {
        Some(crate::model::VolumeTarget::unique_key(self))
    }
}

impl Record for crate::model::Allocation {
    const KIND: Kind = Kind::Allocation;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn node(&self) -> Option<Uuid> {
        self.node_uuid
    }
}

impl Record for crate::model::Chassis {
    const KIND: Kind = Kind::Chassis;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl Record for crate::model::Portgroup {
    const KIND: Kind = Kind::Portgroup;
    fn uuid(&self) -> Uuid {
        self.uuid
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn node(&self) -> Option<Uuid> {
        Some(self.node_uuid)
    }
    fn unique_key(&self) -> Option<String> {
        self.address.clone()
    }
}
