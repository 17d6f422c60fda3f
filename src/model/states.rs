//! Ironic's provision state machine, as one table.
//!
//! The table is data: `(from, event, to)` rows identical to Ironic's
//! `ironic/common/states.py`. Only the conductor moves a node, and only through
//! [`next`]. A unit test proves the table equal to the copy of Ironic's table in
//! `tests/fixtures/ironic-states.json`, transition for transition.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in table order (the event list is read by tests).
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName(s.to_string())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A name that is not one of the machine's states or events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

string_enum! {
    /// A node's provision state (Ironic's 30 FSM states).
    State {
        Enroll => "enroll",
        Manageable => "manageable",
        Available => "available",
        Active => "active",
        Error => "error",
        Rescue => "rescue",
        Verifying => "verifying",
        Deploying => "deploying",
        WaitCallBack => "wait call-back",
        DeployFailed => "deploy failed",
        DeployHold => "deploy hold",
        Cleaning => "cleaning",
        CleanWait => "clean wait",
        CleanFailed => "clean failed",
        CleanHold => "clean hold",
        Deleting => "deleting",
        Inspecting => "inspecting",
        InspectFailed => "inspect failed",
        InspectWait => "inspect wait",
        Adopting => "adopting",
        AdoptFailed => "adopt failed",
        Rescuing => "rescuing",
        RescueWait => "rescue wait",
        RescueFailed => "rescue failed",
        Unrescuing => "unrescuing",
        UnrescueFailed => "unrescue failed",
        Servicing => "servicing",
        ServiceWait => "service wait",
        ServiceFailed => "service failed",
        ServiceHold => "service hold",
    }
}

string_enum! {
    /// What moves a node from one state to another.
    Event {
        Abort => "abort",
        Adopt => "adopt",
        Clean => "clean",
        Delete => "delete",
        Deploy => "deploy",
        Done => "done",
        Fail => "fail",
        Hold => "hold",
        Inspect => "inspect",
        Manage => "manage",
        Provide => "provide",
        Rebuild => "rebuild",
        Rescue => "rescue",
        Resume => "resume",
        Service => "service",
        Unhold => "unhold",
        Unrescue => "unrescue",
        Wait => "wait",
    }
}

use Event as E;
use State as S;

