//! Rasa's domain file, read for what the tracker API needs from it: the slots a tracker has and their initial
//! values (Rasa's server takes them from its model's domain).
//!
//! Rasa 3.6's rules (`rasa/shared/core/domain.py`): the slots in the order the domain lists them, each with
//! its `initial_value` as written (no conversion, `null` when absent); then `requested_slot` when the domain
//! has forms and does not declare it; then `knowledge_base_listed_objects`, `knowledge_base_last_object` and
//! `knowledge_base_last_object_type` when `action_query_knowledge_base` is one of its actions; then
//! `session_started_metadata`, always. A directory is read as Rasa reads one: every `.yml`/`.yaml` file in it
//! (sorted by path), merged.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{Error, Result};

const REQUESTED_SLOT: &str = "requested_slot";
const SESSION_STARTED_METADATA: &str = "session_started_metadata";
const KNOWLEDGE_BASE_ACTION: &str = "action_query_knowledge_base";
const KNOWLEDGE_BASE_SLOTS: [&str; 3] = [
    "knowledge_base_listed_objects",
    "knowledge_base_last_object",
    "knowledge_base_last_object_type",
];

/// The part of a Rasa domain the server uses: its slots, in order, with their initial values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Domain {
    initial_slots: Map<String, Value>,
}

impl Domain {
    /// Reads a domain file, or every YAML file of a domain directory.
    pub fn load(path: &Path) -> Result<Self> {
        let files = if path.is_dir() {
            yaml_files(path)?
        } else {
            vec![path.to_path_buf()]
        };
        let mut parts = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Error::Config(format!("cannot read the domain {}: {e}", file.display()))
            })?;
            parts.push(
                parse(&text)
                    .map_err(|e| Error::Config(format!("domain {}: {e}", file.display())))?,
            );
        }
        Ok(Self::merged(&parts))
    }

    /// Reads a domain from its YAML text.
    #[cfg(test)]
    fn from_yaml(text: &str) -> Result<Self> {
        let part = parse(text).map_err(|e| Error::Config(format!("domain: {e}")))?;
        Ok(Self::merged(&[part]))
    }

    /// The slots and their initial values, in Rasa's order (see the module doc).
    pub fn initial_slots(&self) -> &Map<String, Value> {
        &self.initial_slots
    }

    fn merged(parts: &[Part]) -> Self {
        let mut slots = Map::new();
        let mut has_forms = false;
        let mut has_knowledge_base = false;
        for part in parts {
            for (name, initial) in &part.slots {
                slots.entry(name.clone()).or_insert_with(|| initial.clone());
            }
            has_forms |= part.has_forms;
            has_knowledge_base |= part.actions.iter().any(|a| a == KNOWLEDGE_BASE_ACTION);
        }
        if has_forms {
            slots.entry(REQUESTED_SLOT).or_insert(Value::Null);
        }
        if has_knowledge_base {
            for name in KNOWLEDGE_BASE_SLOTS {
                slots.entry(name).or_insert(Value::Null);
            }
        }
        // Rasa appends it unconditionally (a declared one would be a duplicate Rasa refuses to load).
        slots.insert(SESSION_STARTED_METADATA.to_owned(), Value::Null);
        Self {
            initial_slots: slots,
        }
    }
}

/// What one domain file contributes.
struct Part {
    slots: Vec<(String, Value)>,
    has_forms: bool,
    actions: Vec<String>,
}

fn parse(text: &str) -> std::result::Result<Part, String> {
    let root: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let root = match root {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err("not a mapping".to_owned()),
    };
    let slots = match root.get("slots") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(slots)) => slots
            .iter()
            .map(|(name, spec)| {
                let initial = spec.get("initial_value").cloned().unwrap_or(Value::Null);
                (name.clone(), initial)
            })
            .collect(),
        Some(_) => return Err("`slots` is not a mapping".to_owned()),
    };
    let has_forms = matches!(root.get("forms"), Some(Value::Object(forms)) if !forms.is_empty());
    let actions = match root.get("actions") {
        Some(Value::Array(actions)) => actions
            .iter()
            .filter_map(|action| match action {
                Value::String(name) => Some(name.clone()),
                Value::Object(map) => map.keys().next().cloned(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Part {
        slots,
        has_forms,
        actions,
    })
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Error::Config(format!(
                "cannot read the domain directory {}: {e}",
                dir.display()
            ))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slots_in_rasas_order_with_the_slots_rasa_adds() {
        let domain = Domain::from_yaml(
            "slots:\n  cuisine:\n    type: text\n    initial_value: thai\n  people:\n    type: float\n    \
             initial_value: 2\n  seen:\n    type: bool\nforms:\n  booking:\n    required_slots: [people]\n\
             actions:\n  - action_query_knowledge_base\n  - action_x: {send_domain: true}\n",
        )
        .unwrap();
        assert_eq!(
            Value::Object(domain.initial_slots().clone()),
            json!({"cuisine": "thai", "people": 2, "seen": null, "requested_slot": null,
                   "knowledge_base_listed_objects": null, "knowledge_base_last_object": null,
                   "knowledge_base_last_object_type": null, "session_started_metadata": null})
        );
        let keys: Vec<&String> = domain.initial_slots().keys().collect();
        assert_eq!(keys[..3], ["cuisine", "people", "seen"]);
    }

    #[test]
    fn a_domain_without_slots_still_has_the_session_metadata_slot() {
        let domain = Domain::from_yaml("version: \"3.1\"\nintents: [greet]\n").unwrap();
        assert_eq!(
            Value::Object(domain.initial_slots().clone()),
            json!({"session_started_metadata": null})
        );
    }

    #[test]
    fn a_file_that_is_not_a_domain_is_a_configuration_error() {
        let error = Domain::from_yaml("- a list\n").unwrap_err();
        assert!(error.is_config(), "{error}");
        assert!(Domain::from_yaml("slots: [a]\n").unwrap_err().is_config());
    }
}
