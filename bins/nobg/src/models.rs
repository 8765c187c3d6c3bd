//! `nobg models`, `nobg download`, `nobg synth-weights`.

use std::path::Path;

use anyhow::Context;
use nobg::catalog;
use nobg::DType;

pub fn list() -> anyhow::Result<()> {
    println!(
        "{:<20} {:<13} {:>8}  {:<6} {:<7} {:<9} DESCRIPTION",
        "NAME", "LICENCE", "SIZE", "GATED", "CACHED", "ARCH"
    );
    for preset in catalog::presets() {
        let cached = if preset.repo_id.is_empty() {
            "-"
        } else if catalog::cached_checkpoint(preset).is_some() {
            "yes"
        } else {
            "no"
        };
        println!(
            "{:<20} {:<13} {:>5} MB  {:<6} {:<7} {:<9} {}",
            preset.name,
            preset.licence,
            preset.size_mb,
            if preset.gated { "yes" } else { "no" },
            cached,
            preset.architecture.family(),
            preset.description
        );
    }
    Ok(())
}

pub fn download(name: &str) -> anyhow::Result<()> {
    let preset = catalog::preset(name)?;
    let path = catalog::download(preset, true)?;
    println!("{}", path.display());
    Ok(())
}

pub fn synth_weights(config: &str, seed: u64, dtype: DType, out: &Path) -> anyhow::Result<()> {
    let preset = catalog::preset(config)?;
    catalog::write_synthetic_weights(preset, seed, out, dtype)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "wrote synthetic `{}` weights (seed {seed}, {dtype}) to {}",
        preset.name,
        out.display()
    );
    Ok(())
}
