//! Model configuration and the presets of every released BiRefNet checkpoint.

/// Hyper-parameters of a Swin Transformer v1 backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwinConfig {
    pub embed_dim: usize,
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
}

impl SwinConfig {
    /// swin_v1_t: BiRefNet_lite and BiRefNet_lite-2K.
    pub const TINY: SwinConfig = SwinConfig {
        embed_dim: 96,
        depths: [2, 2, 6, 2],
        num_heads: [3, 6, 12, 24],
        window_size: 7,
    };
    /// swin_v1_l: RMBG-2.0 and the full-size BiRefNet checkpoints.
    pub const LARGE: SwinConfig = SwinConfig {
        embed_dim: 192,
        depths: [2, 2, 18, 2],
        num_heads: [6, 12, 24, 48],
        window_size: 12,
    };
    /// The small test backbone of the `tiny-legacy-128` fixture: for tests and demos on
    /// synthetic weights only (no released checkpoint has it).
    pub const TEST: SwinConfig = SwinConfig {
        embed_dim: 24,
        depths: [2, 2, 2, 2],
        num_heads: [1, 2, 3, 6],
        window_size: 7,
    };

    /// Channels of the four stage outputs, finest first.
    pub fn stage_channels(&self) -> [usize; 4] {
        [
            self.embed_dim,
            self.embed_dim * 2,
            self.embed_dim * 4,
            self.embed_dim * 8,
        ]
    }
}

/// How the decoder cuts the input image into patches stacked along channels
/// (`ipt_blk5..1`). Released checkpoints were trained with one of two orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOrder {
    /// Channel index `(wg * GH + hg) * C + c`. RMBG-2.0.
    Legacy,
    /// Channel index `(c * GH + hg) * GW + wg`. ZhengPeng7/BiRefNet* checkpoints.
    Einops,
}

impl PatchOrder {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "legacy" => Some(Self::Legacy),
            "einops" => Some(Self::Einops),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Einops => "einops",
        }
    }
}

/// Everything that varies between BiRefNet checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub swin: SwinConfig,
    pub patch_order: PatchOrder,
    /// Default model input size as (height, width); the model runs at any multiple of 32.
    pub input_size: (usize, usize),
}

impl Config {
    /// Channels of x4, x3, x2, x1 after the two-scale `cat` input (twice the backbone's).
    pub fn lateral_channels(&self) -> [usize; 4] {
        let s = self.swin.stage_channels();
        [s[3] * 2, s[2] * 2, s[1] * 2, s[0] * 2]
    }
}

/// A released checkpoint: where it lives on the Hugging Face hub and how to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Short name used by the CLI, the server and the library.
    pub name: &'static str,
    pub repo_id: &'static str,
    pub filename: &'static str,
    pub licence: &'static str,
    /// The hub repository requires accepting its terms (and an `HF_TOKEN`).
    pub gated: bool,
    /// Size of the f32 safetensors file in MB, for listings.
    pub size_mb: u32,
    pub description: &'static str,
    pub config: Config,
}

const fn swin_l(order: PatchOrder, h: usize, w: usize) -> Config {
    Config {
        swin: SwinConfig::LARGE,
        patch_order: order,
        input_size: (h, w),
    }
}

const fn swin_t(order: PatchOrder, h: usize, w: usize) -> Config {
    Config {
        swin: SwinConfig::TINY,
        patch_order: order,
        input_size: (h, w),
    }
}

const fn zp(
    name: &'static str,
    repo_id: &'static str,
    size_mb: u32,
    description: &'static str,
    config: Config,
) -> Preset {
    Preset {
        name,
        repo_id,
        filename: "model.safetensors",
        licence: "MIT",
        gated: false,
        size_mb,
        description,
        config,
    }
}

use PatchOrder::{Einops, Legacy};

