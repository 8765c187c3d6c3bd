//! Which models to load, and how a Runware AIR id picks one of them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nobg_api::TaskError;
use serde::Deserialize;

/// AIR ids answered by a preset when it is loaded and by the default model otherwise (with a
/// log line at start-up): `runware:109@1` is RemBG 1.4, i.e. `rmbg-1.4`, and what the legacy
/// Python SDK sends when no model is given.
pub const FALLBACK_AIRS: [(&str, &str); 1] = [("runware:109@1", "rmbg-1.4")];

/// Where one model's weights come from; registered under [`ModelSource::name`].
/// In TOML: `{ preset = "rmbg-2.0" }`, `{ weights = "m.safetensors", config = "birefnet" }`,
/// `{ synthetic = "tiny", seed = 0 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// A preset from the Hugging Face hub or its cache.
    Preset { preset: String },
    /// A local checkpoint with the architecture of preset `config`.
    Local {
        #[serde(rename = "weights")]
        path: PathBuf,
        config: String,
    },
    /// Synthetic weights of `preset`'s architecture.
    Synthetic {
        #[serde(rename = "synthetic")]
        preset: String,
        #[serde(default)]
        seed: u64,
    },
}

impl ModelSource {
    /// The name requests (and the AIR map) use: the preset's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Preset { preset } | Self::Synthetic { preset, .. } => preset,
            Self::Local { config, .. } => config,
        }
    }

    pub fn spec(&self) -> nobg::ModelSpec {
        match self {
            Self::Preset { preset } => nobg::ModelSpec::Preset(preset.clone()),
            Self::Local { path, config } => nobg::ModelSpec::Local {
                path: path.clone(),
                config: config.clone(),
            },
            Self::Synthetic { preset, seed } => nobg::ModelSpec::Synthetic {
                config: preset.clone(),
                seed: *seed,
            },
        }
    }
}

/// Runware's background-removal AIR ids and the presets that serve them (spec 4.1.4).
pub fn default_air_map() -> BTreeMap<String, String> {
    [
        ("bria:2@1", "rmbg-2.0"),
        ("runware:110@1", "rmbg-2.0"),
        ("runware:112@1", "birefnet"),
        ("runware:112@2", "birefnet-cod"),
        ("runware:112@3", "birefnet-dis"),
        ("runware:112@5", "birefnet"),
        ("runware:112@6", "birefnet-512"),
        ("runware:112@7", "birefnet-hrsod"),
        ("runware:112@8", "birefnet-massive"),
        ("runware:112@9", "birefnet-matting"),
        ("runware:112@10", "birefnet-portrait"),
    ]
    .into_iter()
    .map(|(air, preset)| (air.to_owned(), preset.to_owned()))
    .collect()
}

/// How to load a model that a request asked for, where there is more to it than `--model NAME`.
fn load_hint(name: &str) -> &'static str {
    match name {
        "rmbg-2.0" => {
            " RMBG-2.0 is gated (CC BY-NC 4.0): accept its licence at \
             https://huggingface.co/briaai/RMBG-2.0, export HF_TOKEN and restart the server \
             with `--model rmbg-2.0` (or with no model flag, which loads it when HF_TOKEN is set)."
        }
        _ => "",
    }
}

/// Resolves AIR ids against the loaded models.
#[derive(Debug, Clone)]
pub struct ModelRouter {
    air_map: BTreeMap<String, String>,
    loaded: Vec<String>,
    default: String,
}

