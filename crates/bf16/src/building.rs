//! The precision a model's CPU layers pack their weights for, while the model is being built.
//!
//! Layers are built deep inside `new(cfg, vb)` constructors that mirror the checkpoint, and
//! only the CPU fast paths care whether their matrix products run in f32 or bf16; rather
//! than thread a flag through every constructor, a loader wraps the construction in
//! [`build_with`] and each layer reads [`building`] once, when it packs its weight.

use std::cell::Cell;

/// How a CPU layer multiplies its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matmul {
    /// f32 products (the `gemm` crate).
    #[default]
    F32,
    /// Both operands rounded to bf16, products accumulated in f32 ([`crate::gemm`]).
    Bf16,
}

thread_local! {
    static BUILDING: Cell<Matmul> = const { Cell::new(Matmul::F32) };
}

/// The precision set by the innermost [`build_with`] on this thread, f32 outside any.
pub fn building() -> Matmul {
    BUILDING.with(Cell::get)
}

/// Runs `build` with [`building`] answering `matmul`; the previous setting is restored after,
/// also when `build` panics.
pub fn build_with<R>(matmul: Matmul, build: impl FnOnce() -> R) -> R {
    struct Restore(Matmul);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUILDING.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BUILDING.with(|b| b.replace(matmul)));
    build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_scoped_and_restored() {
        assert_eq!(building(), Matmul::F32);
        let inner = build_with(Matmul::Bf16, || {
            let nested = build_with(Matmul::F32, building);
            (building(), nested)
        });
        assert_eq!(inner, (Matmul::Bf16, Matmul::F32));
        assert_eq!(building(), Matmul::F32);
        let caught = std::panic::catch_unwind(|| build_with(Matmul::Bf16, || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(building(), Matmul::F32);
    }
}
