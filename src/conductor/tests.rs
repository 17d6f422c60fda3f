//! Conductor unit tests: verbs on fake nodes against a real SQLite file.

use super::*;
use serde_json::json;

/// A conductor over a fresh SQLite file in `dir` (shared by the
/// conductor's other test modules).
pub(super) fn conductor(dir: &tempfile::TempDir, settings: Settings) -> Conductor {
    let store = Store::open(&dir.path().join("t.db"), store::Options::default()).unwrap();
    Conductor::new(store, Arc::new(Registry::standard()), settings)
}

/// A `fake-hardware` node named `name` in `state`, not yet stored.
pub(super) fn fake_node(name: &str, state: State) -> Node {
    let r = Registry::standard();
    let mut n = Node::new(
        Uuid::new_v4(),
        "fake-hardware",
        r.hardware_type("fake-hardware").unwrap().defaults(),
        state,
        now(),
    );
    n.name = Some(name.into());
    n
}

pub(super) async fn wait_for(c: &Conductor, name: &str, state: State) -> Node {
    for _ in 0..500 {
        let n = c.load(name).await.unwrap();
        if n.provision_state == state && n.reservation.is_none() {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never reached {state}");
}

#[tokio::test]
async fn adoption_reaches_active_with_no_power_or_management_call() {
    let dir = tempfile::tempdir().unwrap();
    let c = conductor(&dir, Settings::default());
    let n = c
        .create_node(fake_node("a", State::Enroll), None)
        .await
        .unwrap();
    c.provision("a", "manage", ProvisionOptions::default())
        .await
        .unwrap();
    wait_for(&c, "a", State::Manageable).await;
    c.provision("a", "adopt", ProvisionOptions::default())
        .await
        .unwrap();
    let done = wait_for(&c, "a", State::Active).await;
    assert!(done.is_adopted());
    assert_eq!(done.power_state, Some(PowerState::On));
    let history = c.store().node_history(n.uuid).unwrap();
    let start = history
        .iter()
        .position(|h| h.event.starts_with("adopt:"))
        .unwrap();
    let touched: Vec<_> = history[start..]
        .iter()
        .filter(|h| h.event_type == "power" || h.event_type == "management")
        .collect();
    assert!(
        touched.is_empty(),
        "adoption touched the machine: {touched:?}"
    );
}

#[tokio::test]
async fn a_busy_node_answers_node_locked() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        node_locked_wait: Duration::from_millis(10),
        answer_wait: Duration::ZERO,
        ..Settings::default()
    };
    let c = conductor(&dir, settings);
    let mut n = fake_node("busy", State::Manageable);
    n.driver_info
        .insert("fake_deploy_delay".into(), json!(3600));
    c.create_node(n, None).await.unwrap();
    c.provision("busy", "adopt", ProvisionOptions::default())
        .await
        .unwrap();
    let busy = c.load("busy").await.unwrap();
    assert_eq!(
        (busy.provision_state, busy.target_provision_state),
        (State::Adopting, Some(State::Active))
    );
    assert!(
        busy.reservation.is_some(),
        "the transient state is committed with its reservation"
    );
    for verb in ["manage", "provide", "adopt"] {
        let err = c
            .provision("busy", verb, ProvisionOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NodeLocked { .. }), "{verb}: {err}");
    }
    assert!(matches!(
        c.delete_node("busy").await,
        Err(Error::NodeLocked { .. })
    ));
    assert!(matches!(
        c.set_power("busy", PowerState::Off, None).await,
        Err(Error::NodeLocked { .. })
    ));
}

