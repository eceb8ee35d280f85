//! The machinery that makes typed records lossless: key order, unknown keys, and reading straight from
//! serde (bytes or a `Value`) with errors that say where.
//!
//! Every typed JSON object (an event, `parse_data`, an intent, an entity, `bot.data`, a button) is a
//! *record*: typed fields with small numeric ids, a map of the keys it does not know (`extra`, in input
//! order), and a [`Layout`]:
//! - `Layout::Canonical`: write Rasa's key order: the record's canonical fields, then the extra keys.
//!   Reading stores this whenever the input already was in that order, so Rasa-shaped input costs nothing.
//! - `Layout::AsRead(ids)`: the keys as they were read, in order (`EXTRA` marks "the next unknown key").
//!   Writing follows it exactly, then appends known fields set since (non-default values only) in
//!   canonical order, then unknown keys added since. This is what makes any input round-trip to the same
//!   value with the same key order, including which keys were absent and which were `null`.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::pyjson::{Style, Writer, check_number};

/// Marks an unknown key in a layout.
pub(crate) const EXTRA: u8 = u8::MAX;

/// How a record's keys are ordered when written (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Layout {
    /// Rasa's order for the record's current values.
    #[default]
    Canonical,
    /// The keys as read.
    AsRead(Box<[u8]>),
}

impl Layout {
    /// The layout to keep after reading `order`: canonical when the input was already canonical (extra keys
    /// only at the end).
    pub(crate) fn from_read(order: Vec<u8>, canonical: &[u8]) -> Self {
        if order.len() >= canonical.len()
            && order[..canonical.len()] == *canonical
            && order[canonical.len()..].iter().all(|&id| id == EXTRA)
        {
            Layout::Canonical
        } else {
            Layout::AsRead(order.into_boxed_slice())
        }
    }
}

/// The most fields a record may declare: an [`Ids`] holds them all, and every id fits a `u64` bit set.
/// [`record!`] checks it at compile time for every record it declares.
pub(crate) const MAX_FIELDS: usize = 24;

/// A short list of field ids (no allocation). A record's canonical list holds each of its fields at most
/// once, and no record has more than [`MAX_FIELDS`], so it never overflows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    ids: [u8; MAX_FIELDS],
    len: usize,
}

impl Ids {
    pub(crate) fn new() -> Self {
        Self {
            ids: [0; MAX_FIELDS],
            len: 0,
        }
    }
    pub(crate) fn push(&mut self, id: u8) {
        debug_assert!(
            self.len < MAX_FIELDS,
            "a record has more than MAX_FIELDS fields"
        );
        if let Some(slot) = self.ids.get_mut(self.len) {
            *slot = id;
            self.len += 1;
        }
    }
    pub(crate) fn with(mut self, id: u8) -> Self {
        self.push(id);
        self
    }
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.ids[..self.len]
    }
}

/// A typed JSON object (see the module doc).
pub(crate) trait Record {
    /// The field ids Rasa writes for the current values, in Rasa's order.
    fn canonical(&self) -> Ids;
    /// Whether field `id` differs from what reading would give if the key were absent.
    fn is_set(&self, id: u8) -> bool;
    /// The key of field `id`.
    fn key(&self, id: u8) -> &'static str;
    /// Writes the value of field `id`.
    fn write_value(&self, id: u8, w: &mut Writer);
    /// The unknown keys, in input order.
    fn extra(&self) -> &Map<String, Value>;
    /// The layout.
    fn layout(&self) -> &Layout;
    /// Whether Rasa rebuilds this record when it reads it, so that its Rasa form is Rasa's key order and
    /// defaults whatever the input's (events of the types Rasa knows); records Rasa keeps as read (nested
    /// dictionaries, unknown event types) answer `false`, their Rasa form is their layout.
    fn rasa_rebuilds(&self) -> bool {
        false
    }
}

/// Whether field `id` of `record` is part of the record: read from the input, set in code since, or (for a
/// record built in code) one of the keys Rasa always writes.
pub(crate) fn is_present<R: Record + ?Sized>(record: &R, id: u8) -> bool {
    match record.layout() {
        Layout::Canonical => record.canonical().as_slice().contains(&id),
        Layout::AsRead(order) => order.contains(&id) || record.is_set(id),
    }
}

