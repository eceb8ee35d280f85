//! Reading a marker configuration (YAML), as Rasa 3.6.21's `Marker.from_path` / `Marker.from_config` do,
//! with errors that say where.

use std::fmt;

use serde_norway::Value as Yaml;

use crate::error::{Error, Result};

/// How the negated tags (`not_action`, `not_intent`, `slot_was_not_set`, `never`, `at_least_one_not`) are
/// read.
///
/// Rasa 3.6.21's `Marker.from_config` replaces a negated tag by its positive tag *before* it builds the
/// marker, so the negation is lost: `never: [...]` evaluates as `at_least_once: [...]` and `not_intent: x`
/// as `intent: x` (only the `not` operator negates). The compat suite confirms this on Rasa's own code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TagNegation {
    /// Read negated tags as Rasa 3.6.21 does (the negation is dropped): same results as `rasa evaluate
    /// markers`.
    #[default]
    AsRasa3_6,
    /// Honour the negation, as Rasa's documentation describes the tags.
    Honoured,
}

/// A condition on a single event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `action: NAME`: an `action` event of that action.
    Action(String),
    /// `intent: NAME`: a `user` event whose intent or full retrieval intent is NAME.
    Intent(String),
    /// `slot_was_set: NAME`: the slot was last set (in this session) to a value other than `null`.
    SlotWasSet(String),
}

/// An operator over sub-markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `and`: all sub-markers apply at this event.
    And,
    /// `or`: at least one applies.
    Or,
    /// `not` (exactly one sub-marker): it does not apply.
    Not,
    /// `seq`: the sub-markers applied one after the other, the last one at this event.
    Seq,
    /// `at_least_once` (exactly one sub-marker): it applied at this event or before, in this session.
    AtLeastOnce,
}

/// One node of a marker: a condition or an operator, possibly negated.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Applies exactly when the non-negated node does not.
    pub negated: bool,
    /// What the node checks.
    pub kind: NodeKind,
}

/// A condition or an operator with its sub-markers.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A condition.
    Condition(Condition),
    /// An operator and its sub-markers, in order.
    Operator(Operator, Vec<Node>),
}

/// One named marker of a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// The name: the key in the configuration.
    pub name: String,
    /// The optional `description`.
    pub description: Option<String>,
    /// The condition or operator.
    pub node: Node,
}

impl Marker {
    /// The name written to the CSV: the name, or Rasa's text form of the marker when the name is empty.
    pub fn csv_name(&self) -> String {
        if self.name.is_empty() {
            self.node.to_string()
        } else {
            self.name.clone()
        }
    }
}

/// The markers of one configuration file, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkerConfig {
    /// The markers.
    pub markers: Vec<Marker>,
}

const OPERATORS: [(&str, Operator, Option<&str>); 5] = [
    ("and", Operator::And, Some("at_least_one_not")),
    ("or", Operator::Or, None),
    ("not", Operator::Not, None),
    ("seq", Operator::Seq, None),
    ("at_least_once", Operator::AtLeastOnce, Some("never")),
];
const CONDITIONS: [(&str, &str); 3] = [
    ("action", "not_action"),
    ("intent", "not_intent"),
    ("slot_was_set", "slot_was_not_set"),
];

fn all_tags() -> Vec<&'static str> {
    let mut tags: Vec<&str> = OPERATORS
        .iter()
        .flat_map(|(tag, _, negated)| std::iter::once(*tag).chain(*negated))
        .chain(
            CONDITIONS
                .iter()
                .flat_map(|(tag, negated)| [*tag, *negated]),
        )
        .collect();
    tags.sort_unstable();
    tags
}

