//! nobg-server: a drop-in local Runware `removeBackground` endpoint (REST and WebSocket on
//! `/v1`) and the predictions API, over [`nobg::Remover`].
//!
//! Layers, as in text-embeddings-inference: routes and the WebSocket protocol ([`routes`],
//! [`ws`]) parse and authenticate; [`tasks`] executes validated tasks the same way for both;
//! a [`backend::Backend`] owns the model queue.

pub mod auth;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod fetch;
pub mod http_serve;
pub mod metrics;
pub mod models;
pub mod predictions;
pub mod routes;
pub mod server;
pub mod state;
pub mod storage;
pub mod tasks;
pub mod ui;
pub mod ws;

pub use config::{Args, ServerConfig};
pub use server::{router, serve, RunningServer};
pub use state::{AppState, SharedState};