#[tokio::test]
async fn restart_fails_stuck_states_as_ironic_does() {
    let cases = [
        (State::Verifying, State::Enroll, None),
        (State::Adopting, State::AdoptFailed, Some(State::Active)),
        (State::Deploying, State::DeployFailed, Some(State::Active)),
        (State::Cleaning, State::CleanFailed, Some(State::Available)),
        (State::Deleting, State::Error, None),
        (
            State::Inspecting,
            State::InspectFailed,
            Some(State::Manageable),
        ),
        (State::Rescuing, State::RescueFailed, Some(State::Rescue)),
        (
            State::Unrescuing,
            State::UnrescueFailed,
            Some(State::Active),
        ),
        (State::Servicing, State::ServiceFailed, Some(State::Active)),
        // Wait and stable states are left alone.
        (
            State::WaitCallBack,
            State::WaitCallBack,
            Some(State::Active),
        ),
        (State::Active, State::Active, None),
    ];
    let dir = tempfile::tempdir().unwrap();
    let c = conductor(&dir, Settings::default());
    for (i, (from, _, _)) in cases.iter().enumerate() {
        let mut n = fake_node(&format!("n{i}"), *from);
        n.target_provision_state = from.default_target();
        // Held by this appliance when it stopped (the last one held by
        // nobody: a transient node no worker anywhere runs).
        n.reservation = (i != 4).then(|| c.host().to_string());
        c.store()
            .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
            .unwrap();
    }
    // A node another appliance on the same database is working on.
    let mut theirs = fake_node("theirs", State::Deploying);
    theirs.target_provision_state = Some(State::Active);
    theirs.reservation = Some("other-appliance".into());
    c.store()
        .create_node(
            &theirs,
            &HistoryEntry::new(Severity::Info, "test", "seeded"),
        )
        .unwrap();
    let moved = c.recover().await.unwrap();
    assert_eq!(moved, 9);
    let theirs = c.load("theirs").await.unwrap();
    assert_eq!(
        (theirs.provision_state, theirs.reservation.as_deref()),
        (State::Deploying, Some("other-appliance")),
        "another appliance's node is left to it"
    );
    // Once that appliance is known gone, a start that takes over its host
    // name fails the node as its own.
    let c = conductor(
        &dir,
        Settings {
            take_over_hosts: vec!["other-appliance".into()],
            ..Settings::default()
        },
    );
    assert_eq!(c.recover().await.unwrap(), 1);
    let theirs = c.load("theirs").await.unwrap();
    assert_eq!(
        (theirs.provision_state, theirs.reservation),
        (State::DeployFailed, None)
    );
    assert!(theirs.last_error.unwrap().contains("other-appliance"));
    for (i, (from, to, target)) in cases.iter().enumerate() {
        let n = c.load(&format!("n{i}")).await.unwrap();
        assert_eq!(n.provision_state, *to, "{from}");
        assert_eq!(n.target_provision_state, *target, "{from}: target");
        assert_eq!(n.reservation, None, "{from}: reservation cleared");
        if from != to {
            let err = n.last_error.unwrap();
            assert!(
                err.contains("restarted") && err.contains(from.as_str()),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn adoption_failure_names_the_check_and_keeps_power_state() {
    let dir = tempfile::tempdir().unwrap();
    let c = conductor(&dir, Settings::default());
    let mut n = fake_node("f", State::Manageable);
    n.interfaces.boot = "ipxe".into();
    n.power_state = Some(PowerState::Off);
    c.create_node(n, None).await.unwrap();
    c.provision("f", "adopt", ProvisionOptions::default())
        .await
        .unwrap();
    let failed = wait_for(&c, "f", State::AdoptFailed).await;
    let err = failed.last_error.unwrap();
    assert!(
        err.contains("boot interface validation") && err.contains("PXE-enabled port"),
        "{err}"
    );
    assert_eq!(failed.power_state, Some(PowerState::Off));
    assert_eq!(failed.target_provision_state, Some(State::Active));
    // manage goes back synchronously; delete works there.
    c.provision("f", "manage", ProvisionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        c.load("f").await.unwrap().provision_state,
        State::Manageable
    );
    c.delete_node("f").await.unwrap();
}

#[tokio::test]
async fn two_conductors_on_one_database_cannot_hold_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let settings = |host: &str| Settings {
        host: host.into(),
        node_locked_wait: Duration::from_millis(100),
        answer_wait: Duration::ZERO,
        ..Settings::default()
    };
    let open = || Store::open(&path, store::Options::default()).unwrap();
    let a = Conductor::new(open(), Arc::new(Registry::standard()), settings("rack-a"));
    let b = Conductor::new(open(), Arc::new(Registry::standard()), settings("rack-b"));
    let mut n = fake_node("shared", State::Manageable);
    n.driver_info
        .insert("fake_deploy_delay".into(), json!(3600));
    a.create_node(n, None).await.unwrap();
    a.provision("shared", "adopt", ProvisionOptions::default())
        .await
        .unwrap();
    // b sees a's reservation through the database and waits, then refuses.
    let err = b.set_maintenance("shared", true, None).await.unwrap_err();
    match err {
        Error::NodeLocked { host, .. } => assert_eq!(host, "rack-a"),
        other => panic!("{other}"),
    }
    let err = b
        .provision("shared", "manage", ProvisionOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NodeLocked { .. }), "{err}");
    // A restart of b leaves a's node alone; one of a fails it.
    assert_eq!(b.recover().await.unwrap(), 0);
    assert_eq!(
        b.load("shared").await.unwrap().provision_state,
        State::Adopting
    );
    // Released by its holder, the node is b's to take.
    let uuid = b.load("shared").await.unwrap().uuid;
    assert!(a.store().release(uuid, "rack-a").unwrap());
    b.set_maintenance("shared", true, None).await.unwrap();
    let n = wait_for(&b, "shared", State::Adopting).await;
    assert!(n.maintenance);
}

#[tokio::test(start_paused = true)]
async fn call_back_deadlines_follow_the_conductors_clock() {
    let dir = tempfile::tempdir().unwrap();
    let c = conductor(
        &dir,
        Settings {
            deploy_callback_timeout: Duration::from_secs(600),
            clean_callback_timeout: Duration::from_secs(60),
            clock: Clock::tokio(),
            ..Settings::default()
        },
    );
    for (name, state, timeout) in [
        ("deploying", State::WaitCallBack, 600),
        ("cleaning", State::CleanWait, 60),
    ] {
        let mut n = fake_node(name, state);
        n.target_provision_state = state.default_target();
        n.set_callback_deadline(Some(c.unix_now() + timeout));
        c.store()
            .create_node(&n, &HistoryEntry::new(Severity::Info, "test", "seeded"))
            .unwrap();
    }
    assert_eq!(c.check_callback_timeouts().await, 0, "nothing is due yet");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        c.check_callback_timeouts().await,
        1,
        "the clean wait is due"
    );
    let cleaning = c.load("cleaning").await.unwrap();
    assert_eq!(cleaning.provision_state, State::CleanFailed);
    assert!(cleaning
        .last_error
        .unwrap()
        .contains("clean_callback_timeout"),);
    assert_eq!(
        c.load("deploying").await.unwrap().provision_state,
        State::WaitCallBack
    );
    tokio::time::advance(Duration::from_secs(540)).await;
    assert_eq!(c.check_callback_timeouts().await, 1);
    let deploying = c.load("deploying").await.unwrap();
    assert_eq!(deploying.provision_state, State::DeployFailed);
    assert_eq!(deploying.callback_deadline(), None);
    assert!(deploying
        .last_error
        .unwrap()
        .contains("deploy_callback_timeout"));
}
