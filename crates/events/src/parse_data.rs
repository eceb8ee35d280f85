//! The typed nested structures of events: NLU `parse_data` (intent, entities, ranking) and `bot.data`
//! (buttons and the other response parts). Every struct keeps the keys it does not know in `extra` and
//! remembers the key order it was read in (see [`crate::Event`] for the rule).
//!
//! A typed field is `None` when its key is absent *or* `null`; which of the two it was is remembered, so
//! writing reproduces the input. On a value built in code, `None` is written as `null` for keys Rasa always
//! writes and omitted for the others (noted on each field).

use std::marker::PhantomData;

use serde_json::{Map, Number, Value};

use crate::pyjson::Writer;
use crate::record::{
    Cx, EXTRA, Ids, Layout, Path, ReadRecord, Record, RecordListSeed, RecordSeed, Source, any,
    is_present, leaf, to_opt_number, to_opt_object, to_opt_string, write_opt_map, write_opt_record,
    write_opt_records, write_record,
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

impl Record for Intent {
    fn canonical(&self) -> Ids {
        let ids = Ids::new().with(0).with(1);
        if self.full_retrieval_intent_name.is_some() {
            ids.with(2)
        } else {
            ids
        }
    }
    fn is_set(&self, id: u8) -> bool {
        match id {
            0 => self.name.is_some(),
            1 => self.confidence.is_some(),
            _ => self.full_retrieval_intent_name.is_some(),
        }
    }
    fn key(&self, id: u8) -> &'static str {
        ["name", "confidence", "full_retrieval_intent_name"][id as usize]
    }
    fn write_value(&self, id: u8, w: &mut Writer) {
        match id {
            0 => w.opt_str(self.name.as_deref()),
            1 => w.opt_number(self.confidence.as_ref()),
            _ => w.opt_str(self.full_retrieval_intent_name.as_deref()),
        }
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

impl ReadRecord for Intent {
    fn blank() -> Self {
        Self::default()
    }
    fn field_id(key: &str) -> Option<u8> {
        match key {
            "name" => Some(0),
            "confidence" => Some(1),
            "full_retrieval_intent_name" => Some(2),
            _ => None,
        }
    }
    fn read_field<'de, S: Source<'de>>(
        &mut self,
        id: u8,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error> {
        match id {
            0 => self.name = leaf(src, cx, path.key("name"), to_opt_string)?,
            1 => self.confidence = leaf(src, cx, path.key("confidence"), to_opt_number)?,
            _ => {
                self.full_retrieval_intent_name = leaf(
                    src,
                    cx,
                    path.key("full_retrieval_intent_name"),
                    to_opt_string,
                )?
            }
        }
        Ok(())
    }
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
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

const ENTITY_KEYS: [&str; 8] = [
    "entity",
    "start",
    "end",
    "confidence_entity",
    "role",
    "group",
    "value",
    "extractor",
];

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

impl Record for Entity {
    fn canonical(&self) -> Ids {
        let mut ids = Ids::new();
        for id in 0..8 {
            if self.is_set(id) {
                ids.push(id);
            }
        }
        ids
    }
    fn is_set(&self, id: u8) -> bool {
        match id {
            0 => self.entity.is_some(),
            1 => self.start.is_some(),
            2 => self.end.is_some(),
            3 => self.confidence_entity.is_some(),
            4 => self.role.is_some(),
            5 => self.group.is_some(),
            6 => self.value.is_some(),
            _ => self.extractor.is_some(),
        }
    }
    fn key(&self, id: u8) -> &'static str {
        ENTITY_KEYS[id as usize]
    }
    fn write_value(&self, id: u8, w: &mut Writer) {
        match id {
            0 => w.opt_str(self.entity.as_deref()),
            1 => w.opt_number(self.start.as_ref()),
            2 => w.opt_number(self.end.as_ref()),
            3 => w.opt_number(self.confidence_entity.as_ref()),
            4 => w.opt_str(self.role.as_deref()),
            5 => w.opt_str(self.group.as_deref()),
            6 => w.value(self.value.as_ref().unwrap_or(&Value::Null)),
            _ => w.opt_str(self.extractor.as_deref()),
        }
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

impl ReadRecord for Entity {
    fn blank() -> Self {
        Self::default()
    }
    fn field_id(key: &str) -> Option<u8> {
        ENTITY_KEYS.iter().position(|k| *k == key).map(|i| i as u8)
    }
    fn read_field<'de, S: Source<'de>>(
        &mut self,
        id: u8,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error> {
        let p = path.key(ENTITY_KEYS[id as usize]);
        match id {
            0 => self.entity = leaf(src, cx, p, to_opt_string)?,
            1 => self.start = leaf(src, cx, p, to_opt_number)?,
            2 => self.end = leaf(src, cx, p, to_opt_number)?,
            3 => self.confidence_entity = leaf(src, cx, p, to_opt_number)?,
            4 => self.role = leaf(src, cx, p, to_opt_string)?,
            5 => self.group = leaf(src, cx, p, to_opt_string)?,
            6 => self.value = Some(any(src, cx, p)?),
            _ => self.extractor = leaf(src, cx, p, to_opt_string)?,
        }
        Ok(())
    }
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
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

const PARSE_DATA_KEYS: [&str; 6] = [
    "intent",
    "entities",
    "text",
    "message_id",
    "metadata",
    "intent_ranking",
];

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
        let present = |id: u8| this.is_some_and(|pd| is_present(pd, id));
        w.begin_object();
        for id in 0..5 {
            w.key(PARSE_DATA_KEYS[id as usize]);
            match (this, id) {
                (Some(pd), _) if present(id) => pd.write_value(id, w),
                (_, 0) => {
                    w.begin_object();
                    w.end_object();
                }
                (_, 1) => {
                    w.begin_array();
                    w.end_array();
                }
                (_, 2) => w.opt_str(defaults.text),
                (_, 3) => w.opt_str(defaults.message_id),
                _ => w.map(defaults.metadata.unwrap_or(&Map::new())),
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
                    } else if id == 5 {
                        ranking_written = true;
                        pd.write_field(id, w);
                    }
                }
            }
            if !ranking_written && pd.intent_ranking.is_some() {
                pd.write_field(5, w);
            }
            for (k, v) in extras {
                w.key(k);
                w.value(v);
            }
        }
        w.end_object();
    }

    fn write_field(&self, id: u8, w: &mut Writer) {
        w.key(PARSE_DATA_KEYS[id as usize]);
        self.write_value(id, w);
    }
}

impl Record for ParseData {
    fn canonical(&self) -> Ids {
        let ids = Ids::new().with(0).with(1).with(2).with(3).with(4);
        if self.intent_ranking.is_some() {
            ids.with(5)
        } else {
            ids
        }
    }
    fn is_set(&self, id: u8) -> bool {
        match id {
            0 => self.intent.is_some(),
            1 => self.entities.is_some(),
            2 => self.text.is_some(),
            3 => self.message_id.is_some(),
            4 => self.metadata.is_some(),
            _ => self.intent_ranking.is_some(),
        }
    }
    fn key(&self, id: u8) -> &'static str {
        PARSE_DATA_KEYS[id as usize]
    }
    fn write_value(&self, id: u8, w: &mut Writer) {
        match id {
            0 => write_opt_record(self.intent.as_ref(), w),
            1 => write_opt_records(self.entities.as_deref(), w),
            2 => w.opt_str(self.text.as_deref()),
            3 => w.opt_str(self.message_id.as_deref()),
            4 => write_opt_map(self.metadata.as_ref(), w),
            _ => write_opt_records(self.intent_ranking.as_deref(), w),
        }
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

impl ReadRecord for ParseData {
    fn blank() -> Self {
        Self {
            intent: None,
            entities: None,
            text: None,
            message_id: None,
            metadata: None,
            intent_ranking: None,
            extra: Map::new(),
            layout: Layout::Canonical,
        }
    }
    fn field_id(key: &str) -> Option<u8> {
        PARSE_DATA_KEYS
            .iter()
            .position(|k| *k == key)
            .map(|i| i as u8)
    }
    fn read_field<'de, S: Source<'de>>(
        &mut self,
        id: u8,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error> {
        let p = path.key(PARSE_DATA_KEYS[id as usize]);
        match id {
            0 => self.intent = src.seed(RecordSeed::new(cx, p, "an intent object or null"))?,
            1 => {
                self.entities = src.seed(list_seed(
                    cx,
                    p,
                    "an array of entity objects or null",
                    "an entity object",
                ))?
            }
            2 => self.text = leaf(src, cx, p, to_opt_string)?,
            3 => self.message_id = leaf(src, cx, p, to_opt_string)?,
            4 => self.metadata = leaf(src, cx, p, to_opt_object)?,
            _ => {
                self.intent_ranking = src.seed(list_seed(
                    cx,
                    p,
                    "an array of intent objects or null",
                    "an intent object",
                ))?
            }
        }
        Ok(())
    }
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }
}

pub(crate) fn list_seed<'c, 'p, R>(
    cx: &'c Cx,
    path: Path<'p>,
    expected: &'static str,
    element: &'static str,
) -> RecordListSeed<'c, 'p, R> {
    RecordListSeed {
        cx,
        path,
        expected,
        element,
        marker: PhantomData,
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

impl Record for Button {
    fn canonical(&self) -> Ids {
        Ids::new().with(0).with(1)
    }
    fn is_set(&self, id: u8) -> bool {
        if id == 0 {
            self.title.is_some()
        } else {
            self.payload.is_some()
        }
    }
    fn key(&self, id: u8) -> &'static str {
        if id == 0 { "title" } else { "payload" }
    }
    fn write_value(&self, id: u8, w: &mut Writer) {
        w.opt_str(if id == 0 {
            self.title.as_deref()
        } else {
            self.payload.as_deref()
        });
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

impl ReadRecord for Button {
    fn blank() -> Self {
        Self::default()
    }
    fn field_id(key: &str) -> Option<u8> {
        match key {
            "title" => Some(0),
            "payload" => Some(1),
            _ => None,
        }
    }
    fn read_field<'de, S: Source<'de>>(
        &mut self,
        id: u8,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error> {
        if id == 0 {
            self.title = leaf(src, cx, path.key("title"), to_opt_string)?;
        } else {
            self.payload = leaf(src, cx, path.key("payload"), to_opt_string)?;
        }
        Ok(())
    }
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
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

const BOT_DATA_KEYS: [&str; 6] = [
    "elements",
    "quick_replies",
    "buttons",
    "attachment",
    "image",
    "custom",
];

impl BotData {
    /// All six keys, as Rasa's own responses write them (`null` where unset).
    pub fn rasa_response() -> Self {
        Self {
            layout: Layout::Canonical,
            ..Self::default()
        }
    }
    fn slot(&self, id: u8) -> Option<&Value> {
        match id {
            0 => self.elements.as_ref(),
            1 => self.quick_replies.as_ref(),
            3 => self.attachment.as_ref(),
            4 => self.image.as_ref(),
            _ => self.custom.as_ref(),
        }
    }
}

fn non_null(v: Value) -> Option<Value> {
    if v.is_null() { None } else { Some(v) }
}

impl Record for BotData {
    fn canonical(&self) -> Ids {
        Ids::new().with(0).with(1).with(2).with(3).with(4).with(5)
    }
    fn is_set(&self, id: u8) -> bool {
        if id == 2 {
            self.buttons.is_some()
        } else {
            self.slot(id).is_some()
        }
    }
    fn key(&self, id: u8) -> &'static str {
        BOT_DATA_KEYS[id as usize]
    }
    fn write_value(&self, id: u8, w: &mut Writer) {
        if id == 2 {
            write_opt_records(self.buttons.as_deref(), w);
        } else {
            w.value(self.slot(id).unwrap_or(&Value::Null));
        }
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

impl ReadRecord for BotData {
    fn blank() -> Self {
        Self::default()
    }
    fn field_id(key: &str) -> Option<u8> {
        BOT_DATA_KEYS
            .iter()
            .position(|k| *k == key)
            .map(|i| i as u8)
    }
    fn read_field<'de, S: Source<'de>>(
        &mut self,
        id: u8,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error> {
        match id {
            0 => self.elements = non_null(any(src, cx, path.key("elements"))?),
            1 => self.quick_replies = non_null(any(src, cx, path.key("quick_replies"))?),
            2 => {
                self.buttons = src.seed(list_seed(
                    cx,
                    path.key("buttons"),
                    "an array of button objects or null",
                    "a button object",
                ))?
            }
            3 => self.attachment = non_null(any(src, cx, path.key("attachment"))?),
            4 => self.image = non_null(any(src, cx, path.key("image"))?),
            _ => self.custom = non_null(any(src, cx, path.key("custom"))?),
        }
        Ok(())
    }
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }
}
