//! Where an environment's settings come from: a named scenario ([`kis_sim::env::SCENARIOS`]), a
//! JSON or TOML file, or a JSON text (what the Python side makes of a dict). Each is parsed into a
//! validated [`EnvConfig`]; errors name the file and the field.

use std::path::Path;

use kis_sim::env::EnvConfig;

/// How [`load`]'s `spec` is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A scenario name, e.g. `default`.
    Name,
    /// A file: TOML for `.toml`, JSON otherwise (as `kis-agent` reads configs).
    Path,
    /// An `EnvConfig` as JSON text.
    Json,
}

impl Source {
    /// `name`, `path` or `json`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "name" => Ok(Source::Name),
            "path" => Ok(Source::Path),
            "json" => Ok(Source::Json),
            _ => Err(format!(
                "unknown scenario source {s:?}; expected name, path or json"
            )),
        }
    }
}

/// Reads and validates the settings `spec` names.
pub(crate) fn load(source: Source, spec: &str) -> Result<EnvConfig, String> {
    let cfg = match source {
        Source::Name => EnvConfig::named(spec).map_err(|e| e.to_string())?,
        Source::Json => serde_json::from_str(spec).map_err(|e| format!("scenario (JSON): {e}"))?,
        Source::Path => {
            let path = Path::new(spec);
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
            if path.extension().is_some_and(|e| e == "toml") {
                toml::from_str(&text).map_err(|e| format!("scenario {}: {e}", path.display()))?
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| format!("scenario {}: {e}", path.display()))?
            }
        }
    };
    cfg.validate()
        .map_err(|e| format!("scenario {}: {e}", describe(source, spec)))?;
    Ok(cfg)
}

fn describe(source: Source, spec: &str) -> String {
    match source {
        Source::Json => "(JSON)".to_string(),
        _ => spec.to_string(),
    }
}