/// Ironic's transition table: (from, event, to).
pub const TRANSITIONS: &[(State, Event, State)] = &[
    // deploy
    (S::Available, E::Deploy, S::Deploying),
    (S::Deploying, E::Fail, S::DeployFailed),
    (S::DeployFailed, E::Rebuild, S::Deploying),
    (S::DeployFailed, E::Deploy, S::Deploying),
    (S::Deploying, E::Wait, S::WaitCallBack),
    (S::Deploying, E::Hold, S::DeployHold),
    (S::WaitCallBack, E::Hold, S::DeployHold),
    (S::WaitCallBack, E::Resume, S::Deploying),
    (S::WaitCallBack, E::Fail, S::DeployFailed),
    (S::DeployHold, E::Unhold, S::WaitCallBack),
    (S::DeployHold, E::Abort, S::DeployFailed),
    (S::WaitCallBack, E::Abort, S::DeployFailed),
    (S::Deploying, E::Done, S::Active),
    (S::Active, E::Rebuild, S::Deploying),
    // tear down
    (S::Active, E::Delete, S::Deleting),
    (S::WaitCallBack, E::Delete, S::Deleting),
    (S::DeployFailed, E::Delete, S::Deleting),
    (S::Deleting, E::Fail, S::Error),
    (S::Deleting, E::Clean, S::Cleaning),
    // cleaning
    (S::Cleaning, E::Done, S::Available),
    (S::Cleaning, E::Fail, S::CleanFailed),
    (S::CleanWait, E::Fail, S::CleanFailed),
    (S::CleanWait, E::Abort, S::CleanFailed),
    (S::Cleaning, E::Wait, S::CleanWait),
    (S::Cleaning, E::Hold, S::CleanHold),
    (S::CleanWait, E::Hold, S::CleanHold),
    (S::CleanWait, E::Resume, S::Cleaning),
    (S::CleanHold, E::Abort, S::CleanFailed),
    (S::CleanHold, E::Unhold, S::CleanWait),
    (S::CleanFailed, E::Manage, S::Manageable),
    (S::Manageable, E::Provide, S::Cleaning),
    (S::Manageable, E::Clean, S::Cleaning),
    (S::Cleaning, E::Manage, S::Manageable),
    (S::Available, E::Manage, S::Manageable),
    (S::Error, E::Rebuild, S::Deploying),
    (S::Error, E::Delete, S::Deleting),
    // inspection
    (S::Manageable, E::Inspect, S::Inspecting),
    (S::Inspecting, E::Done, S::Manageable),
    (S::Inspecting, E::Fail, S::InspectFailed),
    (S::Inspecting, E::Wait, S::InspectWait),
    (S::InspectWait, E::Done, S::Manageable),
    (S::InspectWait, E::Fail, S::InspectFailed),
    (S::InspectWait, E::Abort, S::InspectFailed),
    (S::InspectWait, E::Resume, S::Inspecting),
    (S::InspectFailed, E::Manage, S::Manageable),
    (S::InspectFailed, E::Inspect, S::Inspecting),
    // rescue
    (S::Active, E::Rescue, S::Rescuing),
    (S::Rescuing, E::Done, S::Rescue),
    (S::Rescuing, E::Wait, S::RescueWait),
    (S::RescueWait, E::Resume, S::Rescuing),
    (S::Rescue, E::Rescue, S::Rescuing),
    (S::Rescue, E::Delete, S::Deleting),
    (S::RescueWait, E::Fail, S::RescueFailed),
    (S::Rescuing, E::Fail, S::RescueFailed),
    (S::RescueWait, E::Abort, S::RescueFailed),
    (S::RescueFailed, E::Rescue, S::Rescuing),
    (S::RescueFailed, E::Unrescue, S::Unrescuing),
    (S::RescueFailed, E::Delete, S::Deleting),
    (S::RescueWait, E::Delete, S::Deleting),
    (S::Rescue, E::Unrescue, S::Unrescuing),
    (S::Unrescuing, E::Done, S::Active),
    (S::Unrescuing, E::Fail, S::UnrescueFailed),
    (S::UnrescueFailed, E::Rescue, S::Rescuing),
    (S::UnrescueFailed, E::Unrescue, S::Unrescuing),
    (S::UnrescueFailed, E::Delete, S::Deleting),
    // enrollment and adoption
    (S::Enroll, E::Manage, S::Verifying),
    (S::Verifying, E::Done, S::Manageable),
    (S::Verifying, E::Fail, S::Enroll),
    (S::Manageable, E::Adopt, S::Adopting),
    (S::Adopting, E::Done, S::Active),
    (S::Adopting, E::Fail, S::AdoptFailed),
    (S::AdoptFailed, E::Adopt, S::Adopting),
    (S::AdoptFailed, E::Manage, S::Manageable),
    // servicing
    (S::Servicing, E::Done, S::Active),
    (S::Active, E::Service, S::Servicing),
    (S::Servicing, E::Fail, S::ServiceFailed),
    (S::Servicing, E::Wait, S::ServiceWait),
    (S::Servicing, E::Hold, S::ServiceHold),
    (S::ServiceWait, E::Hold, S::ServiceHold),
    (S::ServiceHold, E::Service, S::Servicing),
    (S::ServiceHold, E::Unhold, S::ServiceWait),
    (S::ServiceWait, E::Resume, S::Servicing),
    (S::ServiceWait, E::Fail, S::ServiceFailed),
    (S::ServiceHold, E::Fail, S::ServiceFailed),
    (S::ServiceWait, E::Abort, S::ServiceFailed),
    (S::ServiceHold, E::Abort, S::ServiceFailed),
    (S::ServiceFailed, E::Service, S::Servicing),
    (S::ServiceFailed, E::Rescue, S::Rescuing),
    (S::ServiceFailed, E::Wait, S::ServiceWait),
    (S::ServiceFailed, E::Hold, S::ServiceHold),
    (S::ServiceFailed, E::Delete, S::Deleting),
    (S::ServiceFailed, E::Abort, S::Active),
    (S::ServiceWait, E::Delete, S::Deleting),
];

