//! Deploy templates (Ironic's `/v1/deploy_templates`, 1.55+) and runbooks
//! (`/v1/runbooks`, 1.92+): named lists of steps. A deploy template whose
//! name is one of a node's instance traits adds its steps to that node's
//! deployment; a runbook is a list of steps run by manual cleaning or
//! servicing of the nodes it is meant for.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The interfaces a deploy or runbook step may name, in Ironic's order
/// (its messages list them so).
pub const STEP_INTERFACES: &[&str] = &[
    "vendor",
    "power",
    "management",
    "firmware",
    "deploy",
    "bios",
    "raid",
];

/// One step: a method of an interface with its arguments. Deploy-template
/// steps carry a `priority`, runbook steps an `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub interface: String,
    pub step: String,
    #[serde(default)]
    pub args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u64>,
}

/// A deploy template, with Ironic's field names. Ironic accepts a
/// `description` but neither keeps nor shows it; neither does this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployTemplate {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub name: String,
    #[serde(default)]
    pub extra: Map<String, Value>,
    pub steps: Vec<Step>,
}

/// A runbook, with Ironic's field names: steps for manual cleaning or
/// servicing, usable on nodes that have one of its traits (1.112+; before,
/// its name is the trait).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runbook {
    pub uuid: Uuid,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub name: String,
    #[serde(default)]
    pub extra: Map<String, Value>,
    #[serde(default)]
    pub public: bool,
    pub owner: Option<String>,
    #[serde(default)]
    pub disable_ramdisk: bool,
    pub description: Option<String>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub traits: Vec<String>,
}

/// The `(interface, step)` pairs named more than once, as Ironic lists
/// them (`interface: deploy, step: x`).
pub fn duplicate_steps(steps: &[Step]) -> Vec<String> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut dups: Vec<String> = Vec::new();
    for s in steps {
        let key = (s.interface.as_str(), s.step.as_str());
        if seen.contains(&key) {
            let d = format!("interface: {}, step: {}", key.0, key.1);
            if !dups.contains(&d) {
                dups.push(d);
            }
        } else {
            seen.push(key);
        }
    }
    dups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(interface: &str, name: &str) -> Step {
        Step {
            interface: interface.into(),
            step: name.into(),
            args: Map::new(),
            priority: Some(10),
            order: None,
        }
    }

    #[test]
    fn duplicates_are_named_once_each() {
        for (steps, want) in [
            (vec![], vec![]),
            (vec![step("deploy", "a"), step("bios", "a")], vec![]),
            (
                vec![
                    step("deploy", "a"),
                    step("deploy", "a"),
                    step("deploy", "a"),
                ],
                vec!["interface: deploy, step: a"],
            ),
            (
                vec![
                    step("raid", "x"),
                    step("deploy", "a"),
                    step("raid", "x"),
                    step("deploy", "a"),
                ],
                vec!["interface: raid, step: x", "interface: deploy, step: a"],
            ),
        ] {
            assert_eq!(duplicate_steps(&steps), want);
        }
    }

    #[test]
    fn steps_show_priority_or_order_only() {
        let s = serde_json::to_value(step("deploy", "a")).unwrap();
        assert_eq!(
            s,
            serde_json::json!({"interface": "deploy", "step": "a", "args": {}, "priority": 10})
        );
    }
}