impl ModelRouter {
    /// `loaded` in registration order; `default` is the model of requests that name none.
    pub fn new(air_map: BTreeMap<String, String>, loaded: Vec<String>, default: String) -> Self {
        // AIR ids are matched case-insensitively (`Bria:2@1`).
        let air_map = air_map
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for (air, preset) in FALLBACK_AIRS {
            if !loaded.iter().any(|n| n == preset) {
                tracing::info!(
                    air,
                    model = %default,
                    "{air} is answered by the default model `{default}`: `{preset}` is not loaded"
                );
            }
        }
        Self {
            air_map,
            loaded,
            default,
        }
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The loaded model for `model` (`None` = the default model), or `invalidModel` listing the
    /// AIR ids that would work.
    pub fn resolve(&self, model: Option<&str>) -> Result<Option<String>, TaskError> {
        let Some(air) = model else { return Ok(None) };
        let key = air.trim().to_ascii_lowercase();
        if let Some((_, preset)) = FALLBACK_AIRS.iter().find(|(a, _)| *a == key) {
            return Ok(self.by_name(preset));
        }
        match self.air_map.get(&key) {
            Some(name) if self.loaded.contains(name) => Ok(Some(name.clone())),
            Some(name) => Err(TaskError::invalid(
                "model",
                "string",
                &format!(
                    "Model '{air}' is served by '{name}', which this server has not loaded.{}",
                    load_hint(name)
                ),
            )
            .with_allowed_values(self.usable_airs())),
            None => Err(TaskError::invalid(
                "model",
                "string",
                &format!(
                    "Unknown model '{air}'. This server supports background-removal models only."
                ),
            )
            .with_allowed_values(self.usable_airs())),
        }
    }

    /// AIR ids that resolve to a loaded model, the fallback ones first.
    pub fn usable_airs(&self) -> Vec<String> {
        FALLBACK_AIRS
            .iter()
            .map(|(air, _)| (*air).to_owned())
            .chain(
                self.air_map
                    .iter()
                    .filter(|(_, name)| self.loaded.contains(name))
                    .map(|(air, _)| air.clone()),
            )
            .collect()
    }

    /// A model by its own name (predictions API), if loaded.
    pub fn by_name(&self, name: &str) -> Option<String> {
        self.loaded.iter().find(|n| n.as_str() == name).cloned()
    }

    pub fn loaded(&self) -> &[String] {
        &self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(loaded: &[&str]) -> ModelRouter {
        ModelRouter::new(
            default_air_map(),
            loaded.iter().map(|s| (*s).to_owned()).collect(),
            loaded.first().map(|s| (*s).to_owned()).unwrap_or_default(),
        )
    }

    #[test]
    fn the_spec_airs_map_to_their_presets() {
        let r = router(&["rmbg-2.0", "birefnet-portrait", "birefnet-512"]);
        assert_eq!(
            r.resolve(Some("bria:2@1")).unwrap().as_deref(),
            Some("rmbg-2.0")
        );
        assert_eq!(
            r.resolve(Some("runware:110@1")).unwrap().as_deref(),
            Some("rmbg-2.0")
        );
        assert_eq!(
            r.resolve(Some("BRIA:2@1")).unwrap().as_deref(),
            Some("rmbg-2.0")
        );
        assert_eq!(
            r.resolve(Some("runware:112@10")).unwrap().as_deref(),
            Some("birefnet-portrait")
        );
        assert_eq!(
            r.resolve(Some("runware:112@6")).unwrap().as_deref(),
            Some("birefnet-512")
        );
        assert_eq!(r.resolve(Some("runware:109@1")).unwrap(), None);
        assert_eq!(r.resolve(None).unwrap(), None);
    }

    #[test]
    fn runware_109_is_rmbg_1_4_when_loaded_else_the_default_model() {
        let with = router(&["rmbg-2.0", "rmbg-1.4"]);
        assert_eq!(
            with.resolve(Some("runware:109@1")).unwrap().as_deref(),
            Some("rmbg-1.4")
        );
        assert_eq!(
            with.resolve(Some("RUNWARE:109@1")).unwrap().as_deref(),
            Some("rmbg-1.4")
        );
        assert_eq!(with.resolve(None).unwrap(), None);
        let without = router(&["rmbg-2.0"]);
        assert_eq!(without.resolve(Some("runware:109@1")).unwrap(), None);
        assert!(without.usable_airs().contains(&"runware:109@1".into()));
    }

    #[test]
    fn unknown_or_unloaded_models_are_invalid_model_with_allowed_values() {
        let r = router(&["rmbg-2.0"]);
        let err = r.resolve(Some("runware:112@9")).unwrap_err();
        assert_eq!(err.code, "invalidModel");
        assert!(err.message.contains("birefnet-matting"), "{}", err.message);
        let allowed = err.allowed_values.clone().unwrap();
        assert!(allowed.contains(&"bria:2@1".into()));
        assert!(allowed.contains(&"runware:109@1".into()));
        assert!(!allowed.contains(&"runware:112@9".into()));
        // bria:2@1 is RMBG-2.0 only: without it the error says how to load it.
        let r = router(&["birefnet-lite"]);
        let err = r.resolve(Some("bria:2@1")).unwrap_err();
        assert_eq!(err.code, "invalidModel");
        for fix in ["rmbg-2.0", "HF_TOKEN", "licence", "briaai/RMBG-2.0"] {
            assert!(err.message.contains(fix), "{fix}: {}", err.message);
        }
        assert!(!err
            .allowed_values
            .clone()
            .unwrap()
            .contains(&"bria:2@1".into()));
        assert_eq!(
            r.resolve(Some("civitai:1@1")).unwrap_err().code,
            "invalidModel"
        );
    }

    #[test]
    fn source_names_and_specs() {
        let s = ModelSource::Synthetic {
            preset: "tiny".into(),
            seed: 3,
        };
        assert_eq!(s.name(), "tiny");
        assert_eq!(
            s.spec(),
            nobg::ModelSpec::Synthetic {
                config: "tiny".into(),
                seed: 3
            }
        );
        assert_eq!(
            ModelSource::Preset {
                preset: "rmbg-2.0".into()
            }
            .spec(),
            nobg::ModelSpec::Preset("rmbg-2.0".into())
        );
    }
}