/// The state `event` moves a node in `from` to, or `None` if the machine
/// refuses the event there.
pub fn next(from: State, event: Event) -> Option<State> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
}

/// Whether `event` is accepted in `from`.
pub fn is_actionable(from: State, event: Event) -> bool {
    next(from, event).is_some()
}

impl State {
    /// The states in which a node runs the deploy ramdisk, which may look
    /// itself up and call back (Ironic's LOOKUP_ALLOWED_STATES).
    pub const RAMDISK: [State; 10] = [
        State::Deploying,
        State::WaitCallBack,
        State::Cleaning,
        State::CleanWait,
        State::Inspecting,
        State::InspectWait,
        State::Rescuing,
        State::RescueWait,
        State::Servicing,
        State::ServiceWait,
    ];

    /// Whether a node in this state runs (boots) the deploy ramdisk.
    pub fn runs_ramdisk(self) -> bool {
        State::RAMDISK.contains(&self)
    }

    /// Whether a ramdisk may look its node up (`GET /v1/lookup`).
    pub fn agent_may_look_up(self) -> bool {
        self.runs_ramdisk()
    }

    /// Stable states are where a node rests; the others are transient.
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            S::Enroll | S::Manageable | S::Available | S::Active | S::Error | S::Rescue
        )
    }

    /// The target Ironic records while a node is in this state (`None` for
    /// stable states).
    pub fn default_target(self) -> Option<State> {
        Some(match self {
            S::Enroll | S::Manageable | S::Available | S::Active | S::Error | S::Rescue => {
                return None
            }
            S::Verifying | S::Inspecting | S::InspectFailed | S::InspectWait => S::Manageable,
            S::Cleaning | S::CleanWait | S::CleanFailed | S::CleanHold | S::Deleting => {
                S::Available
            }
            S::Rescuing | S::RescueWait | S::RescueFailed => S::Rescue,
            S::Deploying
            | S::WaitCallBack
            | S::DeployFailed
            | S::DeployHold
            | S::Adopting
            | S::AdoptFailed
            | S::Unrescuing
            | S::UnrescueFailed
            | S::Servicing
            | S::ServiceWait
            | S::ServiceFailed
            | S::ServiceHold => S::Active,
        })
    }

    /// Transient states a restarted appliance cannot resume: they are failed
    /// at start-up (Ironic's `STUCK_STATES_TREATED_AS_FAIL`).
    pub fn is_stuck_after_restart(self) -> bool {
        matches!(
            self,
            S::Deploying
                | S::Cleaning
                | S::Verifying
                | S::Inspecting
                | S::Adopting
                | S::Rescuing
                | S::Unrescuing
                | S::Deleting
                | S::Servicing
        )
    }

    /// States in which a node may be updated although a transition is under
    /// way (Ironic's `UPDATE_ALLOWED_STATES`).
    pub fn update_allowed(self) -> bool {
        matches!(
            self,
            S::DeployFailed
                | S::Inspecting
                | S::InspectFailed
                | S::InspectWait
                | S::CleanFailed
                | S::Error
                | S::Verifying
                | S::AdoptFailed
                | S::RescueFailed
                | S::UnrescueFailed
                | S::ServiceFailed
                | S::ServiceHold
        )
    }

    /// States in which a node may be deleted without maintenance (Ironic's
    /// `DELETE_ALLOWED_STATES` plus `available`, as
    /// `allow_deleting_available_nodes` defaults to true).
    pub fn delete_allowed(self) -> bool {
        matches!(
            self,
            S::Manageable | S::Enroll | S::AdoptFailed | S::Available
        )
    }

    /// States in which the power-state sync loop leaves a node alone
    /// (Ironic's `SYNC_EXCLUDED_STATES`).
    pub fn sync_excluded(self) -> bool {
        matches!(
            self,
            S::WaitCallBack | S::CleanWait | S::Enroll | S::AdoptFailed
        )
    }

    /// States in which `*_interface` fields may change without maintenance.
    pub fn interface_update_allowed(self) -> bool {
        matches!(
            self,
            S::Enroll | S::Inspecting | S::InspectWait | S::Manageable | S::Available
        )
    }
}

/// A `target` accepted by `PUT /v1/nodes/{ident}/states/provision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTarget {
    pub target: &'static str,
    pub event: Event,
    /// The microversion that introduced the verb (`None`: always there).
    pub min_version: Option<u32>,
}

