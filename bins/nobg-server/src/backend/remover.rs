//! [`Backend`] over the real [`nobg::Remover`].

use nobg::{Input, ModelInfo, RemoveOptions, Remover, Stats};

use super::{Backend, RemoveFuture};

/// The production backend.
#[derive(Clone, Debug)]
pub struct RemoverBackend {
    remover: Remover,
}

impl RemoverBackend {
    pub fn new(remover: Remover) -> Self {
        Self { remover }
    }

    pub fn remover(&self) -> &Remover {
        &self.remover
    }
}

impl Backend for RemoverBackend {
    fn remove(&self, image: Vec<u8>, options: RemoveOptions) -> RemoveFuture {
        let remover = self.remover.clone();
        Box::pin(async move { remover.remove_async(Input::Bytes(image), &options).await })
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.remover.models()
    }

    fn stats(&self) -> Stats {
        self.remover.stats()
    }

    fn shutdown(&self) {
        self.remover.shutdown();
    }
}
