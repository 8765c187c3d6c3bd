//! Runs nobg's CUDA kernels on the CPU for the tests: each kernel source in `kernels/` is
//! compiled unchanged as C++ against `kernels/emulation/cuda_host.h` (CUDA's thread indices,
//! shared memory, `__syncthreads` and half types on the host) with the address and
//! undefined-behaviour sanitizers, and launched with the plan the CUDA forward would use.
//! Outputs start as NaN, so an element the kernel never writes fails the comparison.
//!
//! This checks a kernel's indexing, bounds, synchronisation and arithmetic, and its launch
//! plan, on machines without a GPU. It proves nothing about the GPU's own code generation or
//! speed: `make gpu-check` does that.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use candle_core::{DType, Tensor};
use half::{bf16, f16};

use crate::launch::LaunchDims;

/// One kernel parameter.
pub(crate) enum Param<'a> {
    /// A device buffer the kernel reads, with these bytes.
    Input(&'a [u8]),
    /// A device buffer of this many bytes the kernel writes.
    Output(usize),
    /// A by-value argument (the geometry struct), as its bytes.
    Value(&'a [u8]),
}

/// The bytes of a `repr(C)` kernel argument without padding, as the driver copies them.
pub(crate) fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: `value` is a valid `T` for `size_of::<T>()` bytes; the callers' geometry structs
    // are all 4-byte fields, so every byte is initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// `n` deterministic values spread evenly over `lo..hi` (xorshift from `seed`), for test inputs.
pub(crate) fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// `t`'s values as a device buffer of its dtype holds them (little-endian).
pub(crate) fn device_bytes(t: &Tensor) -> candle_core::Result<Vec<u8>> {
    let t = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F32 => t
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => t
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => t
            .to_vec1::<f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => t
            .to_vec1::<bf16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        d => candle_core::bail!("no device bytes for {d:?}"),
    })
}

/// A device buffer of `dtype` values (f32, f64, f16 or bf16), widened to f64 exactly.
pub(crate) fn device_values(b: &[u8], dtype: DType) -> Vec<f64> {
    match dtype {
        DType::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        DType::F16 => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        DType::BF16 => b
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        _ => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
    }
}

/// Launches `kernel` of `kernels/<source>` under the emulation and returns its output
/// buffers, in parameter order.
pub(crate) fn launch(
    source: &str,
    kernel: &str,
    dims: LaunchDims,
    params: &[Param],
) -> Result<Vec<Vec<u8>>, String> {
    let binary = emulator(source)?;
    let mut request = Vec::new();
    request.extend((kernel.len() as u32).to_le_bytes());
    request.extend(kernel.as_bytes());
    for v in [dims.grid.0, dims.grid.1, dims.grid.2] {
        request.extend(v.to_le_bytes());
    }
    for v in [dims.block.0, dims.block.1, dims.block.2] {
        request.extend(v.to_le_bytes());
    }
    request.extend(dims.shared_bytes.to_le_bytes());
    request.extend((params.len() as u32).to_le_bytes());
    let mut outputs = Vec::new();
    for p in params {
        let (kind, len, data): (u8, usize, &[u8]) = match p {
            Param::Input(b) => (0, b.len(), b),
            Param::Output(n) => {
                outputs.push(*n);
                (1, *n, &[])
            }
            Param::Value(b) => (2, b.len(), b),
        };
        request.push(kind);
        request.extend((len as u64).to_le_bytes());
        request.extend(data);
    }
    let mut child = Command::new(&binary)
        // LeakSanitizer cannot run under every sandbox's ptrace rules; the emulator frees
        // everything it allocates anyway.
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    // The emulator reads its whole request before it writes anything.
    child
        .stdin
        .take()
        .ok_or("emulator without stdin")?
        .write_all(&request)
        .map_err(|e| format!("writing the launch to the emulator: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the emulator: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{kernel} under emulation: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if out.stdout.len() != outputs.iter().sum::<usize>() {
        return Err(format!(
            "{kernel} under emulation wrote {} bytes, expected {outputs:?}",
            out.stdout.len()
        ));
    }
    let mut rest = out.stdout.as_slice();
    Ok(outputs
        .into_iter()
        .map(|n| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head.to_vec()
        })
        .collect())
}

/// Kernels of each source file the emulator is built with.
fn kernels_of(source: &str) -> Result<Vec<&'static str>, String> {
    use candle_core::DType::{BF16, F16, F32};
    let names: Vec<_> = match source {
        "window_attention.cu" => [F32, F16, BF16]
            .into_iter()
            .filter_map(crate::swin::window_launch::kernel_name)
            .collect(),
        "deform_im2col.cu" => crate::deform_conv::launch::KERNELS
            .into_iter()
            .filter_map(|(input, columns)| crate::deform_conv::launch::kernel_name(input, columns))
            .collect(),
        "epilogue.cu" => crate::epilogue::launch::kernels(),
        "im2col.cu" => crate::conv::im2col_launch::kernels(),
        "emulation/conversions.cu" => vec!["convert_f32"],
        _ => return Err(format!("no emulator for kernels/{source}")),
    };
    Ok(names)
}

static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

