//! `RECARCH_<SECTION>__<KEY>` environment overrides, applied to the parsed TOML before it is
//! deserialised, typed by the lists in `raw.rs`.

use super::raw::{BOOL_KEYS, INTEGER_KEYS, LIST_KEYS, NUMBER_OR_STRING_KEYS};
use super::{ConfigError, ENV_PREFIX, err};

/// Sets every `RECARCH_<SECTION>__<KEY>` variable of `env` in `table`.
pub(super) fn apply_env_overrides(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if parts.len() < 2 {
            // e.g. RECARCH_CLIENT_SECRET, RECARCH_LOG: not config overrides.
            continue;
        }
        if parts.iter().any(String::is_empty) {
            return Err(err(format!("environment variable {name}: empty key segment")));
        }
        let key = parts.join(".");
        let parsed = if INTEGER_KEYS.contains(&key.as_str()) {
            let n: i64 = value.trim().parse().map_err(|_| {
                err(format!(
                    "environment variable {name}: {value:?} is not a whole number (for [{key}])"
                ))
            })?;
            toml::Value::Integer(n)
        } else if NUMBER_OR_STRING_KEYS.contains(&key.as_str()) {
            match value.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(value.clone()),
            }
        } else if BOOL_KEYS.contains(&key.as_str()) {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => {
                    return Err(err(format!(
                        "environment variable {name}: {value:?} is not true or false (for [{key}])"
                    )));
                }
            }
        } else if LIST_KEYS.contains(&key.as_str()) {
            if value.trim_start().starts_with('[') {
                // A TOML array, as in the file: `["a", "b"]`.
                match toml::from_str::<toml::Table>(&format!("v = {value}")) {
                    Ok(mut t) => match t.remove("v") {
                        Some(array @ toml::Value::Array(_)) => array,
                        _ => return Err(err(format!("environment variable {name}: not a list"))),
                    },
                    Err(_) => {
                        return Err(err(format!(
                            "environment variable {name}: not a TOML array of strings, nor a comma-separated list"
                        )));
                    }
                }
            } else {
                let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
                toml::Value::Array(items.map(|s| toml::Value::String(s.to_owned())).collect())
            }
        } else {
            toml::Value::String(value.clone())
        };
        let (leaf, sections) = parts.split_last().unwrap_or((&parts[0], &[]));
        let mut cursor = &mut *table;
        for section in sections {
            let entry = cursor
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cursor = match entry {
                toml::Value::Table(t) => t,
                _ => return Err(err(format!("environment variable {name}: [{section}] is not a table"))),
            };
        }
        cursor.insert(leaf.clone(), parsed);
    }
    Ok(())
}