/// Ironic's provision targets with their events and minimum microversions.
pub const API_TARGETS: &[ApiTarget] = &[
    ApiTarget {
        target: "active",
        event: E::Deploy,
        min_version: None,
    },
    ApiTarget {
        target: "deploy",
        event: E::Deploy,
        min_version: Some(73),
    },
    ApiTarget {
        target: "deleted",
        event: E::Delete,
        min_version: None,
    },
    ApiTarget {
        target: "undeploy",
        event: E::Delete,
        min_version: Some(73),
    },
    ApiTarget {
        target: "manage",
        event: E::Manage,
        min_version: Some(4),
    },
    ApiTarget {
        target: "provide",
        event: E::Provide,
        min_version: Some(4),
    },
    ApiTarget {
        target: "inspect",
        event: E::Inspect,
        min_version: Some(6),
    },
    ApiTarget {
        target: "abort",
        event: E::Abort,
        min_version: Some(13),
    },
    ApiTarget {
        target: "clean",
        event: E::Clean,
        min_version: Some(15),
    },
    ApiTarget {
        target: "adopt",
        event: E::Adopt,
        min_version: Some(17),
    },
    ApiTarget {
        target: "rescue",
        event: E::Rescue,
        min_version: Some(38),
    },
    ApiTarget {
        target: "unrescue",
        event: E::Unrescue,
        min_version: Some(38),
    },
    ApiTarget {
        target: "unhold",
        event: E::Unhold,
        min_version: Some(85),
    },
    ApiTarget {
        target: "service",
        event: E::Service,
        min_version: Some(87),
    },
    ApiTarget {
        target: "rebuild",
        event: E::Rebuild,
        min_version: None,
    },
];

/// Looks up a provision target by its API name.
pub fn api_target(target: &str) -> Option<&'static ApiTarget> {
    API_TARGETS.iter().find(|t| t.target == target)
}