/// The emulator binary for `source`, built once per test process.
fn emulator(source: &str) -> Result<PathBuf, String> {
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(s, _)| s == source) {
        return Ok(path.clone());
    }
    let kernels_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let out_dir = Path::new(env!("OUT_DIR")).join("kernel-emulation");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let table = kernels_of(source)?
        .iter()
        .map(|k| format!("ENTRY({k})"))
        .collect::<Vec<_>>()
        .join(",");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let flags = [
        "-std=c++20",
        "-O1",
        "-g",
        "-pthread",
        "-Wall",
        "-Wno-unknown-pragmas",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ];
    // Named by what it is built from, so that test runs share a binary until a source changes.
    let mut key = std::hash::DefaultHasher::new();
    for file in [source, "emulation/emulate.cpp", "emulation/cuda_host.h"] {
        let text = std::fs::read(kernels_dir.join(file))
            .map_err(|e| format!("reading kernels/{file}: {e}"))?;
        std::hash::Hash::hash(&text, &mut key);
    }
    std::hash::Hash::hash(&(&cxx, &flags, &table), &mut key);
    let binary = out_dir.join(format!(
        "{}-{:016x}",
        source.replace(['/', '.'], "_"),
        std::hash::Hasher::finish(&key)
    ));
    if binary.exists() {
        built.push((source.to_string(), binary.clone()));
        return Ok(binary);
    }
    // Built under a name of its own, then renamed: a concurrent test process sees either
    // nothing or the whole binary.
    let partial = binary.with_extension(format!("partial-{}", std::process::id()));
    let mut cmd = Command::new(&cxx);
    cmd.args(flags)
        .arg("-I")
        .arg(kernels_dir.join("emulation"))
        .args(["-include", "cuda_host.h"])
        .arg(format!(
            "-DKERNEL_SOURCE=\"{}\"",
            kernels_dir.join(source).display()
        ))
        .arg(format!("-DKERNEL_TABLE={table}"))
        .arg(kernels_dir.join("emulation/emulate.cpp"))
        .arg("-o")
        .arg(&partial);
    let out = cmd
        .output()
        .map_err(|e| format!("running the C++ compiler `{cxx}` (set CXX, or install g++): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the emulator of kernels/{source}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&partial, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    built.push((source.to_string(), binary.clone()));
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The emulator's half conversions against the `half` crate, on every f16 and bf16 bit
    /// pattern and on floats around each rounding boundary.
    #[test]
    fn conversions_match_the_half_crate() {
        let mut floats: Vec<f32> = (0..=u16::MAX)
            .flat_map(|bits| {
                let h = f16::from_bits(bits).to_f32();
                let b = bf16::from_bits(bits).to_f32();
                [h, b, next_up(h), next_down(h), next_up(b), next_down(b)]
            })
            .collect();
        floats.extend([65_504.0, 65_519.99, 65_520.0, 1e-8, -1e-8, 5.96e-8, 2.98e-8]);
        let halves: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
        let n = floats.len();
        let input: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        let count = (n as u32).to_le_bytes();
        let dims = match LaunchDims::new("t", (4, 1, 1), (256, 1, 1), 0) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let out = launch(
            "emulation/conversions.cu",
            "convert_f32",
            dims,
            &[
                Param::Input(&input),
                Param::Input(&halves),
                Param::Output(2 * n),
                Param::Output(2 * n),
                Param::Output(4 * 65_536),
                Param::Output(4 * 65_536),
                Param::Value(&count),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let u16s = |b: &[u8]| -> Vec<u16> {
            b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        let f32s = |b: &[u8]| -> Vec<u32> {
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let (to_h, to_b) = (u16s(&out[0]), u16s(&out[1]));
        for (i, &f) in floats.iter().enumerate() {
            if f.is_nan() {
                continue;
            }
            assert_eq!(to_h[i], f16::from_f32(f).to_bits(), "f16 of {f:e}");
            assert_eq!(to_b[i], bf16::from_f32(f).to_bits(), "bf16 of {f:e}");
        }
        let (from_h, from_b) = (f32s(&out[2]), f32s(&out[3]));
        for bits in 0..=u16::MAX {
            let (h, b) = (
                f16::from_bits(bits).to_f32(),
                bf16::from_bits(bits).to_f32(),
            );
            if !h.is_nan() {
                assert_eq!(from_h[bits as usize], h.to_bits(), "f16 bits {bits:#06x}");
            }
            if !b.is_nan() {
                assert_eq!(from_b[bits as usize], b.to_bits(), "bf16 bits {bits:#06x}");
            }
        }
    }

    fn next_up(f: f32) -> f32 {
        if f.is_nan() || f == f32::INFINITY {
            f
        } else if f >= 0.0 {
            f32::from_bits(f.to_bits() + 1)
        } else if f == -0.0 {
            f32::from_bits(1)
        } else {
            f32::from_bits(f.to_bits() - 1)
        }
    }

    fn next_down(f: f32) -> f32 {
        -next_up(-f)
    }

    /// A one-element launch of the conversions kernel with `dims` and the struct bytes `n`.
    fn convert_one(dims: LaunchDims, n: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let input = [0u8; 4];
        launch(
            "emulation/conversions.cu",
            "convert_f32",
            dims,
            &[
                Param::Input(&input),
                Param::Input(&input),
                Param::Output(2),
                Param::Output(2),
                Param::Output(4),
                Param::Output(4),
                Param::Value(n),
            ],
        )
    }

    #[test]
    fn launches_past_the_limits_are_refused() {
        // The plan type refuses them already; the emulator refuses them too, so a plan built
        // around LaunchDims cannot pass here and fail on a GPU.
        let dims = LaunchDims {
            grid: (1, 1, 1),
            block: (2048, 1, 1),
            shared_bytes: 0,
        };
        let err = convert_one(dims, &1u32.to_le_bytes());
        assert!(err.is_err_and(|e| e.contains("not launchable")));
    }

    #[test]
    fn a_mismatched_geometry_struct_is_refused() {
        let dims = match LaunchDims::new("t", (1, 1, 1), (32, 1, 1), 0) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let err = convert_one(dims, &1u64.to_le_bytes());
        assert!(err.is_err_and(|e| e.contains("4-byte struct, got 8 bytes")));
    }
}
