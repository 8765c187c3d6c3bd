//! Optional capture of intermediate tensors, named as in the reference fixtures
//! (`bb_full.x1`, `squeeze`, `decoder.decoder_block4`, ...), for layer-by-layer parity checks.

use candle_core::Tensor;

#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    tensors: Vec<(String, Tensor)>,
}

impl Trace {
    /// A trace that records nothing (the normal forward pass).
    pub fn off() -> Self {
        Self::default()
    }

    /// A trace that keeps every recorded tensor.
    pub fn on() -> Self {
        Self {
            enabled: true,
            tensors: Vec::new(),
        }
    }

    /// Whether recorded tensors are kept (callers skip work done only for the trace).
    pub fn is_on(&self) -> bool {
        self.enabled
    }

    pub fn record(&mut self, name: impl Into<String>, tensor: &Tensor) {
        if self.enabled {
            self.tensors.push((name.into(), tensor.clone()));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn into_tensors(self) -> Vec<(String, Tensor)> {
        self.tensors
    }
}
