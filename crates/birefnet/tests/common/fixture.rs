//! Reading a parity fixture directory (`meta.json`, `manifest.json`, `input.png`,
//! `expected.safetensors`), shared by the parity tests and the `parity` example.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use birefnet::{Config, PatchOrder, SwinConfig};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Backbone {
    pub embed_dim: usize,
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
}

#[derive(Debug, Deserialize)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Deserialize)]
pub struct Meta {
    pub variant: String,
    pub backbone: Backbone,
    pub lateral_channels: [usize; 4],
    pub height: usize,
    pub width: usize,
    pub patch_order: String,
    pub weights_seed: u64,
    pub normalize: Normalize,
}

#[derive(Debug, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    tensors: Vec<ManifestEntry>,
}

pub struct Fixture {
    pub dir: PathBuf,
    pub name: String,
    pub meta: Meta,
    pub config: Config,
}

impl Fixture {
    pub fn open(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("meta.json");
        let meta: Meta = serde_json::from_slice(
            &std::fs::read(&meta_path)
                .with_context(|| format!("reading {}", meta_path.display()))?,
        )
        .with_context(|| format!("parsing {}", meta_path.display()))?;
        let Some(patch_order) = PatchOrder::parse(&meta.patch_order) else {
            bail!("unknown patch_order {:?}", meta.patch_order);
        };
        let config = Config {
            swin: SwinConfig {
                embed_dim: meta.backbone.embed_dim,
                depths: meta.backbone.depths,
                num_heads: meta.backbone.num_heads,
                window_size: meta.backbone.window_size,
            },
            patch_order,
            input_size: (meta.height, meta.width),
        };
        let doubled = meta.lateral_channels.map(|c| c * 2);
        if config.lateral_channels() != doubled {
            bail!(
                "meta.json lateral_channels {:?} do not follow from the backbone ({:?})",
                meta.lateral_channels,
                config.lateral_channels()
            );
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| meta.variant.clone());
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            meta,
            config,
        })
    }

    pub fn manifest(&self) -> Result<Vec<ManifestEntry>> {
        let path = self.dir.join("manifest.json");
        let m: Manifest = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(m.tensors)
    }

    /// `input.png` normalised as the reference: `(u8 / 255 - mean) / std` in f32, NCHW.
    pub fn input(&self, device: &Device, dtype: DType) -> Result<Tensor> {
        let img = image::open(self.dir.join("input.png"))?.to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        if (h, w) != (self.meta.height, self.meta.width) {
            bail!(
                "input.png is {w}x{h}, meta.json says {}x{}",
                self.meta.width,
                self.meta.height
            );
        }
        let mut data = vec![0f32; 3 * h * w];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                let v = p[c] as f32 / 255.0;
                data[c * h * w + y as usize * w + x as usize] =
                    (v - self.meta.normalize.mean[c]) / self.meta.normalize.std[c];
            }
        }
        Ok(Tensor::from_vec(data, (1, 3, h, w), device)?.to_dtype(dtype)?)
    }

    /// A tensor of `expected.safetensors` (`logits`, `input`, `inter.*`), as f32 on the CPU.
    pub fn expected(&self, name: &str) -> Result<Tensor> {
        let path = self.dir.join("expected.safetensors");
        let mut all = candle_core::safetensors::load(&path, &Device::Cpu)?;
        all.remove(name)
            .with_context(|| format!("{} has no tensor {name}", path.display()))
    }

    pub fn expected_names(&self) -> Result<Vec<String>> {
        let path = self.dir.join("expected.safetensors");
        Ok(candle_core::safetensors::load(&path, &Device::Cpu)?
            .into_keys()
            .collect())
    }
}

/// (max, mean) of |a - b| over all elements, computed in f32 on the CPU.
pub fn abs_diff(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
    let a = a
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?;
    let b = b
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?;
    if a.dims() != b.dims() {
        bail!("shape mismatch: {:?} vs {:?}", a.dims(), b.dims());
    }
    let d = (a - b)?.abs()?;
    let max = d.max(0)?.to_scalar::<f32>()?;
    let mean = d.mean(0)?.to_scalar::<f32>()?;
    Ok((max, mean))
}

/// The repo's copy of a shared fixture directory.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/birefnet")
        .join(name)
}

/// Tolerances of the fixture README: on logits for f32, on sigmoid(logits) otherwise.
pub fn tolerance(dtype: DType) -> (f32, f32) {
    match dtype {
        DType::F16 => (1e-2, 1e-3),
        DType::BF16 => (5e-2, 5e-3),
        _ => (2e-4, 2e-5),
    }
}