impl MarkerConfig {
    /// Reads a configuration: a YAML mapping from marker name to marker (Rasa's format).
    ///
    /// Differences from Rasa, all of them refusals where Rasa silently accepts: a marker mapping with two
    /// keys neither of which is `description` (Rasa ignores the second key), a marker name that is not a
    /// string.
    pub fn from_yaml(text: &str, negation: TagNegation) -> Result<Self> {
        let document: Yaml = serde_norway::from_str(text)
            .map_err(|e| Error::MarkerConfig(format!("not valid YAML: {e}")))?;
        let Yaml::Mapping(mapping) = document else {
            return Err(Error::MarkerConfig(format!(
                "expected a mapping from marker names to markers, found {}",
                describe(&document)
            )));
        };
        if mapping.is_empty() {
            return Err(Error::MarkerConfig(
                "the configuration defines no marker".into(),
            ));
        }
        let tags = all_tags();
        let mut markers = Vec::with_capacity(mapping.len());
        for (name, config) in mapping {
            let Yaml::String(name) = name else {
                return Err(Error::MarkerConfig(format!(
                    "marker names must be strings, found {}",
                    describe(&name)
                )));
            };
            if tags.contains(&name.as_str()) {
                return Err(Error::MarkerConfig(format!(
                    "`{name}` is a condition or operator, not a marker name: the top level maps names of \
                     your choice to markers (reserved: {})",
                    tags.join(", ")
                )));
            }
            let (node, description) = parse_node(&config, negation, &name)?;
            markers.push(Marker {
                name,
                description,
                node,
            });
        }
        Ok(Self { markers })
    }
}