/// Writes a record as a JSON object.
pub(crate) fn write_record<R: Record + ?Sized>(record: &R, w: &mut Writer) {
    write_record_with(record, w, Added::None);
}

/// A key-value pair added to a record when it is written (the envelope's `sender_id`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Added<'a> {
    /// Nothing added.
    None,
    /// Written before the record's keys (a broker body).
    First(&'a str, &'a str),
    /// Written after the record's keys (a `rasa export` body).
    Last(&'a str, &'a str),
}

/// Writes a record as a JSON object, with `added` before or after its keys. In Rasa style a record that
/// Rasa rebuilds ([`Record::rasa_rebuilds`]) is written in Rasa's order whatever its layout, its unknown
/// keys after Rasa's (one named like a key Rasa writes, possible only for legacy events, is left out).
pub(crate) fn write_record_with<R: Record + ?Sized>(record: &R, w: &mut Writer, added: Added<'_>) {
    w.begin_object();
    if let Added::First(key, value) = added {
        w.key(key);
        w.str(value);
    }
    let rebuilt = w.style() == Style::Rasa && record.rasa_rebuilds();
    let layout = if rebuilt {
        &Layout::Canonical
    } else {
        record.layout()
    };
    match layout {
        Layout::Canonical => {
            let canonical = record.canonical();
            for &id in canonical.as_slice() {
                w.key(record.key(id));
                record.write_value(id, w);
            }
            for (k, v) in record.extra() {
                if rebuilt && canonical.as_slice().iter().any(|&id| record.key(id) == k) {
                    continue;
                }
                w.key(k);
                w.value(v);
            }
        }
        Layout::AsRead(order) => {
            let mut written = 0u64;
            let mut extras = record.extra().iter();
            for &id in order.iter() {
                if id == EXTRA {
                    if let Some((k, v)) = extras.next() {
                        w.key(k);
                        w.value(v);
                    }
                } else {
                    written |= 1 << id;
                    w.key(record.key(id));
                    record.write_value(id, w);
                }
            }
            for &id in record.canonical().as_slice() {
                if written & (1 << id) == 0 && record.is_set(id) {
                    w.key(record.key(id));
                    record.write_value(id, w);
                }
            }
            for (k, v) in extras {
                w.key(k);
                w.value(v);
            }
        }
    }
    if let Added::Last(key, value) = added {
        w.key(key);
        w.str(value);
    }
    w.end_object();
}

/// Where we are in the input, for error messages. Built on the stack, rendered only on error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }
    pub(crate) fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Carries the first semantic error out of serde: serde errors cannot hold our typed [`Error`], so the
/// reader parks it here and aborts with a marker error; the entry point swaps it back in.
#[derive(Default)]
pub(crate) struct Cx {
    error: Cell<Option<Error>>,
}

impl Cx {
    pub(crate) fn fail<E: de::Error>(&self, error: Error) -> E {
        self.error.set(Some(error));
        E::custom("semantic error")
    }
    pub(crate) fn into_error(self, e: &serde_json::Error) -> Error {
        self.error
            .into_inner()
            .unwrap_or_else(|| Error::from_json(e))
    }
}

/// Where a field's value comes from: the map being read (bytes) or a value buffered earlier.
pub(crate) trait Source<'de> {
    type Error: de::Error;
    fn seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Self::Error>;
    fn value(self) -> Result<Value, Self::Error>
    where
        Self: Sized,
    {
        self.seed(PhantomData::<Value>)
    }
}

pub(crate) struct FromMap<'m, A>(pub(crate) &'m mut A);

impl<'de, A: MapAccess<'de>> Source<'de> for FromMap<'_, A> {
    type Error = A::Error;
    fn seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

pub(crate) struct FromValue<E>(pub(crate) Value, pub(crate) PhantomData<E>);

impl<'de, E: de::Error> Source<'de> for FromValue<E> {
    type Error = E;
    fn seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, E> {
        seed.deserialize(self.0).map_err(E::custom)
    }
}

/// Reads a key without allocating when the input allows it.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The JSON type of a value, for error messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(path: Path<'_>, expected: &'static str, found: &Value) -> Error {
    Error::WrongType {
        path: path.to_string(),
        expected,
        found: kind_of(found),
    }
}

