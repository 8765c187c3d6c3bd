//! Wire types of the APIs nobg serves, and their validation.
//!
//! Two APIs share nothing but the image inputs:
//! * the Runware task protocol (REST `POST /v1` and WebSocket `GET /v1`): a JSON array of task
//!   objects in, an envelope `{"data":[...],"errors":[...]}` out. [`task::parse_task`] turns one
//!   raw task into a validated [`task::Task`] or a [`error::TaskError`] that already carries the
//!   task's `taskType` and `taskUUID`, so one bad task never spoils its batch;
//! * the predictions (job) API ([`predictions`]).
//!
//! Nothing here performs I/O: fetching URLs, storage and inference belong to the server.

pub mod envelope;
pub mod error;
pub mod fields;
pub mod image_ref;
pub mod invariants;
pub mod output;
pub mod predictions;
pub mod rembg;
pub mod remove_background;
pub mod removebg;
pub mod results;
pub mod settings;
pub mod task;
pub mod task_uuid;

pub use envelope::Envelope;
pub use error::TaskError;
pub use image_ref::ImageRef;
pub use output::{DeliveryMethod, OutputFormat, OutputType};
pub use remove_background::RemoveBackgroundTask;
pub use settings::Settings;
pub use task::{parse_task, parse_task_array, Task};
