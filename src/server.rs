//! The safe Rust API (being written).
pub struct Config;
pub type ConnId = u64;
pub struct Event;
pub enum EventKind {}
pub struct CloseInfo;
pub use crate::protocol::MessageKind;
pub struct Server;
pub enum SlowConsumerPolicy {}
pub struct Stats;
