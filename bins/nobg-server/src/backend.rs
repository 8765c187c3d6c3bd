//! The thing that removes backgrounds, behind a trait so the router can be tested with a fake.

pub mod fake;
mod remover;

use std::future::Future;
use std::pin::Pin;

use nobg::{ModelInfo, NobgError, RemoveOptions, RemoveOutput, Stats};

pub use remover::RemoverBackend;

/// A boxed future of a removal: the trait must be object-safe (`Arc<dyn Backend>`).
pub type RemoveFuture = Pin<Box<dyn Future<Output = Result<RemoveOutput, NobgError>> + Send>>;

/// Background removal as the server needs it.
pub trait Backend: Send + Sync + 'static {
    /// Removes the background of an encoded image. Dropping the future abandons the request.
    fn remove(&self, image: Vec<u8>, options: RemoveOptions) -> RemoveFuture;
    /// The loaded models (for `/ready`, the AIR map and the predictions API).
    fn models(&self) -> Vec<ModelInfo>;
    /// Queue and inference counters, for `/metrics`.
    fn stats(&self) -> Stats;
    /// Stops accepting work and waits for queued requests. Blocking.
    fn shutdown(&self);
}
