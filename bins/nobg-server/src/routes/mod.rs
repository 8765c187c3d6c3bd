//! HTTP routes.

pub mod files;
pub mod health;
pub mod rembg;
pub mod removebg;
mod removebg_render;
pub mod rest;
