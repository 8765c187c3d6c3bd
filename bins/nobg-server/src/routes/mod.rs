//! HTTP routes.

pub mod files;
pub mod health;
pub mod rembg;
pub mod removebg;
mod removebg_render;
mod removebg_zip;
pub mod rest;
