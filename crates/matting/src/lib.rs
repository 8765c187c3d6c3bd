//! nobg-matting: everything between the bytes a user sends and the model tensor, and between
//! the model's logits and the file the user gets back.
//!
//! Decode ([`decode`]) -> model input ([`preprocess`]) -> model -> alpha ([`mask`]) ->
//! optional mask refinement ([`postprocess`], [`alpha_matting`]) -> foreground colours
//! ([`foreground`]) -> compositing ([`composite`]) -> encoding ([`encode`]).

pub mod alpha_matting;
pub mod composite;
pub mod decode;
pub mod encode;
pub mod error;
pub mod foreground;
pub mod layout;
pub mod mask;
pub mod postprocess;
pub mod preprocess;

pub use error::MattingError;
