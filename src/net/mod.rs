//! Network plumbing shared by the API and the boot listeners: the bounded
//! TCP listener and the peer address handlers see.

pub mod listener;

pub use listener::{BoundedListener, Peer};
