//! The model presets of every architecture and their checkpoints on disk: what `nobg models`,
//! `nobg download` and `nobg synth-weights` need, without depending on the model crates.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{NobgError, Result};
use crate::types::DType;

/// The network a preset builds, with that crate's own preset (config and preprocessing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Architecture {
    /// BiRefNet / RMBG-2.0 (`birefnet` crate).
    BiRefNet(&'static birefnet::Preset),
    /// IS-Net / RMBG-1.4 (`isnet` crate).
    IsNet(&'static isnet::Preset),
}

impl Architecture {
    /// `"birefnet"` or `"isnet"`.
    pub fn family(&self) -> &'static str {
        match self {
            Architecture::BiRefNet(_) => "birefnet",
            Architecture::IsNet(_) => "isnet",
        }
    }
}

/// A released checkpoint (or a synthetic-only test architecture): where it lives on the Hugging
/// Face hub and which network runs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Short name used by the CLI, the server and the library.
    pub name: &'static str,
    /// Hugging Face repository; empty for synthetic-only architectures.
    pub repo_id: &'static str,
    pub filename: &'static str,
    pub licence: &'static str,
    /// The hub repository requires accepting its terms (and an `HF_TOKEN`).
    pub gated: bool,
    /// Size of the f32 safetensors file in MB, for listings.
    pub size_mb: u32,
    pub description: &'static str,
    pub architecture: Architecture,
}

/// The IS-Net checkpoints: `isnet` knows the network and preprocessing, this the hub file.
const ISNET_CHECKPOINTS: &[IsNetCheckpoint] = &[IsNetCheckpoint {
    preset: "rmbg-1.4",
    repo_id: "briaai/RMBG-1.4",
    licence: "bria-rmbg-1.4",
    gated: true,
    size_mb: 176,
    description: "Bria RMBG-1.4 (IS-Net): general background removal, 15x cheaper than \
                  RMBG-2.0 (non-commercial licence)",
}];

struct IsNetCheckpoint {
    preset: &'static str,
    repo_id: &'static str,
    licence: &'static str,
    gated: bool,
    size_mb: u32,
    description: &'static str,
}

/// Every known preset: BiRefNet's (in `birefnet`'s order, the default first), then IS-Net's.
pub fn presets() -> &'static [Preset] {
    static PRESETS: OnceLock<Vec<Preset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        let birefnet = birefnet::presets().iter().map(|p| Preset {
            name: p.name,
            repo_id: p.repo_id,
            filename: p.filename,
            licence: p.licence,
            gated: p.gated,
            size_mb: p.size_mb,
            description: p.description,
            architecture: Architecture::BiRefNet(p),
        });
        let isnet = ISNET_CHECKPOINTS.iter().filter_map(|c| {
            let p = isnet::find_preset(c.preset)?;
            Some(Preset {
                name: p.name,
                repo_id: c.repo_id,
                filename: "model.safetensors",
                licence: c.licence,
                gated: c.gated,
                size_mb: c.size_mb,
                description: c.description,
                architecture: Architecture::IsNet(p),
            })
        });
        birefnet.chain(isnet).collect()
    })
}

/// The preset called `name` (case-insensitive; `_` and `-` are interchangeable), or
/// [`NobgError::UnknownModel`] listing the known ones.
pub fn preset(name: &str) -> Result<&'static Preset> {
    let wanted = name.to_ascii_lowercase().replace('_', "-");
    presets()
        .iter()
        .find(|p| p.name == wanted)
        .ok_or_else(|| NobgError::UnknownModel {
            name: name.to_string(),
            available: presets().iter().map(|p| p.name.to_string()).collect(),
        })
}

impl Preset {
    /// The record `birefnet`'s hub code takes: it reads only the name, repository, file name
    /// and whether the repository is gated, so IS-Net checkpoints go through it unchanged.
    #[cfg(feature = "hub")]
    fn hub_record(&self) -> birefnet::Preset {
        match self.architecture {
            Architecture::BiRefNet(p) => *p,
            Architecture::IsNet(_) => birefnet::Preset {
                name: self.name,
                repo_id: self.repo_id,
                filename: self.filename,
                licence: self.licence,
                gated: self.gated,
                size_mb: self.size_mb,
                description: self.description,
                // Unused by the hub code; any config fills the field.
                config: birefnet::Config {
                    swin: birefnet::SwinConfig::TEST,
                    patch_order: birefnet::PatchOrder::Legacy,
                    input_size: (0, 0),
                },
            },
        }
    }
}

/// The preset's checkpoint if it is already in the local Hugging Face cache (no network).
#[cfg(feature = "hub")]
pub fn cached_checkpoint(preset: &Preset) -> Option<PathBuf> {
    birefnet::hub::cached(&preset.hub_record())
}

/// Without the `hub` feature there is no cache to look in.
#[cfg(not(feature = "hub"))]
pub fn cached_checkpoint(_preset: &Preset) -> Option<PathBuf> {
    None
}

/// The preset's checkpoint, downloaded into the Hugging Face cache unless already there
/// (`HF_TOKEN` opens gated repositories; `progress` shows a progress bar on stderr).
#[cfg(feature = "hub")]
pub fn download(preset: &Preset, progress: bool) -> Result<PathBuf> {
    birefnet::hub::fetch(&preset.hub_record(), progress).map_err(|e| NobgError::Load(e.to_string()))
}

/// Without the `hub` feature nothing can be downloaded.
#[cfg(not(feature = "hub"))]
pub fn download(preset: &Preset, _progress: bool) -> Result<PathBuf> {
    Err(NobgError::Load(format!(
        "preset `{}` needs the hub download, which this build leaves out (feature `hub`); \
         pass a local checkpoint instead",
        preset.name
    )))
}

/// Writes the synthetic weights of `preset`'s architecture (the ones
/// [`crate::ModelSpec::Synthetic`] builds in memory) as a safetensors checkpoint.
pub fn write_synthetic_weights(
    preset: &Preset,
    seed: u64,
    path: &Path,
    dtype: DType,
) -> Result<()> {
    let dtype = crate::model::candle_dtype(dtype);
    match preset.architecture {
        Architecture::BiRefNet(p) => {
            birefnet::synthetic::write_safetensors(&p.config, seed, path, dtype)
                .map_err(|e| NobgError::Load(e.to_string()))
        }
        Architecture::IsNet(p) => isnet::synthetic::write_safetensors(&p.config, seed, path, dtype)
            .map_err(|e| NobgError::Load(e.to_string())),
    }
}