pub(crate) fn to_string(v: Value, path: Path<'_>) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong(path, "a string", &other)),
    }
}

pub(crate) fn to_opt_string(v: Value, path: Path<'_>) -> Result<Option<String>, Error> {
    match v {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        other => Err(wrong(path, "a string or null", &other)),
    }
}

pub(crate) fn to_number(v: Value, path: Path<'_>) -> Result<Number, Error> {
    match v {
        Value::Number(n) => check_number(&n, path).map(|()| n),
        other => Err(wrong(path, "a number", &other)),
    }
}

pub(crate) fn to_opt_number(v: Value, path: Path<'_>) -> Result<Option<Number>, Error> {
    match v {
        Value::Number(n) => check_number(&n, path).map(|()| Some(n)),
        Value::Null => Ok(None),
        other => Err(wrong(path, "a number or null", &other)),
    }
}

/// Any JSON value, whose numbers must all be ones Python's `json.dumps` writes back as JSON.
pub(crate) fn to_any(v: Value, path: Path<'_>) -> Result<Value, Error> {
    check_numbers(&v, path).map(|()| v)
}

/// Checks every number inside `value` (see [`check_number`]); the error names the first bad one's path.
fn check_numbers(value: &Value, path: Path<'_>) -> Result<(), Error> {
    match value {
        Value::Number(n) => check_number(n, path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_numbers(item, path.index(i))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_numbers(v, path.key(k))),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Reads any JSON value (see [`to_any`]).
pub(crate) fn any<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<Value, S::Error> {
    leaf(src, cx, path, to_any)
}

pub(crate) fn to_bool(v: Value, path: Path<'_>) -> Result<bool, Error> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(wrong(path, "a boolean", &other)),
    }
}

pub(crate) fn to_opt_object(v: Value, path: Path<'_>) -> Result<Option<Map<String, Value>>, Error> {
    match v {
        Value::Object(m) => {
            for (k, v) in &m {
                check_numbers(v, path.key(k))?;
            }
            Ok(Some(m))
        }
        Value::Null => Ok(None),
        other => Err(wrong(path, "an object or null", &other)),
    }
}

/// A record that can be read from a JSON object.
pub(crate) trait ReadRecord: Record + Sized {
    /// What a field holding this record or `null` must be, for errors (`an intent object or null`).
    const OBJECT_OR_NULL: &'static str;
    /// What a field holding a list of these or `null` must be (`an array of intent objects or null`).
    const LIST_OR_NULL: &'static str;
    /// What an element of such a list must be (`an intent object`).
    const ELEMENT: &'static str;
    /// An empty record to fill.
    fn blank() -> Self;
    /// The id of a known key.
    fn field_id(key: &str) -> Option<u8>;
    /// Reads field `id` from `src`; semantic problems go through `cx.fail`.
    fn read_field<'de, S: Source<'de>>(
        &mut self,
        id: u8,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error>;
    fn extra_mut(&mut self) -> &mut Map<String, Value>;
    fn set_layout(&mut self, layout: Layout);
}

/// Reads every entry of a map into a record, recording the key order.
pub(crate) fn read_record_map<'de, A: MapAccess<'de>, R: ReadRecord>(
    mut map: A,
    cx: &Cx,
    path: Path<'_>,
) -> Result<R, A::Error> {
    let mut record = R::blank();
    let mut order = Vec::with_capacity(8);
    let mut seen = 0u64;
    while let Some(key) = map.next_key_seed(KeySeed)? {
        match R::field_id(&key) {
            Some(id) => {
                record.read_field(id, FromMap(&mut map), cx, path)?;
                if seen & (1 << id) == 0 {
                    seen |= 1 << id;
                    order.push(id);
                }
            }
            None => {
                let value = any(FromMap(&mut map), cx, path.key(&key))?;
                if record.extra_mut().insert(key.into_owned(), value).is_none() {
                    order.push(EXTRA);
                }
            }
        }
    }
    let layout = Layout::from_read(order, record.canonical().as_slice());
    record.set_layout(layout);
    Ok(record)
}

/// Reads a record (`object: true`) or an optional record (null allowed) from any deserializer.
pub(crate) struct RecordSeed<'c, 'p, R> {
    pub(crate) cx: &'c Cx,
    pub(crate) path: Path<'p>,
    pub(crate) expected: &'static str,
    pub(crate) marker: PhantomData<R>,
}

impl<'c, 'p, R> RecordSeed<'c, 'p, R> {
    pub(crate) fn new(cx: &'c Cx, path: Path<'p>, expected: &'static str) -> Self {
        Self {
            cx,
            path,
            expected,
            marker: PhantomData,
        }
    }
}

impl<'de, R: ReadRecord> DeserializeSeed<'de> for RecordSeed<'_, '_, R> {
    type Value = Option<R>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! refuse {
    ($($method:ident($ty:ty) => $found:expr;)*) => {$(
        fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Err(self.cx.fail(Error::WrongType {
                path: self.path.to_string(),
                expected: self.expected,
                found: $found,
            }))
        }
    )*};
}

impl<'de, R: ReadRecord> Visitor<'de> for RecordSeed<'_, '_, R> {
    type Value = Option<R>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_record_map(map, self.cx, self.path).map(Some)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.cx.fail(Error::WrongType {
            path: self.path.to_string(),
            expected: self.expected,
            found: "an array",
        }))
    }
    refuse! {
        visit_bool(bool) => "a boolean";
        visit_i64(i64) => "a number";
        visit_u64(u64) => "a number";
        visit_f64(f64) => "a number";
        visit_str(&str) => "a string";
    }
}

