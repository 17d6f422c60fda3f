//! The SQLite backend against the store's contract.

use super::schema::MIGRATIONS;
use crate::model::{HistoryEntry, Interfaces, Mac, Node, Port, Severity, State};
use crate::store::{Error, NodeFilter, Options, Page, Reservation, Store};
use rusqlite::Connection;
use uuid::Uuid;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("t.db"), Options::default()).unwrap();
    (dir, s)
}

fn node(name: &str) -> Node {
    let mut n = Node::new(
        Uuid::new_v4(),
        "fake-hardware",
        Interfaces::default(),
        State::Enroll,
        crate::model::now(),
    );
    n.name = Some(name.to_string());
    n
}

fn h(e: &str) -> HistoryEntry {
    HistoryEntry::new(Severity::Info, "provisioning", e)
}

#[test]
fn node_round_trip_by_uuid_and_name() {
    let (_d, s) = store();
    let n = node("a");
    s.create_node(&n, &h("created")).unwrap();
    assert_eq!(s.get_node("a").unwrap(), n);
    assert_eq!(s.get_node(&n.uuid.to_string()).unwrap(), n);
    assert!(matches!(s.get_node("b"), Err(Error::NodeNotFound(_))));
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
}

#[test]
fn duplicates_are_named() {
    let (_d, s) = store();
    s.create_node(&node("a"), &h("c")).unwrap();
    assert!(matches!(s.create_node(&node("a"), &h("c")), Err(Error::DuplicateName(n)) if n == "a"));
    let n = node("b");
    s.create_node(&n, &h("c")).unwrap();
    let mac: Mac = "52:54:00:00:00:01".parse().unwrap();
    let port = |uuid| Port {
        uuid,
        ..Port::new(mac, n.uuid)
    };
    s.create_port(&port(Uuid::new_v4()), &[]).unwrap();
    assert!(
        matches!(s.create_port(&port(Uuid::new_v4()), &[]), Err(Error::DuplicateMac(m)) if m == mac)
    );
    assert_eq!(s.get_port("52:54:00:00:00:01").unwrap().node_uuid, n.uuid);
    s.delete_node(n.uuid).unwrap();
    assert_eq!(s.counts().unwrap(), (1, 0), "ports go with their node");
}

#[test]
fn history_is_written_with_the_change_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        &dir.path().join("t.db"),
        Options {
            history_max_entries: 3,
            readers: 1,
        },
    )
    .unwrap();
    let mut n = node("a");
    s.create_node(&n, &h("0")).unwrap();
    for i in 1..6 {
        n.provision_state = State::Verifying;
        n.version = s.save_node(&n, &[h(&i.to_string())], None).unwrap();
    }
    let events: Vec<String> = s
        .node_history(n.uuid)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["3", "4", "5"]);
    assert_eq!(s.get_node("a").unwrap().provision_state, State::Verifying);
}

#[test]
fn pages_follow_the_marker() {
    let (_d, s) = store();
    let mut uuids = Vec::new();
    for i in 0..5 {
        let n = node(&format!("n{i}"));
        uuids.push(n.uuid);
        s.create_node(&n, &h("c")).unwrap();
    }
    let page = |marker| Page {
        sort: None,
        marker,
        limit: 2,
        descending: false,
    };
    let p1 = s.list_nodes(&NodeFilter::default(), page(None)).unwrap();
    assert_eq!(p1.iter().map(|n| n.uuid).collect::<Vec<_>>(), &uuids[0..2]);
    let p2 = s
        .list_nodes(&NodeFilter::default(), page(Some(uuids[1])))
        .unwrap();
    assert_eq!(p2.iter().map(|n| n.uuid).collect::<Vec<_>>(), &uuids[2..4]);
    let f = NodeFilter {
        provision_state: Some(State::Active),
        ..Default::default()
    };
    assert!(s.list_nodes(&f, page(None)).unwrap().is_empty());
}

#[test]
fn a_newer_schema_is_refused_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(Store::open(&path, Options::default()).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&path, Options::default())
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("newer than this rackboot understands"),
        "{err}"
    );
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let n = node("a");
    {
        let s = Store::open(&path, Options::default()).unwrap();
        s.create_node(&n, &h("c")).unwrap();
    }
    let s = Store::open(&path, Options::default()).unwrap();
    assert_eq!(s.get_node("a").unwrap(), n);
}

#[test]
fn two_appliances_on_one_file_cannot_hold_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let a = Store::open(&path, Options::default()).unwrap();
    let b = Store::open(&path, Options::default()).unwrap();
    let n = node("shared");
    a.create_node(&n, &h("c")).unwrap();
    let Reservation::Taken(held) = a.reserve(n.uuid, "appliance-a").unwrap() else {
        panic!("a free node is taken");
    };
    assert_eq!(held.reservation.as_deref(), Some("appliance-a"));
    assert_eq!(
        b.reserve(n.uuid, "appliance-b").unwrap(),
        Reservation::HeldBy("appliance-a".into()),
        "the second appliance sees the first one's reservation"
    );
    assert!(
        !b.release(n.uuid, "appliance-b").unwrap(),
        "only the holder releases"
    );
    assert_eq!(
        b.get_node("shared").unwrap().reservation.as_deref(),
        Some("appliance-a")
    );
    assert!(a.release(n.uuid, "appliance-a").unwrap());
    assert!(matches!(
        b.reserve(n.uuid, "appliance-b").unwrap(),
        Reservation::Taken(_)
    ));
    assert!(matches!(
        a.reserve(Uuid::new_v4(), "appliance-a"),
        Err(Error::NodeNotFound(_))
    ));
}

