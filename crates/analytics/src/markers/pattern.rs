//! Markers as stored patterns (Rasa Pro's `rasa_pattern`): one marker per pattern, its configuration as
//! JSON text `{"<name>": <marker>}`, and a whole set of patterns read back as one [`MarkerConfig`].

use serde_json::{Map, Value};

use super::config::{MarkerConfig, TagNegation};
use crate::error::{Error, Result};

/// One marker of a configuration file, as a pattern to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// `id`: UUID v5 of the name (uploading the same name again updates the same row).
    pub id: String,
    /// `name`: the marker's name.
    pub name: String,
    /// `description`: the marker's `description`, if any.
    pub description: Option<String>,
    /// `config`: `{"<name>": <marker>}` as compact JSON (valid YAML too).
    pub config: String,
}

/// Splits a marker configuration (Rasa's YAML, checked with `negation`) into one [`Pattern`] per marker,
/// in the file's order.
pub fn patterns_of(yaml: &str, negation: TagNegation) -> Result<Vec<Pattern>> {
    let config = MarkerConfig::from_yaml(yaml, negation)?;
    let document: Value = serde_norway::from_str(yaml)
        .map_err(|e| Error::MarkerConfig(format!("not representable as JSON: {e}")))?;
    let Value::Object(markers) = document else {
        return Err(Error::MarkerConfig("expected a mapping of markers".into()));
    };
    let mut patterns = Vec::with_capacity(markers.len());
    for ((name, marker), parsed) in markers.into_iter().zip(&config.markers) {
        let mut one = Map::new();
        one.insert(name.clone(), marker);
        patterns.push(Pattern {
            id: crate::ids::uuid_of(&["rasa_pattern", &name]),
            name,
            description: parsed.description.clone(),
            config: Value::Object(one).to_string(),
        });
    }
    Ok(patterns)
}

/// The configuration of a set of stored patterns (`config` texts), in the given order: marker `i` of the
/// result is pattern `i`.
pub fn config_of_patterns<'a>(
    configs: impl IntoIterator<Item = &'a str>,
    negation: TagNegation,
) -> Result<MarkerConfig> {
    let mut all = Map::new();
    for text in configs {
        let Value::Object(one) = serde_json::from_str::<Value>(text)
            .map_err(|e| Error::MarkerConfig(format!("a stored pattern is not JSON: {e}")))?
        else {
            return Err(Error::MarkerConfig(
                "a stored pattern is not a mapping".into(),
            ));
        };
        all.extend(one);
    }
    MarkerConfig::from_yaml(&Value::Object(all).to_string(), negation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_round_trip_to_the_same_markers() {
        let yaml = "greeted:\n  description: said hi\n  intent: greet\nbye_after_hi:\n  seq:\n    - intent: greet\n    - action: utter_goodbye\n";
        let patterns = patterns_of(yaml, TagNegation::AsRasa3_6).unwrap();
        assert_eq!(patterns.len(), 2);
        assert_eq!(patterns[0].name, "greeted");
        assert_eq!(patterns[0].description.as_deref(), Some("said hi"));
        let back = config_of_patterns(
            patterns.iter().map(|p| p.config.as_str()),
            TagNegation::AsRasa3_6,
        )
        .unwrap();
        assert_eq!(
            back,
            MarkerConfig::from_yaml(yaml, TagNegation::AsRasa3_6).unwrap()
        );
    }
}
