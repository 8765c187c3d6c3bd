//! Command-line arguments: the subcommands and the options they share.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nobg::{
    AlphaMattingParams, Background, DType, Device, Foreground, ModelSpec, OutputFormat,
    RemoveOptions,
};

/// Remove image backgrounds locally with BiRefNet / RMBG-2.0 or IS-Net / RMBG-1.4.
#[derive(Debug, Parser)]
#[command(name = "nobg", version, about)]
pub struct Cli {
    /// More logs on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remove the background of one image (`i`: rembg's name, with its flags `-m -a -af -ab -ae
    /// -om -ppm -bgc`).
    #[command(visible_alias = "i")]
    Remove(RemoveArgs),
    /// Remove the backgrounds of every image under a folder, keeping the folder structure (`p`:
    /// rembg's name, with its flags).
    #[command(visible_alias = "p")]
    Batch(BatchArgs),
    /// List the model presets: licence, size, whether the checkpoint is cached.
    Models,
    /// Download a preset's checkpoint from the Hugging Face hub into the local cache.
    Download {
        /// Preset name (see `nobg models`).
        model: String,
    },
    /// Write synthetic weights (random, deterministic) for a preset's architecture, to try
    /// everything without a download.
    SynthWeights {
        /// The preset whose architecture the weights have.
        #[arg(long, default_value = "tiny")]
        config: String,
        /// Seed of the weight generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Type of the stored tensors.
        #[arg(long, default_value = "f32")]
        dtype: DType,
        /// The `.safetensors` file to write.
        out: PathBuf,
    },
    /// Measure images per second and peak memory of the whole pipeline.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The input image, or `-` for stdin.
    pub input: PathBuf,
    /// The output file, or `-` for stdout [default: `<stem>.nobg.<format>` beside the input;
    /// stdout when the input is stdin].
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub output_options: OutputArgs,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The folder to read images from (recursively).
    pub input_dir: PathBuf,
    /// The folder to write results to; `IN_DIR/a/b.jpg` becomes `OUT_DIR/a/b.<format>`.
    pub output_dir: PathBuf,
    /// Redo images whose output already exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Keep running and process images added to the input folder.
    #[arg(long)]
    pub watch: bool,
    /// How often `--watch` looks for new files, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub watch_interval: u64,
    /// Images in flight at once (decoding and encoding overlap with inference)
    /// [default: CPUs + 1].
    #[arg(short, long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub output_options: OutputArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Side of the square test image (a synthetic gradient), in pixels.
    #[arg(long, default_value_t = 1024)]
    pub size: u32,
    /// Use this image instead of a synthetic one.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Images to time (after one warm-up).
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// Requests in flight at once (batching needs more than one).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub output_options: OutputArgs,
}

/// Which model to run, and where.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model preset, downloaded on first use (see `nobg models`) [default: rmbg-2.0].
    #[arg(long, value_name = "NAME", conflicts_with_all = ["weights", "synthetic"])]
    pub model: Option<String>,
    /// A local `.safetensors` checkpoint (its architecture given by --config).
    #[arg(long, value_name = "PATH", conflicts_with = "synthetic")]
    pub weights: Option<PathBuf>,
    /// The preset whose architecture --weights has (`rmbg-2.0`, `birefnet`, `rmbg-1.4`, ...).
    #[arg(
        long,
        value_name = "NAME",
        requires = "weights",
        default_value = "rmbg-2.0"
    )]
    pub config: String,
    /// Synthetic weights for a preset's architecture (no download; meaningless masks):
    /// `tiny` is fast enough to try everything; `rmbg-1.4` (IS-Net) with a small --resolution.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "tiny")]
    pub synthetic: Option<String>,
    /// cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// f32, f16, bf16 or auto: bf16 on CPUs with AMX-BF16 or AVX512-BF16 (bf16 matrix products, f32
    /// elsewhere), f32 on other CPUs, f16 on a GPU.
    #[arg(long, default_value = "auto")]
    pub dtype: DType,
}

