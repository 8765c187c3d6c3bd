//! With the `cuda` feature, compiles `kernels/*.cu` to PTX with nvcc (through `bindgen_cuda`,
//! as Candle's own kernel crates do) and writes `$OUT_DIR/ptx.rs`, one `&str` constant per
//! kernel file. Without it, does nothing: CPU builds need no CUDA toolkit.

fn main() {
    #[cfg(feature = "cuda")]
    cuda::build_ptx();
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::path::PathBuf;

    pub fn build_ptx() {
        println!("cargo:rerun-if-changed=kernels");
        let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let kernels = [
            "kernels/deform_im2col.cu",
            "kernels/epilogue.cu",
            "kernels/im2col.cu",
            "kernels/window_attention.cu",
        ];
        bindgen_cuda::Builder::default()
            .kernel_paths(kernels.to_vec())
            .watch(kernels.to_vec())
            .arg("-O3")
            .build_ptx()
            .expect("nvcc compiles the CUDA kernels")
            .write(out_dir.join("ptx.rs"))
            .expect("writing ptx.rs");
    }
}