#[test]
fn many_threads_racing_for_a_node_take_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let first = Store::open(&path, Options::default()).unwrap();
    let n = node("race");
    first.create_node(&n, &h("c")).unwrap();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                scope.spawn(move || {
                    let s = Store::open(&path, Options::default()).unwrap();
                    matches!(
                        s.reserve(n.uuid, &format!("host-{i}")).unwrap(),
                        Reservation::Taken(_)
                    ) as usize
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
}

#[test]
fn a_stale_write_is_refused_as_a_conflict() {
    let (_d, s) = store();
    let n = node("a");
    s.create_node(&n, &h("c")).unwrap();
    let mut first = s.get_node("a").unwrap();
    let mut second = s.get_node("a").unwrap();
    first.description = Some("first".into());
    let v = s.save_node(&first, &[h("first")], None).unwrap();
    assert_eq!(v, first.version + 1);
    second.description = Some("second".into());
    let err = s.save_node(&second, &[h("second")], None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    let stored = s.get_node("a").unwrap();
    assert_eq!(stored.description.as_deref(), Some("first"), "nothing lost");
    assert_eq!(stored.version, 1);
    let events: Vec<String> = s
        .node_history(n.uuid)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["c", "first"], "the refused write left no history");
}

#[test]
fn saving_with_release_frees_only_the_holders_reservation() {
    let (_d, s) = store();
    let n = node("a");
    s.create_node(&n, &h("c")).unwrap();
    let Reservation::Taken(mut held) = s.reserve(n.uuid, "me").unwrap() else {
        panic!()
    };
    held.description = Some("x".into());
    held.version = s.save_node(&held, &[], Some("someone-else")).unwrap();
    assert_eq!(s.get_node("a").unwrap().reservation.as_deref(), Some("me"));
    s.save_node(&held, &[], Some("me")).unwrap();
    assert_eq!(s.get_node("a").unwrap().reservation, None);
}

#[test]
fn port_changes_write_their_notes_in_the_same_transaction() {
    let (_d, s) = store();
    let n = node("a");
    s.create_node(&n, &h("c")).unwrap();
    let mac: Mac = "52:54:00:00:00:09".parse().unwrap();
    let mut port = Port::new(mac, n.uuid);
    s.create_port(&port, &[(n.uuid, h("port created"))])
        .unwrap();
    port.pxe_enabled = false;
    s.save_port(&port, &[(n.uuid, h("port updated"))]).unwrap();
    // A failing change writes no note.
    let dup = Port::new(mac, n.uuid);
    assert!(s.create_port(&dup, &[(n.uuid, h("never"))]).is_err());
    s.delete_port(port.uuid, &[(n.uuid, h("port deleted"))])
        .unwrap();
    let events: Vec<String> = s
        .node_history(n.uuid)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        ["c", "port created", "port updated", "port deleted"]
    );
}

#[test]
fn leases_round_trip_typed() {
    use crate::model::{Lease, LeaseState};
    let (_d, s) = store();
    let l = Lease {
        ip: "10.0.0.5".parse().unwrap(),
        mac: [0x52, 0x54, 0, 0, 0, 1],
        state: LeaseState::Declined,
        expires: 99,
    };
    s.save_leases(&[l]).unwrap();
    assert_eq!(s.load_leases().unwrap(), vec![l]);
}

#[test]
fn document_fields_filter_listings() {
    let (_d, s) = store();
    let mut a = node("a");
    a.retired = true;
    a.lessee = Some("tenant-1".into());
    a.description = Some("Rack 7, 100% Busy_node".into());
    a.shard = Some("east".into());
    a.instance_name = Some("web-1".into());
    let mut b = node("b");
    b.owner = Some("tenant-1".into());
    b.parent_node = Some(a.uuid.to_string());
    b.description = Some("rack 8".into());
    let c = node("c");
    for n in [&a, &b, &c] {
        s.create_node(n, &h("c")).unwrap();
    }
    let names = |f: NodeFilter| -> Vec<String> {
        s.list_nodes(&f, Page::ALL)
            .unwrap()
            .into_iter()
            .filter_map(|n| n.name)
            .collect()
    };
    let cases: Vec<(NodeFilter, &[&str])> = vec![
        (
            NodeFilter {
                retired: Some(true),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                retired: Some(false),
                ..Default::default()
            },
            &["b", "c"],
        ),
        (
            NodeFilter {
                lessee: Some("tenant-1".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                project: Some("tenant-1".into()),
                ..Default::default()
            },
            &["a", "b"],
        ),
        (
            NodeFilter {
                description_contains: Some("RACK".into()),
                ..Default::default()
            },
            &["a", "b"],
        ),
        // LIKE's wildcards are matched literally.
        (
            NodeFilter {
                description_contains: Some("100%".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                description_contains: Some("y_n".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                description_contains: Some("%".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                shard: Some("east".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                sharded: Some(true),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                sharded: Some(false),
                ..Default::default()
            },
            &["b", "c"],
        ),
        (
            NodeFilter {
                instance_name: Some("web-1".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            NodeFilter {
                parent_node: Some(a.uuid.to_string()),
                ..Default::default()
            },
            &["b"],
        ),
    ];
    for (f, want) in cases {
        assert_eq!(names(f.clone()), want, "{f:?}");
    }
}
