//! The typed nested structures of events: NLU `parse_data` (intent, entities, ranking) and `bot.data`
//! (buttons and the other response parts). Every struct keeps the keys it does not know in `extra` and
//! remembers the key order it was read in (see [`crate::Event`] for the rule). Each struct's fields are
//! declared once, with their keys and codecs, by the crate's `record!` macro.
//!
//! A typed field is `None` when its key is absent *or* `null`; which of the two it was is remembered, so
//! writing reproduces the input. On a value built in code, `None` is written as `null` for keys Rasa always
//! writes and omitted for the others (noted on each field).

use serde_json::{Map, Number, Value};

use crate::pyjson::Writer;
use crate::record::{
    EXTRA, Layout, NonNull, OptList, OptNum, OptObject, OptRecord, OptStr, Raw, Record, is_present,
    record, write_record,
};

/// An intent prediction: `{"name": ..., "confidence": ...}` (also the items of `intent_ranking`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intent {
    /// `name` (always written).
    pub name: Option<String>,
    /// `confidence` (always written); integer or float as read.
    pub confidence: Option<Number>,
    /// `full_retrieval_intent_name` (written only when set).
    pub full_retrieval_intent_name: Option<String>,
    /// Keys this crate does not know, in input order.
    pub extra: Map<String, Value>,
    pub(crate) layout: Layout,
}

impl Intent {
    /// An intent with a name and a confidence.
    pub fn new(name: impl Into<String>, confidence: Option<Number>) -> Self {
        Self {
            name: Some(name.into()),
            confidence,
            ..Self::default()
        }
    }

    /// `{}`: what Rasa stores for "no intent".
    pub fn empty() -> Self {
        Self {
            layout: Layout::AsRead(Box::new([])),
            ..Self::default()
        }
    }
}

record! {
    /// The fields of an [`Intent`].
    Intent, IntentField, blank = Intent::default(),
    expected = ("an intent object or null", "an array of intent objects or null", "an intent object") {
        Name = "name" => name: OptStr, always;
        Confidence = "confidence" => confidence: OptNum, always;
        FullRetrievalIntentName = "full_retrieval_intent_name" => full_retrieval_intent_name: OptStr, if_set;
    }
}

/// An extracted entity. All fields are written only when set (extractors differ in what they emit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entity {
    /// `entity`: the entity type.
    pub entity: Option<String>,
    /// `start`: character offset.
    pub start: Option<Number>,
    /// `end`: character offset.
    pub end: Option<Number>,
    /// `confidence_entity`.
    pub confidence_entity: Option<Number>,
    /// `role`.
    pub role: Option<String>,
    /// `group`.
    pub group: Option<String>,
    /// `value`: any JSON (`Some(Value::Null)` for an explicit `null`).
    pub value: Option<Value>,
    /// `extractor`.
    pub extractor: Option<String>,
    /// Keys this crate does not know (`processors`, `additional_info`, `text`, ...), in input order.
    pub extra: Map<String, Value>,
    pub(crate) layout: Layout,
}

impl Entity {
    /// An entity of type `entity` with `value`.
    pub fn new(entity: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            entity: Some(entity.into()),
            value: Some(value.into()),
            ..Self::default()
        }
    }
}

record! {
    /// The fields of an [`Entity`].
    Entity, EntityField, blank = Entity::default(),
    expected = ("an entity object or null", "an array of entity objects or null", "an entity object") {
        Entity = "entity" => entity: OptStr, if_set;
        Start = "start" => start: OptNum, if_set;
        End = "end" => end: OptNum, if_set;
        ConfidenceEntity = "confidence_entity" => confidence_entity: OptNum, if_set;
        Role = "role" => role: OptStr, if_set;
        Group = "group" => group: OptStr, if_set;
        Value = "value" => value: Raw, if_set;
        Extractor = "extractor" => extractor: OptStr, if_set;
    }
}

