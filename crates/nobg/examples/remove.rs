//! Remove the background of one file with the library.
//!
//! ```text
//! cargo run -p nobg --example remove -- photo.jpg photo.png            # RMBG-2.0 (downloads)
//! cargo run -p nobg --example remove -- photo.jpg photo.png tiny       # synthetic weights
//! ```

use nobg::{Input, ModelSpec, RemoveOptions, Remover};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: remove INPUT OUTPUT [synthetic-config]".into());
    };
    let spec = match args.next() {
        Some(config) => ModelSpec::Synthetic { config, seed: 0 },
        None => ModelSpec::Preset("rmbg-2.0".into()),
    };
    let remover = Remover::builder().model("default", spec).build()?;
    let out = remover.remove(
        Input::Bytes(std::fs::read(&input)?),
        &RemoveOptions::default(),
    )?;
    std::fs::write(&output, &out.encoded)?;
    println!(
        "{input} -> {output}: {}x{} {}",
        out.width, out.height, out.format
    );
    Ok(())
}