/// Parses one marker mapping; `at` names where it is, for errors.
fn parse_node(config: &Yaml, negation: TagNegation, at: &str) -> Result<(Node, Option<String>)> {
    let error = |message: String| Error::MarkerConfig(format!("marker `{at}`: {message}"));
    let Yaml::Mapping(mapping) = config else {
        return Err(error(format!(
            "expected a mapping with one condition or operator (and optionally `description`), found {}",
            describe(config)
        )));
    };
    let mut description = None;
    let mut entries = Vec::new();
    for (key, value) in mapping {
        match key {
            Yaml::String(key) if key == "description" => description = Some(value),
            Yaml::String(key) => entries.push((key.as_str(), value)),
            other => {
                return Err(error(format!(
                    "keys must be strings, found {}",
                    describe(other)
                )));
            }
        }
    }
    let [(tag, value)] = entries[..] else {
        return Err(error(format!(
            "expected exactly one condition or operator, found {}",
            if entries.is_empty() {
                "none".to_owned()
            } else {
                entries
                    .iter()
                    .map(|(k, _)| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    };
    let description = match description {
        None => None,
        Some(Yaml::String(text)) => Some(text.clone()),
        Some(other) => {
            return Err(error(format!(
                "`description` must be a text, found {}",
                describe(other)
            )));
        }
    };
    let honour = negation == TagNegation::Honoured;
    if let Some((positive, operator, negated_tag)) = OPERATORS
        .iter()
        .find(|(tag_, _, negated)| *tag_ == tag || *negated == Some(tag))
    {
        let negated = honour && *negated_tag == Some(tag);
        let Yaml::Sequence(items) = value else {
            return Err(error(format!(
                "`{tag}` takes a list of markers, found {}",
                describe(value)
            )));
        };
        let expected_one = matches!(operator, Operator::Not | Operator::AtLeastOnce);
        if expected_one && items.len() != 1 {
            return Err(error(format!(
                "`{tag}` takes exactly one marker, found {}",
                items.len()
            )));
        }
        if items.is_empty() {
            return Err(error(format!(
                "`{tag}` takes at least one marker, found none"
            )));
        }
        let children = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                parse_node(item, negation, &format!("{at} > {positive}[{i}]")).map(|(node, _)| node)
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((
            Node {
                negated,
                kind: NodeKind::Operator(*operator, children),
            },
            description,
        ));
    }
    if let Some((positive, negated_tag)) = CONDITIONS.iter().find(|(p, n)| *p == tag || *n == tag) {
        let Yaml::String(text) = value else {
            return Err(error(format!(
                "`{tag}` takes a name (a text), found {}",
                describe(value)
            )));
        };
        let condition = match *positive {
            "action" => Condition::Action(text.clone()),
            "intent" => Condition::Intent(text.clone()),
            _ => Condition::SlotWasSet(text.clone()),
        };
        return Ok((
            Node {
                negated: honour && *negated_tag == tag,
                kind: NodeKind::Condition(condition),
            },
            description,
        ));
    }
    Err(error(format!(
        "unknown condition or operator `{tag}`; known: {}",
        all_tags().join(", ")
    )))
}

fn describe(value: &Yaml) -> String {
    match value {
        Yaml::Null => "nothing".into(),
        Yaml::Bool(b) => format!("the boolean {b}"),
        Yaml::Number(n) => format!("the number {n}"),
        Yaml::String(s) => format!("the text {s:?}"),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "a mapping".into(),
        Yaml::Tagged(_) => "a tagged value".into(),
    }
}

/// Rasa's text form of a marker (its `repr`): `(intent: greet)`, `and((action: a), (intent: b))`,
/// `seq((intent: a) -> (action: b))`.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKind::Condition(condition) => {
                let (tag, text) = match condition {
                    Condition::Action(t) => (["action", "not_action"], t),
                    Condition::Intent(t) => (["intent", "not_intent"], t),
                    Condition::SlotWasSet(t) => (["slot_was_set", "slot_was_not_set"], t),
                };
                write!(f, "({}: {text})", tag[usize::from(self.negated)])
            }
            NodeKind::Operator(operator, children) => {
                let (tag, _, negated_tag) = OPERATORS
                    .iter()
                    .find(|(_, op, _)| op == operator)
                    // tidy: allow(unwrap) every operator has a tag.
                    .expect("every operator has a tag");
                match (self.negated, negated_tag) {
                    (false, _) => write!(f, "{tag}(")?,
                    (true, Some(negated)) => write!(f, "{negated}(")?,
                    (true, None) => write!(f, "not({tag})(")?,
                }
                let separator = if *operator == Operator::Seq {
                    " -> "
                } else {
                    ", "
                };
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(separator)?;
                    }
                    write!(f, "{child}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(yaml: &str) -> String {
        MarkerConfig::from_yaml(yaml, TagNegation::Honoured)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_rasa_documentation_example() {
        let config = MarkerConfig::from_yaml(
            "marker_name_provided:\n  slot_was_set: name\n\
             marker_mood_expressed:\n  description: the user said how they feel\n  or:\n    - intent: mood_unhappy\n    - intent: mood_great\n\
             marker_seq:\n  seq:\n    - intent: greet\n    - never:\n        - action: utter_goodbye\n",
            TagNegation::Honoured,
        )
        .unwrap();
        let names: Vec<_> = config.markers.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "marker_name_provided",
                "marker_mood_expressed",
                "marker_seq"
            ]
        );
        assert_eq!(
            config.markers[1].description.as_deref(),
            Some("the user said how they feel")
        );
        assert_eq!(
            config.markers[2].node.to_string(),
            "seq((intent: greet) -> never((action: utter_goodbye)))"
        );
        let as_rasa = MarkerConfig::from_yaml(
            "m:\n  never:\n    - not_action: a\n",
            TagNegation::AsRasa3_6,
        )
        .unwrap();
        assert_eq!(
            as_rasa.markers[0].node.to_string(),
            "at_least_once((action: a))"
        );
    }

    #[test]
    fn errors_say_where_and_why() {
        let cases = [
            (
                "- a\n",
                "expected a mapping from marker names to markers, found a list",
            ),
            ("{}\n", "defines no marker"),
            (
                "intent: greet\n",
                "`intent` is a condition or operator, not a marker name",
            ),
            ("m: greet\n", "marker `m`: expected a mapping"),
            (
                "m:\n  intnt: greet\n",
                "marker `m`: unknown condition or operator `intnt`",
            ),
            (
                "m:\n  intent: [a]\n",
                "marker `m`: `intent` takes a name (a text), found a list",
            ),
            (
                "m:\n  intent: a\n  action: b\n",
                "expected exactly one condition or operator, found `intent`, `action`",
            ),
            (
                "m:\n  description: only\n",
                "expected exactly one condition or operator, found none",
            ),
            (
                "m:\n  not:\n    - intent: a\n    - intent: b\n",
                "`not` takes exactly one marker, found 2",
            ),
            (
                "m:\n  and: []\n",
                "`and` takes at least one marker, found none",
            ),
            (
                "m:\n  seq:\n    - intent: a\n    - slot_was_set: 3\n",
                "marker `m > seq[1]`: `slot_was_set` takes a name (a text), found the number 3",
            ),
            ("m: [\n", "not valid YAML"),
            ("m:\n  intent: a\nm:\n  intent: b\n", "not valid YAML"),
        ];
        for (yaml, expected) in cases {
            let error = error_of(yaml);
            assert!(error.contains(expected), "{yaml:?}: {error}");
        }
    }
}