static PRESETS: &[Preset] = &[
    Preset {
        name: "rmbg-2.0",
        repo_id: "briaai/RMBG-2.0",
        filename: "model.safetensors",
        licence: "CC-BY-NC-4.0",
        gated: true,
        size_mb: 885,
        description: "Bria RMBG-2.0: general background removal (non-commercial licence)",
        config: swin_l(Legacy, 1024, 1024),
    },
    zp(
        "birefnet",
        "ZhengPeng7/BiRefNet",
        885,
        "BiRefNet general-use model",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-lite",
        "ZhengPeng7/BiRefNet_lite",
        178,
        "BiRefNet general-use, Swin-T backbone (faster)",
        swin_t(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-portrait",
        "ZhengPeng7/BiRefNet-portrait",
        885,
        "BiRefNet trained for portraits",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-matting",
        "ZhengPeng7/BiRefNet-matting",
        885,
        "BiRefNet trained for soft matting (hair, fur, glass)",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-hrsod",
        "ZhengPeng7/BiRefNet-HRSOD",
        885,
        "BiRefNet trained for high-resolution salient object detection",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-dis",
        "ZhengPeng7/BiRefNet-DIS5K",
        885,
        "BiRefNet trained on DIS5K (dichotomous image segmentation)",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-cod",
        "ZhengPeng7/BiRefNet-COD",
        885,
        "BiRefNet trained for camouflaged object detection",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-massive",
        "ZhengPeng7/BiRefNet-massive-TR_DIS5K_TR_TEs",
        885,
        "BiRefNet trained on a massive dataset collection",
        swin_l(Einops, 1024, 1024),
    ),
    zp(
        "birefnet-hr",
        "ZhengPeng7/BiRefNet_HR",
        885,
        "BiRefNet for high-resolution images (2048x2048)",
        swin_l(Einops, 2048, 2048),
    ),
    zp(
        "birefnet-hr-matting",
        "ZhengPeng7/BiRefNet_HR-matting",
        885,
        "BiRefNet matting for high-resolution images (2048x2048)",
        swin_l(Einops, 2048, 2048),
    ),
    zp(
        "birefnet-lite-2k",
        "ZhengPeng7/BiRefNet_lite-2K",
        178,
        "BiRefNet_lite for 2K images (2560x1440)",
        swin_t(Einops, 1440, 2560),
    ),
    zp(
        "birefnet-512",
        "ZhengPeng7/BiRefNet_512x512",
        885,
        "BiRefNet trained at 512x512 (fast, low resolution)",
        swin_l(Einops, 512, 512),
    ),
    zp(
        "birefnet-dynamic",
        "ZhengPeng7/BiRefNet_dynamic",
        885,
        "BiRefNet trained on dynamic resolutions (256 to 2304)",
        swin_l(Einops, 1024, 1024),
    ),
    Preset {
        name: "tiny",
        repo_id: "",
        filename: "",
        licence: "MIT",
        gated: false,
        size_mb: 9,
        description: "tiny test backbone for synthetic weights: every code path, meaningless masks",
        config: Config {
            swin: SwinConfig::TEST,
            patch_order: Legacy,
            input_size: (128, 128),
        },
    },
];

/// Every known checkpoint, the default (`rmbg-2.0`) first.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// Look a preset up by name (case-insensitive; `_` and `-` are interchangeable).
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    let wanted = name.to_ascii_lowercase().replace('_', "-");
    PRESETS.iter().find(|p| p.name == wanted)
}

/// Like [`find_preset`], but an unknown name is an error listing the known ones.
pub fn preset(name: &str) -> crate::Result<&'static Preset> {
    find_preset(name).ok_or_else(|| crate::Error::UnknownPreset {
        name: name.to_string(),
        available: PRESETS
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateral_channels_follow_the_reference_table() {
        // config.py: swin_v1_l [1536, 768, 384, 192], swin_v1_t [768, 384, 192, 96], doubled by `cat`.
        assert_eq!(
            find_preset("rmbg-2.0").map(|p| p.config.lateral_channels()),
            Some([3072, 1536, 768, 384])
        );
        assert_eq!(
            find_preset("birefnet-lite").map(|p| p.config.lateral_channels()),
            Some([1536, 768, 384, 192])
        );
    }

    #[test]
    fn preset_lookup_is_forgiving_and_unknown_names_list_the_known_ones() {
        assert_eq!(
            find_preset("BiRefNet_Lite").map(|p| p.name),
            Some("birefnet-lite")
        );
        let err = preset("nope").unwrap_err().to_string();
        assert!(err.contains("rmbg-2.0") && err.contains("tiny"), "{err}");
    }

    #[test]
    fn rmbg_uses_the_legacy_patch_order_and_zhengpeng7_checkpoints_einops() {
        for p in presets() {
            let expected = if p.name == "rmbg-2.0" || p.name == "tiny" {
                PatchOrder::Legacy
            } else {
                PatchOrder::Einops
            };
            assert_eq!(p.config.patch_order, expected, "{}", p.name);
            assert_eq!(p.config.input_size.0 % 32, 0);
            assert_eq!(p.config.input_size.1 % 32, 0);
        }
    }
}
