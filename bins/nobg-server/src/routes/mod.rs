//! HTTP routes.

pub mod files;
pub mod health;
pub mod rest;