/// Reads an array of records (or null) with per-element paths.
pub(crate) struct RecordListSeed<'c, 'p, R> {
    pub(crate) cx: &'c Cx,
    pub(crate) path: Path<'p>,
    pub(crate) expected: &'static str,
    pub(crate) element: &'static str,
    pub(crate) marker: PhantomData<R>,
}

impl<'de, R: ReadRecord> DeserializeSeed<'de> for RecordListSeed<'_, '_, R> {
    type Value = Option<Vec<R>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ReadRecord> Visitor<'de> for RecordListSeed<'_, '_, R> {
    type Value = Option<Vec<R>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let path = self.path.index(items.len());
            let seed = RecordSeed::<R> {
                cx: self.cx,
                path,
                expected: self.element,
                marker: PhantomData,
            };
            match seq.next_element_seed(seed)? {
                None => break,
                Some(Some(item)) => items.push(item),
                Some(None) => {
                    return Err(self.cx.fail(Error::WrongType {
                        path: path.to_string(),
                        expected: self.element,
                        found: "null",
                    }));
                }
            }
        }
        Ok(Some(items))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.cx.fail(Error::WrongType {
            path: self.path.to_string(),
            expected: self.expected,
            found: "an object",
        }))
    }
    refuse! {
        visit_bool(bool) => "a boolean";
        visit_i64(i64) => "a number";
        visit_u64(u64) => "a number";
        visit_f64(f64) => "a number";
        visit_str(&str) => "a string";
    }
}

