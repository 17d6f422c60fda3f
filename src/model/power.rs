//! Power states as Ironic names them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A node's power state, or the target of a power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    On,
    Off,
    Rebooting,
    SoftRebooting,
    SoftOff,
    Error,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "power on",
            PowerState::Off => "power off",
            PowerState::Rebooting => "rebooting",
            PowerState::SoftRebooting => "soft rebooting",
            PowerState::SoftOff => "soft power off",
            PowerState::Error => "error",
        }
    }

    /// The state a node rests in once this action has finished
    /// (`power on` for reboots, `power off` for soft power off).
    pub fn settled(self) -> PowerState {
        match self {
            PowerState::On | PowerState::Rebooting | PowerState::SoftRebooting => PowerState::On,
            PowerState::Off | PowerState::SoftOff => PowerState::Off,
            PowerState::Error => PowerState::Error,
        }
    }
}

impl FromStr for PowerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "power on" => PowerState::On,
            "power off" => PowerState::Off,
            "rebooting" => PowerState::Rebooting,
            "soft rebooting" => PowerState::SoftRebooting,
            "soft power off" => PowerState::SoftOff,
            "error" => PowerState::Error,
            other => return Err(format!("unknown power state {other:?}")),
        })
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PowerState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PowerState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
