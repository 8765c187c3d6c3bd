//! The WebSocket API on `GET /v1`.

pub mod connection;
pub mod sessions;
