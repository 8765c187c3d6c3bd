//! Model configuration and the preset of each released IS-Net checkpoint.

/// Hyper-parameters of the network. Every released checkpoint uses the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub in_channels: usize,
    pub out_channels: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 1,
        }
    }
}

/// A released checkpoint: the architecture plus the preprocessing it was trained with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub config: Config,
    /// Square side the image is resized to before inference.
    pub size: usize,
    /// Applied to pixels in [0, 1]: `(x - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Stretch the predicted mask to [0, 1] (min–max) before use, as the reference does.
    pub normalize_mask: bool,
}

const PRESETS: &[Preset] = &[Preset {
    name: "rmbg-1.4",
    config: Config {
        in_channels: 3,
        out_channels: 1,
    },
    size: 1024,
    mean: [0.5; 3],
    std: [1.0; 3],
    normalize_mask: true,
}];

/// Every known preset.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// The preset called `name`, if any.
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}