/// The state the `baremetal` CLI's `--wait` expects a verb to end in.
pub fn expected_end_state(target: &str) -> Option<State> {
    Some(match target {
        "manage" | "inspect" | "clean" => S::Manageable,
        "adopt" | "active" | "deploy" | "rebuild" | "unrescue" | "service" => S::Active,
        "provide" | "deleted" | "undeploy" => S::Available,
        "rescue" => S::Rescue,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn fixture() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ironic-states.json"
        );
        let text = std::fs::read_to_string(path).expect("read tests/fixtures/ironic-states.json");
        serde_json::from_str(&text).expect("parse ironic-states.json")
    }

    fn state(v: &serde_json::Value) -> State {
        v.as_str().unwrap().parse().unwrap()
    }

    /// Every move the conductor makes is a row of the table (the conductor
    /// refuses, rather than guesses, where a row is missing).
    #[test]
    fn the_conductors_moves_are_rows_of_the_table() {
        use Event as E;
        use State as S;
        let cases = [
            // tear down, then cleaning
            (S::Deleting, E::Clean, S::Cleaning),
            // a heartbeat resumes and finishes a deploy or a cleaning
            (S::WaitCallBack, E::Resume, S::Deploying),
            (S::Deploying, E::Done, S::Active),
            (S::CleanWait, E::Resume, S::Cleaning),
            (S::Cleaning, E::Done, S::Available),
            // call-back timeouts
            (S::WaitCallBack, E::Fail, S::DeployFailed),
            (S::CleanWait, E::Fail, S::CleanFailed),
            // workflows that wait for the ramdisk
            (S::Deploying, E::Wait, S::WaitCallBack),
            (S::Cleaning, E::Wait, S::CleanWait),
        ];
        for (from, event, to) in cases {
            assert_eq!(next(from, event), Some(to), "{from} --{event}-->");
        }
        for s in State::RAMDISK {
            assert!(!s.is_stable(), "{s} runs the ramdisk and is not stable");
        }
    }

    #[test]
    fn table_matches_ironic_transition_for_transition() {
        let f = fixture();
        let theirs: BTreeSet<(State, Event, State)> = f["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    state(&t["from"]),
                    t["event"].as_str().unwrap().parse().unwrap(),
                    state(&t["to"]),
                )
            })
            .collect();
        let ours: BTreeSet<(State, Event, State)> = TRANSITIONS.iter().copied().collect();
        assert_eq!(
            ours.len(),
            TRANSITIONS.len(),
            "duplicate rows in TRANSITIONS"
        );
        let missing: Vec<_> = theirs.difference(&ours).collect();
        let extra: Vec<_> = ours.difference(&theirs).collect();
        assert!(
            missing.is_empty(),
            "transitions Ironic has and we lack: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "transitions we have and Ironic lacks: {extra:?}"
        );
        assert_eq!(ours.len(), 93);
    }

    #[test]
    fn states_and_events_match_ironic() {
        let f = fixture();
        let states = f["states"].as_array().unwrap();
        assert_eq!(states.len(), State::ALL.len());
        for s in states {
            let st = state(&s["name"]);
            assert_eq!(
                st.is_stable(),
                s["stable"].as_bool().unwrap(),
                "{st}: stable"
            );
            let target = s["default_target"]
                .as_str()
                .map(|t| t.parse::<State>().unwrap());
            assert_eq!(st.default_target(), target, "{st}: default target");
            assert_eq!(
                st.is_stuck_after_restart(),
                s["in_STUCK_STATES_TREATED_AS_FAIL"].as_bool().unwrap(),
                "{st}: stuck"
            );
            assert_eq!(
                st.update_allowed(),
                s["in_UPDATE_ALLOWED_STATES"].as_bool().unwrap(),
                "{st}: update"
            );
            let delete = s["in_DELETE_ALLOWED_STATES"].as_bool().unwrap() || st == State::Available;
            assert_eq!(st.delete_allowed(), delete, "{st}: delete");
        }
        let events: BTreeSet<Event> = f["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(events, Event::ALL.iter().copied().collect());
        let stable: BTreeSet<State> = f["stable_states"]
            .as_array()
            .unwrap()
            .iter()
            .map(state)
            .collect();
        assert_eq!(
            stable,
            State::ALL
                .iter()
                .copied()
                .filter(|s| s.is_stable())
                .collect()
        );
    }

    #[test]
    fn api_targets_match_ironic() {
        let f = fixture();
        let targets = f["api_targets"].as_array().unwrap();
        assert_eq!(targets.len(), API_TARGETS.len());
        for t in targets {
            let ours = api_target(t["target"].as_str().unwrap()).expect("target known");
            assert_eq!(ours.event.as_str(), t["event"].as_str().unwrap());
            let min = t["min_api_version"]
                .as_str()
                .map(|v| v.strip_prefix("1.").unwrap().parse::<u32>().unwrap());
            assert_eq!(ours.min_version, min, "{}", ours.target);
            let from: BTreeSet<State> = t["valid_from_states"]
                .as_array()
                .unwrap()
                .iter()
                .map(state)
                .collect();
            let ours_from: BTreeSet<State> = State::ALL
                .iter()
                .copied()
                .filter(|s| is_actionable(*s, ours.event))
                .collect();
            assert_eq!(from, ours_from, "{}: source states", ours.target);
        }
    }

    #[test]
    fn adoption_path_cases() {
        let cases = [
            (S::Enroll, E::Manage, Some(S::Verifying)),
            (S::Verifying, E::Done, Some(S::Manageable)),
            (S::Verifying, E::Fail, Some(S::Enroll)),
            (S::Manageable, E::Adopt, Some(S::Adopting)),
            (S::Adopting, E::Done, Some(S::Active)),
            (S::Adopting, E::Fail, Some(S::AdoptFailed)),
            (S::AdoptFailed, E::Adopt, Some(S::Adopting)),
            (S::AdoptFailed, E::Manage, Some(S::Manageable)),
            (S::Enroll, E::Adopt, None),
            (S::Active, E::Adopt, None),
            (S::Available, E::Adopt, None),
            (S::AdoptFailed, E::Provide, None),
        ];
        for (from, ev, want) in cases {
            assert_eq!(next(from, ev), want, "{from} --{ev}-->");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), *s);
        }
        assert!("deleted".parse::<State>().is_err());
        assert!("".parse::<Event>().is_err());
    }
}
