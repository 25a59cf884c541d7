//! Reading the agent's config files (simulation configs, scenarios): one reader, one error style.

use std::path::Path;

use anyhow::{Context, Result, anyhow};

/// Reads a config file of any of the agent's kinds (`what`: "config", "scenario"): TOML for
/// `.toml`, JSON otherwise; errors name `what` and the path. The one reader of such files.
pub fn read_toml_or_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).map_err(|e| anyhow!("{what} {}: {}", path.display(), e.message()))
    } else {
        serde_json::from_str(&text).map_err(|e| anyhow!("{what} {}: {e}", path.display()))
    }
}