/// The NLU result of a user message (`parse_data`).
///
/// [`ParseData::default`] is Rasa's empty result:
/// `{"intent": {}, "entities": [], "text": null, "message_id": null, "metadata": {}}`.
///
/// In an event's Rasa form ([`crate::Event::to_rasa_json`]) it is written as Rasa's `UserUttered` rebuilds
/// it: `intent` (`{}` when absent), `entities` (`[]` when absent), `text`, `message_id` and `metadata` (the
/// event's own when absent), in that order, then the other keys in the order read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseData {
    /// `intent` (always written).
    pub intent: Option<Intent>,
    /// `entities` (always written).
    pub entities: Option<Vec<Entity>>,
    /// `text` (always written).
    pub text: Option<String>,
    /// `message_id` (always written).
    pub message_id: Option<String>,
    /// `metadata` (always written).
    pub metadata: Option<Map<String, Value>>,
    /// `intent_ranking` (written only when set).
    pub intent_ranking: Option<Vec<Intent>>,
    /// Keys this crate does not know (`response_selector`, `text_tokens`, Rasa Pro's `commands`, ...).
    pub extra: Map<String, Value>,
    pub(crate) layout: Layout,
}

impl Default for ParseData {
    fn default() -> Self {
        Self {
            intent: Some(Intent::empty()),
            entities: Some(Vec::new()),
            text: None,
            message_id: None,
            metadata: Some(Map::new()),
            intent_ranking: None,
            extra: Map::new(),
            layout: Layout::Canonical,
        }
    }
}

impl ParseData {
    /// `intent.name`, if any.
    pub fn intent_name(&self) -> Option<&str> {
        self.intent.as_ref()?.name.as_deref()
    }

    /// The `parse_data` as a JSON value (key order as it would be written).
    pub fn to_value(&self) -> Value {
        let mut w = Writer::new(crate::pyjson::Style::Compact);
        write_record(self, &mut w);
        serde_json::from_str(&w.finish()).unwrap_or(Value::Null)
    }
}

/// What Rasa's `UserUttered` puts under the keys a `parse_data` lacks: the event's own `text`, `message_id`
/// and `metadata` (`{}` when it has none).
pub(crate) struct ParseDataDefaults<'a> {
    pub(crate) text: Option<&'a str>,
    pub(crate) message_id: Option<&'a str>,
    pub(crate) metadata: Option<&'a Map<String, Value>>,
}

impl ParseData {
    /// Writes `parse_data` as Rasa's `UserUttered` rebuilds it: `intent` (`{}` when absent), `entities` (`[]`),
    /// `text`, `message_id` and `metadata` (the event's when absent), in that order, then the other keys in
    /// the order read (Python's `dict.update` keeps the first five in place and appends the rest). Without a
    /// `parse_data` at all, the five keys alone (what Rasa builds for a user message without one).
    pub(crate) fn write_rasa(this: Option<&Self>, defaults: ParseDataDefaults<'_>, w: &mut Writer) {
        use ParseDataField as F;
        let given = |f: F| this.filter(|pd| is_present(*pd, f.id()));
        w.begin_object();
        for &field in F::ALL {
            if field == F::IntentRanking {
                continue;
            }
            w.key(field.key());
            if let Some(pd) = given(field) {
                pd.write_value(field.id(), w);
                continue;
            }
            match field {
                F::Intent => {
                    w.begin_object();
                    w.end_object();
                }
                F::Entities => {
                    w.begin_array();
                    w.end_array();
                }
                F::Text => w.opt_str(defaults.text),
                F::MessageId => w.opt_str(defaults.message_id),
                F::Metadata => w.map(defaults.metadata.unwrap_or(&Map::new())),
                F::IntentRanking => w.null(),
            }
        }
        if let Some(pd) = this {
            let mut extras = pd.extra.iter();
            let mut ranking_written = false;
            if let Layout::AsRead(order) = &pd.layout {
                for &id in order.iter() {
                    if id == EXTRA {
                        if let Some((k, v)) = extras.next() {
                            w.key(k);
                            w.value(v);
                        }
                    } else if id == F::IntentRanking.id() {
                        ranking_written = true;
                        pd.write_ranking(w);
                    }
                }
            }
            if !ranking_written && pd.intent_ranking.is_some() {
                pd.write_ranking(w);
            }
            for (k, v) in extras {
                w.key(k);
                w.value(v);
            }
        }
        w.end_object();
    }