impl ModelArgs {
    /// The model's name and where its weights come from.
    pub fn spec(&self) -> (String, ModelSpec) {
        if let Some(path) = &self.weights {
            return (
                self.config.clone(),
                ModelSpec::Local {
                    path: path.clone(),
                    config: self.config.clone(),
                },
            );
        }
        if let Some(config) = &self.synthetic {
            return (
                config.clone(),
                ModelSpec::Synthetic {
                    config: config.clone(),
                    seed: 0,
                },
            );
        }
        let name = self.model.clone().unwrap_or_else(|| "rmbg-2.0".to_string());
        (name.clone(), ModelSpec::Preset(name))
    }

    /// The compute type, `auto` resolved for the device.
    pub fn dtype(&self) -> DType {
        self.dtype.resolve(self.device)
    }
}

/// What to produce.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Model input side in pixels, a multiple of 32 [default: the model's own].
    #[arg(long, value_name = "N")]
    pub resolution: Option<u32>,
    /// png, webp or jpg.
    #[arg(long, default_value = "png")]
    pub format: OutputFormat,
    /// JPEG and WebP quality, 20 to 99.
    #[arg(long, default_value_t = nobg::DEFAULT_QUALITY)]
    pub quality: u8,
    /// Background colour instead of transparency: R,G,B or R,G,B,A (0-255 each).
    #[arg(long, value_name = "R,G,B[,A]", value_parser = parse_color)]
    pub bg_color: Option<[u8; 4]>,
    /// Write the mask (grayscale) instead of the cut-out.
    #[arg(long)]
    pub only_mask: bool,
    /// Clean the mask up: remove specks, smooth and binarise the outline.
    #[arg(long)]
    pub post_process_mask: bool,
    /// Refine edges with alpha matting; optional FG,BG,ERODE thresholds (default 240,10,10).
    #[arg(long, value_name = "FG,BG,ERODE", num_args = 0..=1, default_missing_value = "240,10,10", value_parser = parse_alpha_matting)]
    pub alpha_matting: Option<AlphaMattingParams>,
    /// Foreground colour estimation at soft edges: none, blur or ml.
    #[arg(long, default_value = "none")]
    pub foreground: Foreground,
    /// Keep the input's own transparency (multiply it into the mask).
    #[arg(long)]
    pub preserve_alpha: bool,
    /// Crop to the subject plus MARGIN pixels (default 0).
    #[arg(long, value_name = "MARGIN", num_args = 0..=1, default_missing_value = "0")]
    pub trim: Option<u32>,
}

impl OutputArgs {
    pub fn options(&self) -> RemoveOptions {
        RemoveOptions {
            model: None,
            resolution: self.resolution.map(|n| (n, n)),
            only_mask: self.only_mask,
            format: self.format,
            quality: Some(self.quality),
            background: self
                .bg_color
                .map_or(Background::Transparent, Background::Rgba),
            post_process_mask: self.post_process_mask,
            alpha_matting: self.alpha_matting,
            foreground: self.foreground,
            preserve_alpha: self.preserve_alpha,
            trim: self.trim,
            premultiplied: false,
        }
    }
}

fn numbers(s: &str, what: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|part| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{part}` in {what} is not a number"))
        })
        .collect()
}

fn parse_color(s: &str) -> Result<[u8; 4], String> {
    let values = numbers(s, "the colour")?;
    let byte = |v: u32| u8::try_from(v).map_err(|_| format!("{v} is outside 0-255"));
    match values.as_slice() {
        [r, g, b] => Ok([byte(*r)?, byte(*g)?, byte(*b)?, 255]),
        [r, g, b, a] => Ok([byte(*r)?, byte(*g)?, byte(*b)?, byte(*a)?]),
        _ => Err("expected R,G,B or R,G,B,A".into()),
    }
}

fn parse_alpha_matting(s: &str) -> Result<AlphaMattingParams, String> {
    let values = numbers(s, "the alpha matting settings")?;
    let threshold = |v: u32| match u8::try_from(v) {
        Ok(t) if t >= 1 => Ok(t),
        _ => Err(format!("threshold {v} is outside 1-255")),
    };
    match values.as_slice() {
        [fg, bg, erode] => Ok(AlphaMattingParams {
            foreground_threshold: threshold(*fg)?,
            background_threshold: threshold(*bg)?,
            erode_size: *erode,
        }),
        _ => Err("expected FG,BG,ERODE, e.g. 240,10,10".into()),
    }
}
