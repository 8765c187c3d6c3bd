//! The plain data types of the public API: inputs, outputs, limits, device choices.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use image::{DynamicImage, GrayImage, RgbaImage};

use crate::options::OutputFormat;

/// Where a model's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A preset by name (`"rmbg-2.0"`, `"birefnet"`, `"birefnet-lite"`, `"rmbg-1.4"`, ...; see
    /// [`crate::catalog::presets`]): taken from the local Hugging Face cache, downloaded from the
    /// hub on first use (feature `hub`).
    Preset(String),
    /// A `.safetensors` checkpoint on disk, with the architecture of the preset `config`.
    Local {
        /// The checkpoint file.
        path: PathBuf,
        /// The preset whose architecture the checkpoint has.
        config: String,
    },
    /// Deterministic synthetic weights for the architecture of preset `config` (no download): the
    /// output is meaningless but every code path runs. `tiny` (BiRefNet) is fast enough for
    /// tests; `rmbg-1.4` (IS-Net) is at a small `resolution`.
    Synthetic {
        /// The preset whose architecture to build.
        config: String,
        /// The weight generator's seed.
        seed: u64,
    },
}

impl ModelSpec {
    /// The preset whose architecture this spec loads.
    pub fn config_name(&self) -> &str {
        match self {
            ModelSpec::Preset(name) => name,
            ModelSpec::Local { config, .. } | ModelSpec::Synthetic { config, .. } => config,
        }
    }
}

/// What to remove the background from.
#[derive(Debug, Clone)]
pub enum Input {
    /// An encoded file (PNG, JPEG, WebP, BMP, GIF, TIFF), decoded under the remover's
    /// [`DecodeLimits`].
    Bytes(Vec<u8>),
    /// An already decoded image.
    Image(DynamicImage),
}

impl From<Vec<u8>> for Input {
    fn from(bytes: Vec<u8>) -> Self {
        Input::Bytes(bytes)
    }
}

impl From<DynamicImage> for Input {
    fn from(image: DynamicImage) -> Self {
        Input::Image(image)
    }
}

/// The result of one removal.
#[derive(Debug, Clone)]
pub struct RemoveOutput {
    /// The file asked for: the cut-out (or the mask with `only_mask`) in `format`.
    pub encoded: Vec<u8>,
    /// The format of `encoded`.
    pub format: OutputFormat,
    /// Width of the output (after `trim`).
    pub width: u32,
    /// Height of the output (after `trim`).
    pub height: u32,
    /// The alpha mask at the output size: 255 is foreground.
    pub mask: GrayImage,
    /// The cut-out at the output size, background applied, before encoding.
    pub cutout: RgbaImage,
}

/// Limits on what a request may make the remover decode. Over a limit is
/// [`crate::NobgError::TooLarge`], checked before the pixels are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded input, in bytes (default 64 MiB).
    pub max_input_bytes: usize,
    /// Largest width in pixels (default 16384).
    pub max_width: u32,
    /// Largest height in pixels (default 16384).
    pub max_height: u32,
    /// Largest `width * height` (default 50 megapixels), checked from the file's header before
    /// the pixels are allocated.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 << 20,
            max_width: 16384,
            max_height: 16384,
            max_pixels: nobg_matting::decode::DecodeLimits::DEFAULT_MAX_PIXELS,
        }
    }
}

/// The compute device the models run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal (feature `cuda`).
    Cuda(usize),
    /// An Apple GPU by ordinal (feature `metal`).
    Metal(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        let (kind, ordinal) = match s.split_once(':') {
            Some((kind, n)) => {
                let n = n
                    .parse::<usize>()
                    .map_err(|_| format!("bad device ordinal in `{s}`"))?;
                (kind.to_string(), n)
            }
            None => (s.clone(), 0),
        };
        match kind.as_str() {
            "cpu" if ordinal == 0 => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(ordinal)),
            "metal" => Ok(Device::Metal(ordinal)),
            _ => Err(format!(
                "unknown device `{s}` (expected cpu, cuda[:N] or metal[:N])"
            )),
        }
    }
}

/// The floating-point type the model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DType {
    /// 32-bit float: exact.
    #[default]
    F32,
    /// 16-bit float (GPU; on a CPU, slow).
    F16,
    /// bfloat16. On a CPU, a mixed mode: the matrix products take bf16 operands and
    /// accumulate in f32 (on AMX tiles or AVX512-BF16 where the CPU has them), all else stays f32.
    Bf16,
    /// The fastest type within the fixtures' reduced-precision tolerances for the device:
    /// bf16 on CPUs with AMX-BF16 or AVX512-BF16, f32 on other CPUs, f16 on a GPU
    /// ([`DType::resolve`]).
    Auto,
}

impl DType {
    /// The type [`DType::Auto`] stands for on `device`; other types are themselves.
    pub fn resolve(self, device: Device) -> DType {
        match (self, device) {
            (DType::Auto, Device::Cpu) if nobg_bf16::fast_kernel_usable() => DType::Bf16,
            (DType::Auto, Device::Cpu) => DType::F32,
            (DType::Auto, Device::Cuda(_) | Device::Metal(_)) => DType::F16,
            (other, _) => other,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::Auto => "auto",
        })
    }
}

impl FromStr for DType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::Bf16),
            "auto" => Ok(DType::Auto),
            other => Err(format!(
                "unknown dtype `{other}` (expected f32, f16, bf16 or auto)"
            )),
        }
    }
}

/// A loaded model, as [`crate::Remover::models`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name requests use ([`crate::RemoveOptions::model`]).
    pub name: String,
    /// The preset whose architecture it has.
    pub config: String,
    /// Where the weights came from.
    pub spec: ModelSpec,
    /// Its native input size `(width, height)`.
    pub input_size: (u32, u32),
    /// Whether requests without a model go to it.
    pub is_default: bool,
}