    fn write_ranking(&self, w: &mut Writer) {
        let field = ParseDataField::IntentRanking;
        w.key(field.key());
        self.write_value(field.id(), w);
    }
}

record! {
    /// The fields of a [`ParseData`].
    ParseData, ParseDataField,
    blank = ParseData {
        intent: None,
        entities: None,
        text: None,
        message_id: None,
        metadata: None,
        intent_ranking: None,
        extra: Map::new(),
        layout: Layout::Canonical,
    },
    expected = ("an object or null", "an array of objects or null", "an object") {
        Intent = "intent" => intent: OptRecord, always;
        Entities = "entities" => entities: OptList, always;
        Text = "text" => text: OptStr, always;
        MessageId = "message_id" => message_id: OptStr, always;
        Metadata = "metadata" => metadata: OptObject, always;
        IntentRanking = "intent_ranking" => intent_ranking: OptList, if_set;
    }
}

/// A response button: `{"title": ..., "payload": ...}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Button {
    /// `title` (always written).
    pub title: Option<String>,
    /// `payload` (always written).
    pub payload: Option<String>,
    /// Keys this crate does not know, in input order.
    pub extra: Map<String, Value>,
    pub(crate) layout: Layout,
}

impl Button {
    /// A button with a title and a payload.
    pub fn new(title: impl Into<String>, payload: impl Into<String>) -> Self {
        Self {
            title: Some(title.into()),
            payload: Some(payload.into()),
            ..Self::default()
        }
    }
}

record! {
    /// The fields of a [`Button`].
    Button, ButtonField, blank = Button::default(),
    expected = ("a button object or null", "an array of button objects or null", "a button object") {
        Title = "title" => title: OptStr, always;
        Payload = "payload" => payload: OptStr, always;
    }
}

/// The rich parts of a bot response (`bot.data`). Rasa's own responses carry all six keys (null when
/// unused); [`BotData::default`] is `{}` (what Rasa writes for a bot event without data).
#[derive(Debug, Clone, PartialEq)]
pub struct BotData {
    /// `elements`.
    pub elements: Option<Value>,
    /// `quick_replies`.
    pub quick_replies: Option<Value>,
    /// `buttons`.
    pub buttons: Option<Vec<Button>>,
    /// `attachment`.
    pub attachment: Option<Value>,
    /// `image`.
    pub image: Option<Value>,
    /// `custom`.
    pub custom: Option<Value>,
    /// Keys this crate does not know, in input order.
    pub extra: Map<String, Value>,
    pub(crate) layout: Layout,
}

impl Default for BotData {
    fn default() -> Self {
        Self {
            elements: None,
            quick_replies: None,
            buttons: None,
            attachment: None,
            image: None,
            custom: None,
            extra: Map::new(),
            layout: Layout::AsRead(Box::new([])),
        }
    }
}

impl BotData {
    /// All six keys, as Rasa's own responses write them (`null` where unset).
    pub fn rasa_response() -> Self {
        Self {
            layout: Layout::Canonical,
            ..Self::default()
        }
    }
}

record! {
    /// The fields of a [`BotData`].
    BotData, BotDataField, blank = BotData::default(),
    expected = ("an object or null", "an array of objects or null", "an object") {
        Elements = "elements" => elements: NonNull, always;
        QuickReplies = "quick_replies" => quick_replies: NonNull, always;
        Buttons = "buttons" => buttons: OptList, always;
        Attachment = "attachment" => attachment: NonNull, always;
        Image = "image" => image: NonNull, always;
        Custom = "custom" => custom: NonNull, always;
    }
}
