//! `nobg remove IN [OUT]`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nobg::{Input, OutputFormat};

use crate::args::RemoveArgs;

pub fn run(args: &RemoveArgs) -> anyhow::Result<()> {
    let opts = args.output_options.options();
    let stdin = args.input.as_os_str() == "-";
    let bytes = if stdin {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        bytes
    } else {
        std::fs::read(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?
    };
    let remover = crate::build_remover(&args.model, 1)?;
    let out = remover
        .remove(Input::Bytes(bytes), &opts)
        .with_context(|| display_input(&args.input))?;
    let target = match &args.output {
        Some(path) => path.clone(),
        None if stdin => PathBuf::from("-"),
        None => default_output(&args.input, opts.format),
    };
    if target.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out.encoded)
            .and_then(|()| stdout.flush())
            .context("cannot write stdout")?;
    } else {
        std::fs::write(&target, &out.encoded)
            .with_context(|| format!("cannot write {}", target.display()))?;
        tracing::info!(output = %target.display(), width = out.width, height = out.height, "written");
    }
    Ok(())
}

fn display_input(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

/// `dir/photo.jpg` -> `dir/photo.nobg.png` (the extension that of the output format).
fn default_output(input: &Path, format: OutputFormat) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    input.with_file_name(format!("{stem}.nobg.{}", format.extension()))
}