/// Reads a leaf value and converts it with a path-aware check.
pub(crate) fn leaf<'de, S: Source<'de>, T>(
    src: S,
    cx: &Cx,
    path: Path<'_>,
    convert: fn(Value, Path<'_>) -> Result<T, Error>,
) -> Result<T, S::Error> {
    let value = src.value()?;
    convert(value, path).map_err(|e| cx.fail(e))
}

/// Writes an optional record (null when absent).
pub(crate) fn write_opt_record<R: Record>(record: Option<&R>, w: &mut Writer) {
    match record {
        Some(r) => write_record(r, w),
        None => w.null(),
    }
}

/// Writes an optional list of records (null when absent).
pub(crate) fn write_opt_records<R: Record>(records: Option<&[R]>, w: &mut Writer) {
    match records {
        Some(items) => {
            w.begin_array();
            for item in items {
                write_record(item, w);
            }
            w.end_array();
        }
        None => w.null(),
    }
}

/// Writes an optional map (null when absent).
pub(crate) fn write_opt_map(map: Option<&Map<String, Value>>, w: &mut Writer) {
    match map {
        Some(m) => w.map(m),
        None => w.null(),
    }
}

/// How one typed field is read, written and told apart from its absent default: the codec named for each
/// field in [`record!`].
pub(crate) trait Codec<T> {
    /// Reads the field from `src`; semantic problems go through `cx.fail`, located at `path`.
    fn read<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<T, S::Error>;
    /// Writes the field's value.
    fn write(value: &T, w: &mut Writer);
    /// Whether the value differs from what reading would give if the key were absent.
    fn is_set(value: &T) -> bool;
}

/// A string or `null` (`None`).
pub(crate) struct OptStr;
/// A number or `null` (`None`).
pub(crate) struct OptNum;
/// An object or `null` (`None`).
pub(crate) struct OptObject;
/// Any JSON value, `null` included (`Some(Value::Null)`): `None` only when absent.
pub(crate) struct Raw;
/// Any JSON value, `null` read as `None`.
pub(crate) struct NonNull;
/// A record or `null` (`None`).
pub(crate) struct OptRecord;
/// An array of records or `null` (`None`).
pub(crate) struct OptList;

impl Codec<Option<String>> for OptStr {
    fn read<'de, S: Source<'de>>(
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<Option<String>, S::Error> {
        leaf(src, cx, path, to_opt_string)
    }
    fn write(value: &Option<String>, w: &mut Writer) {
        w.opt_str(value.as_deref());
    }
    fn is_set(value: &Option<String>) -> bool {
        value.is_some()
    }
}

impl Codec<Option<Number>> for OptNum {
    fn read<'de, S: Source<'de>>(
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<Option<Number>, S::Error> {
        leaf(src, cx, path, to_opt_number)
    }
    fn write(value: &Option<Number>, w: &mut Writer) {
        w.opt_number(value.as_ref());
    }
    fn is_set(value: &Option<Number>) -> bool {
        value.is_some()
    }
}

impl Codec<Option<Map<String, Value>>> for OptObject {
    fn read<'de, S: Source<'de>>(
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<Option<Map<String, Value>>, S::Error> {
        leaf(src, cx, path, to_opt_object)
    }
    fn write(value: &Option<Map<String, Value>>, w: &mut Writer) {
        write_opt_map(value.as_ref(), w);
    }
    fn is_set(value: &Option<Map<String, Value>>) -> bool {
        value.is_some()
    }
}

impl Codec<Option<Value>> for Raw {
    fn read<'de, S: Source<'de>>(
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<Option<Value>, S::Error> {
        any(src, cx, path).map(Some)
    }
    fn write(value: &Option<Value>, w: &mut Writer) {
        w.value(value.as_ref().unwrap_or(&Value::Null));
    }
    fn is_set(value: &Option<Value>) -> bool {
        value.is_some()
    }
}

impl Codec<Option<Value>> for NonNull {
    fn read<'de, S: Source<'de>>(
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<Option<Value>, S::Error> {
        any(src, cx, path).map(|v| (!v.is_null()).then_some(v))
    }
    fn write(value: &Option<Value>, w: &mut Writer) {
        w.value(value.as_ref().unwrap_or(&Value::Null));
    }
    fn is_set(value: &Option<Value>) -> bool {
        value.is_some()
    }
}

impl<R: ReadRecord> Codec<Option<R>> for OptRecord {
    fn read<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<Option<R>, S::Error> {
        src.seed(RecordSeed::new(cx, path, R::OBJECT_OR_NULL))
    }
    fn write(value: &Option<R>, w: &mut Writer) {
        write_opt_record(value.as_ref(), w);
    }
    fn is_set(value: &Option<R>) -> bool {
        value.is_some()
    }
}

impl<R: ReadRecord> Codec<Option<Vec<R>>> for OptList {
    fn read<'de, S: Source<'de>>(
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<Option<Vec<R>>, S::Error> {
        src.seed(RecordListSeed {
            cx,
            path,
            expected: R::LIST_OR_NULL,
            element: R::ELEMENT,
            marker: PhantomData,
        })
    }
    fn write(value: &Option<Vec<R>>, w: &mut Writer) {
        write_opt_records(value.as_deref(), w);
    }
    fn is_set(value: &Option<Vec<R>>) -> bool {
        value.is_some()
    }
}

/// A string (required where it is read).
pub(crate) struct Str;
/// Any JSON value; `null` when absent.
pub(crate) struct AnyValue;
/// A boolean whose absent value is `DEFAULT`.
pub(crate) struct Flag<const DEFAULT: bool>;

impl Codec<String> for Str {
    fn read<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<String, S::Error> {
        leaf(src, cx, path, to_string)
    }
    fn write(value: &String, w: &mut Writer) {
        w.str(value);
    }
    fn is_set(_: &String) -> bool {
        true
    }
}

impl Codec<Value> for AnyValue {
    fn read<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<Value, S::Error> {
        any(src, cx, path)
    }
    fn write(value: &Value, w: &mut Writer) {
        w.value(value);
    }
    fn is_set(value: &Value) -> bool {
        !value.is_null()
    }
}

impl<const DEFAULT: bool> Codec<bool> for Flag<DEFAULT> {
    fn read<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<bool, S::Error> {
        leaf(src, cx, path, to_bool)
    }
    fn write(value: &bool, w: &mut Writer) {
        w.bool(*value);
    }
    fn is_set(value: &bool) -> bool {
        *value != DEFAULT
    }
}

/// The fields of an event type's payload (the struct of an [`crate::EventKind`] variant), by index in
/// Rasa's order; implemented by [`payload!`].
pub(crate) trait Payload {
    /// The keys, in Rasa's order.
    const KEYS: &'static [&'static str];
    /// Reads field `own` from `src`.
    fn read_own<'de, S: Source<'de>>(
        &mut self,
        own: usize,
        src: S,
        cx: &Cx,
        path: Path<'_>,
    ) -> Result<(), S::Error>;
    /// Writes the value of field `own`.
    fn write_own(&self, own: usize, w: &mut Writer);
    /// Whether field `own` differs from its absent default.
    fn is_set_own(&self, own: usize) -> bool;
}

/// Declares the fields of an event type's payload ONCE, in Rasa's order: variant, key, struct member and
/// [`Codec`]. Generates the field enum (index = position) and the [`Payload`] implementation.
macro_rules! payload {
    (
        $(#[$meta:meta])*
        $payload:ident, $field:ident {
            $($variant:ident = $key:literal => $member:ident: $codec:ty;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $field {
            $(
                #[doc = concat!("`", $key, "`")]
                $variant,
            )+
        }

        impl $field {
            /// Every field, in Rasa's order.
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The field's index among its payload's fields.
            #[allow(dead_code, reason = "named only for the payloads whose fields are special-cased")]
            pub(crate) fn own(self) -> usize {
                self as usize
            }
        }

        const _: () = assert!($field::ALL.len() + 3 <= $crate::record::MAX_FIELDS);

        impl $crate::record::Payload for $payload {
            const KEYS: &'static [&'static str] = &[$($key),+];
            fn read_own<'de, S: $crate::record::Source<'de>>(
                &mut self,
                own: usize,
                src: S,
                cx: &$crate::record::Cx,
                path: $crate::record::Path<'_>,
            ) -> Result<(), S::Error> {
                match $field::ALL.get(own) {
                    $(Some($field::$variant) => {
                        self.$member = <$codec as $crate::record::Codec<_>>::read(src, cx, path)?;
                    })+
                    None => {}
                }
                Ok(())
            }
            fn write_own(&self, own: usize, w: &mut $crate::pyjson::Writer) {
                match $field::ALL.get(own) {
                    $(Some($field::$variant) => <$codec as $crate::record::Codec<_>>::write(&self.$member, w),)+
                    None => w.null(),
                }
            }
            fn is_set_own(&self, own: usize) -> bool {
                match $field::ALL.get(own) {
                    $(Some($field::$variant) => <$codec as $crate::record::Codec<_>>::is_set(&self.$member),)+
                    None => false,
                }
            }
        }
    };
}
pub(crate) use payload;

/// Declares a typed record ONCE: its fields in Rasa's order, each with its enum variant, its key, the struct
/// member that holds it, its [`Codec`], and whether Rasa always writes it (`always`) or only when set
/// (`if_set`). Generates the field enum (ids = declaration order) and the [`Record`] and [`ReadRecord`]
/// implementations, so that a field cannot exist without being read, written and ordered, and a record
/// cannot have more fields than [`MAX_FIELDS`] (a compile-time error).
macro_rules! record {
    (
        $(#[$meta:meta])*
        $record:ident, $field:ident, blank = $blank:expr,
        expected = ($object_or_null:literal, $list_or_null:literal, $element:literal) {
            $($variant:ident = $key:literal => $member:ident: $codec:ty, $when:ident;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $field {
            $(
                #[doc = concat!("`", $key, "`")]
                $variant,
            )+
        }

        impl $field {
            /// Every field, in Rasa's order (a field's id is its index).
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The field of id `id`.
            pub(crate) fn of_id(id: u8) -> Option<Self> {
                Self::ALL.get(usize::from(id)).copied()
            }

            /// The field's key.
            pub(crate) fn key(self) -> &'static str {
                match self {
                    $(Self::$variant => $key,)+
                }
            }

            /// The field's id.
            pub(crate) fn id(self) -> u8 {
                self as u8
            }
        }

        const _: () = assert!($field::ALL.len() <= $crate::record::MAX_FIELDS);

        impl $crate::record::Record for $record {
            fn canonical(&self) -> $crate::record::Ids {
                let mut ids = $crate::record::Ids::new();
                $(
                    if record!(@when $when, <$codec as $crate::record::Codec<_>>::is_set(&self.$member)) {
                        ids.push($field::$variant.id());
                    }
                )+
                ids
            }
            fn is_set(&self, id: u8) -> bool {
                match $field::of_id(id) {
                    $(Some($field::$variant) => <$codec as $crate::record::Codec<_>>::is_set(&self.$member),)+
                    None => false,
                }
            }
            fn key(&self, id: u8) -> &'static str {
                $field::of_id(id).map_or("", $field::key)
            }
            fn write_value(&self, id: u8, w: &mut $crate::pyjson::Writer) {
                match $field::of_id(id) {
                    $(Some($field::$variant) => <$codec as $crate::record::Codec<_>>::write(&self.$member, w),)+
                    None => w.null(),
                }
            }
            fn extra(&self) -> &serde_json::Map<String, serde_json::Value> {
                &self.extra
            }
            fn layout(&self) -> &$crate::record::Layout {
                &self.layout
            }
        }

        impl $crate::record::ReadRecord for $record {
            const OBJECT_OR_NULL: &'static str = $object_or_null;
            const LIST_OR_NULL: &'static str = $list_or_null;
            const ELEMENT: &'static str = $element;
            fn blank() -> Self {
                $blank
            }
            fn field_id(key: &str) -> Option<u8> {
                match key {
                    $($key => Some($field::$variant.id()),)+
                    _ => None,
                }
            }
            fn read_field<'de, S: $crate::record::Source<'de>>(
                &mut self,
                id: u8,
                src: S,
                cx: &$crate::record::Cx,
                path: $crate::record::Path<'_>,
            ) -> Result<(), S::Error> {
                match $field::of_id(id) {
                    $(Some($field::$variant) => {
                        self.$member = <$codec as $crate::record::Codec<_>>::read(src, cx, path.key($key))?;
                    })+
                    None => {}
                }
                Ok(())
            }
            fn extra_mut(&mut self) -> &mut serde_json::Map<String, serde_json::Value> {
                &mut self.extra
            }
            fn set_layout(&mut self, layout: $crate::record::Layout) {
                self.layout = layout;
            }
        }
    };
    (@when always, $set:expr) => {
        true
    };
    (@when if_set, $set:expr) => {
        $set
    };
}
pub(crate) use record;
