//! rembg's command line (`rembg i IN OUT`, `rembg p IN_DIR OUT_DIR`) on top of nobg's:
//! `i` and `p` are aliases of `remove` and `batch`, and rembg's flags (multi-letter short flags
//! such as `-om`, which clap cannot declare) are rewritten into nobg's before clap parses.

use std::ffi::OsString;

/// rembg model names and the nobg presets that run them; other names pass through unchanged.
const MODEL_NAMES: [(&str, &str); 10] = [
    ("bria-rmbg", "rmbg-2.0"),
    ("birefnet-general", "birefnet"),
    ("birefnet-general-fp16", "birefnet"),
    ("birefnet-general-lite", "birefnet-lite"),
    ("birefnet-portrait", "birefnet-portrait"),
    ("birefnet-dis", "birefnet-dis"),
    ("birefnet-hrsod", "birefnet-hrsod"),
    ("birefnet-cod", "birefnet-cod"),
    ("birefnet-massive", "birefnet-massive"),
    ("isnet-general-use", "rmbg-1.4"),
];

/// Rewrites `args` (program name first) when the subcommand is `i` or `p`; anything else is
/// returned as is. Errors name the flag that lacks its value(s).
pub fn translate(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(pos) = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|p| p + 1)
    else {
        return Ok(args);
    };
    if !matches!(args[pos].to_str(), Some("i" | "p")) {
        return Ok(args);
    }
    let mut out: Vec<OsString> = args[..=pos].to_vec();
    let mut rest = args[pos + 1..].iter();
    let (mut matting, mut fg, mut bg, mut erode) = (false, 240u32, 10u32, 10u32);
    let value = |flag: &str, rest: &mut std::slice::Iter<'_, OsString>| {
        rest.next()
            .map(|v| v.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{flag} needs a value"))
    };
    let number = |flag: &str, v: String| {
        v.parse::<u32>()
            .map_err(|_| format!("{flag} needs a number, got `{v}`"))
    };
    while let Some(arg) = rest.next() {
        match arg.to_str().unwrap_or_default() {
            "-m" | "--model" => {
                let name = value("-m", &mut rest)?;
                let preset = MODEL_NAMES
                    .iter()
                    .find(|(r, _)| *r == name)
                    .map_or(name.as_str(), |(_, p)| p);
                out.push("--model".into());
                out.push(preset.into());
            }
            "-a" | "--alpha-matting" => matting = true,
            "-af" | "--alpha-matting-foreground-threshold" => {
                fg = number("-af", value("-af", &mut rest)?)?
            }
            "-ab" | "--alpha-matting-background-threshold" => {
                bg = number("-ab", value("-ab", &mut rest)?)?
            }
            "-ae" | "--alpha-matting-erode-size" => {
                erode = number("-ae", value("-ae", &mut rest)?)?
            }
            "-om" | "--only-mask" => out.push("--only-mask".into()),
            "-ppm" | "--post-process-mask" => out.push("--post-process-mask".into()),
            "-bgc" | "--bgcolor" => {
                // rembg: four integers, R G B A.
                let rgba = (0..4)
                    .map(|_| value("-bgc (R G B A)", &mut rest))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push("--bg-color".into());
                out.push(rgba.join(",").into());
            }
            _ => out.push(arg.clone()),
        }
    }
    if matting {
        out.push("--alpha-matting".into());
        out.push(format!("{fg},{bg},{erode}").into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Vec<String> {
        translate(args.iter().map(OsString::from).collect())
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn rembg_flags_become_nobg_flags() {
        assert_eq!(
            t(&[
                "nobg",
                "i",
                "-m",
                "bria-rmbg",
                "-om",
                "-ppm",
                "in.png",
                "out.png"
            ]),
            [
                "nobg",
                "i",
                "--model",
                "rmbg-2.0",
                "--only-mask",
                "--post-process-mask",
                "in.png",
                "out.png"
            ]
        );
        assert_eq!(
            t(&["nobg", "-v", "p", "-a", "-af", "200", "-ab", "20", "-ae", "3", "a", "b"]),
            ["nobg", "-v", "p", "a", "b", "--alpha-matting", "200,20,3"]
        );
        assert_eq!(
            t(&["nobg", "i", "-a", "x", "y"]),
            ["nobg", "i", "x", "y", "--alpha-matting", "240,10,10"]
        );
        assert_eq!(
            t(&["nobg", "i", "-bgc", "1", "2", "3", "4", "x", "y"]),
            ["nobg", "i", "--bg-color", "1,2,3,4", "x", "y"]
        );
        assert_eq!(
            t(&["nobg", "i", "-m", "birefnet-general-lite", "x"]),
            ["nobg", "i", "--model", "birefnet-lite", "x"]
        );
    }

    #[test]
    fn other_commands_are_untouched() {
        let args = ["nobg", "remove", "-om", "x"];
        assert_eq!(t(&args), args);
        assert_eq!(t(&["nobg"]), ["nobg"]);
    }

    #[test]
    fn missing_values_are_errors() {
        let err =
            translate(["nobg", "i", "-bgc", "1", "2"].map(OsString::from).to_vec()).unwrap_err();
        assert!(err.contains("-bgc"), "{err}");
        let err = translate(["nobg", "i", "-af", "x"].map(OsString::from).to_vec()).unwrap_err();
        assert!(err.contains("number"), "{err}");
    }
}
