//! The files `colloquy import` reads, in chunks: JSON lines of broker bodies, or Rasa tracker dumps.
//!
//! The format is decided once, from the first record:
//! - a line that is a whole JSON object with `events` (a list) and no `event` starts **tracker lines** (one
//!   dump per line);
//! - any other whole JSON line starts **body lines** (one broker body per line, `sender_id` anywhere);
//! - input that starts with `[`, or whose first line is not a whole JSON value (pretty-printed JSON), is a
//!   **document**: one or more JSON values, each a tracker dump, a body, or a list of them. A document is read
//!   whole; lines are streamed.
//!
//! Errors point at the input: `line N: <what is wrong>`, with the events crate's description of the problem.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use colloquy_events::{Envelope, Event};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One event read from the input, with the line it starts on.
#[derive(Debug)]
pub struct Record {
    /// The 1-based line of the input where the event starts.
    pub line: u64,
    /// The conversation id.
    pub sender_id: String,
    /// The event.
    pub event: Event,
}

/// A problem with the input, located.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The input could not be read.
    #[error("cannot read {name}: {source}")]
    Io {
        /// The file name, or `standard input`.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A record is not valid.
    #[error("line {line}: {message}")]
    Invalid {
        /// The 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// How the input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One broker body per line.
    BodyLines,
    /// One tracker dump per line.
    TrackerLines,
    /// Whole JSON values (pretty-printed dumps, lists).
    Document,
}

/// Reads records from a file or standard input, a chunk at a time.
pub struct InputReader {
    name: String,
    source: Box<dyn BufRead + Send>,
    format: Option<Format>,
    /// Lines read so far.
    line: u64,
    bytes_read: u64,
    buffer: Vec<u8>,
    /// Records of a document (or of a tracker line) not handed out yet, in reverse order.
    pending: Vec<Record>,
    /// An error met after some records of a chunk: reported by the next call, so that the records before
    /// it are handed out first.
    failed: Option<InputError>,
    finished: bool,
}

impl InputReader {
    /// Opens `path` (`-` = standard input).
    pub fn open(path: &Path) -> Result<Self, InputError> {
        if path.as_os_str() == "-" {
            return Ok(Self::new(
                "standard input",
                Box::new(BufReader::with_capacity(1 << 20, std::io::stdin())),
            ));
        }
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| InputError::Io {
            name: name.clone(),
            source,
        })?;
        Ok(Self::new(
            &name,
            Box::new(BufReader::with_capacity(1 << 20, file)),
        ))
    }

    /// Reads from any source (`name` is used in messages).
    pub fn new(name: &str, source: Box<dyn BufRead + Send>) -> Self {
        Self {
            name: name.to_owned(),
            source,
            format: None,
            line: 0,
            bytes_read: 0,
            buffer: Vec::with_capacity(4096),
            pending: Vec::new(),
            failed: None,
            finished: false,
        }
    }

    /// How many bytes were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Up to `max` records, in input order; an empty vector at the end of the input. A bad record ends the
    /// chunk before it; the error comes with the next call.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<Record>, InputError> {
        if self.pending.is_empty()
            && let Some(error) = self.failed.take()
        {
            self.finished = true;
            return Err(error);
        }
        let mut chunk = Vec::with_capacity(max.min(16_384));
        if let Err(error) = self.fill(&mut chunk, max) {
            self.finished = true;
            if chunk.is_empty() {
                return Err(error);
            }
            self.failed = Some(error);
        }
        Ok(chunk)
    }

    fn fill(&mut self, chunk: &mut Vec<Record>, max: usize) -> Result<(), InputError> {
        while chunk.len() < max {
            if let Some(record) = self.pending.pop() {
                chunk.push(record);
                continue;
            }
            if self.finished || !self.read_line()? {
                break;
            }
            let line_number = self.line;
            let line = trim(&self.buffer);
            if line.is_empty() {
                continue;
            }
            let format = match self.format {
                Some(format) => format,
                None => {
                    let format = detect(line);
                    self.format = Some(format);
                    format
                }
            };
            match format {
                Format::BodyLines => chunk.push(body(line, line_number)?),
                Format::TrackerLines => {
                    let (mut records, error) = parse_values(line, line_number);
                    if let Some(error) = error {
                        self.failed = Some(error);
                        self.finished = true;
                    }
                    records.reverse();
                    self.pending = records;
                }
                Format::Document => {
                    let mut document = std::mem::take(&mut self.buffer);
                    let first_line_len = document.len();
                    self.source
                        .read_to_end(&mut document)
                        .map_err(|source| self.io_error(source))?;
                    self.bytes_read += (document.len() - first_line_len) as u64;
                    self.finished = true;
                    let (mut records, error) = parse_values(&document, line_number);
                    self.failed = error;
                    records.reverse();
                    self.pending = records;
                }
            }
        }
        // Records parsed before an error of a tracker line or document go out first.
        if self.pending.is_empty()
            && let Some(error) = self.failed.take()
        {
            return Err(error);
        }
        Ok(())
    }

    /// Reads the next line into `buffer`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool, InputError> {
        self.buffer.clear();
        let read = self
            .source
            .read_until(b'\n', &mut self.buffer)
            .map_err(|source| self.io_error(source))?;
        self.bytes_read += read as u64;
        if read == 0 {
            self.finished = true;
            return Ok(false);
        }
        self.line += 1;
        Ok(true)
    }

    fn io_error(&self, source: std::io::Error) -> InputError {
        InputError::Io {
            name: self.name.clone(),
            source,
        }
    }
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// The format of an input whose first non-blank line is `line`.
fn detect(line: &[u8]) -> Format {
    if line.starts_with(b"[") {
        return Format::Document;
    }
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        event: Option<&'a RawValue>,
        #[serde(borrow)]
        events: Option<&'a RawValue>,
    }
    match serde_json::from_slice::<Probe<'_>>(line) {
        Ok(Probe {
            event: None,
            events: Some(events),
        }) if events.get().starts_with('[') => Format::TrackerLines,
        Err(error) if error.is_eof() => Format::Document,
        // Anything else, valid or not, is read as a body: its errors are then reported as such.
        _ => Format::BodyLines,
    }
}

/// Reads one broker body.
fn body(line: &[u8], line_number: u64) -> Result<Record, InputError> {
    let envelope = Envelope::from_json(line).map_err(|error| invalid(line_number, &error))?;
    Ok(Record {
        line: line_number,
        sender_id: envelope.sender_id,
        event: envelope.event,
    })
}

/// An events-crate error at `line`: syntax errors get the column, everything else its own description.
fn invalid(line: u64, error: &colloquy_events::Error) -> InputError {
    let message = match error {
        colloquy_events::Error::Json {
            message, column, ..
        } if *column > 0 => format!("invalid JSON at column {column}: {message}"),
        other => other.to_string(),
    };
    InputError::Invalid { line, message }
}

/// Reads every JSON value of `text` (which starts on line `first_line`): tracker dumps, bodies, or lists of
/// them. Each event is located at the line where it starts. On a bad value, the records before it and the
/// error.
fn parse_values(text: &[u8], first_line: u64) -> (Vec<Record>, Option<InputError>) {
    let mut records = Vec::new();
    let lines = Lines::new(text, first_line);
    let error = parse_values_into(&lines, &mut records).err();
    (records, error)
}

/// The line of a position in a document. Positions are asked for in increasing order (values, then their
/// items, then their events), so each query counts only the newlines since the previous one: the whole
/// document is scanned once, however many events it holds (counting from the start for every event made
/// importing one large document quadratic). A position before the previous one is counted from the start.
struct Lines<'t> {
    text: &'t [u8],
    first_line: u64,
    /// The last position asked for and its line.
    at: Cell<(usize, u64)>,
    /// Bytes scanned so far (the work done, for tests).
    scanned: Cell<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t [u8], first_line: u64) -> Self {
        Self {
            text,
            first_line,
            at: Cell::new((0, first_line)),
            scanned: Cell::new(0),
        }
    }

    /// The 1-based line of byte `offset` of the text.
    fn line_at(&self, offset: usize) -> u64 {
        let offset = offset.min(self.text.len());
        let (from, line) = match self.at.get() {
            (from, line) if from <= offset => (from, line),
            _ => (0, self.first_line),
        };
        let newlines = self.text[from..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.scanned.set(self.scanned.get() + (offset - from));
        let line = line + newlines as u64;
        self.at.set((offset, line));
        line
    }

    /// The line where `raw` (a slice of the text) starts.
    fn line_of(&self, raw: &RawValue) -> u64 {
        self.line_at(raw.get().as_ptr() as usize - self.text.as_ptr() as usize)
    }
}

fn parse_values_into(lines: &Lines<'_>, records: &mut Vec<Record>) -> Result<(), InputError> {
    let (text, first_line) = (lines.text, lines.first_line);
    let values = serde_json::Deserializer::from_slice(text).into_iter::<&RawValue>();
    for value in values {
        let value = value.map_err(|error| {
            // serde_json counts lines from the start of `text`.
            InputError::Invalid {
                line: first_line + error.line().saturating_sub(1) as u64,
                message: format!("invalid JSON at column {}: {}", error.column(), {
                    let text = error.to_string();
                    match text.rfind(" at line ") {
                        Some(i) => text[..i].to_owned(),
                        None => text,
                    }
                }),
            }
        })?;
        let items: Vec<&RawValue> = if value.get().starts_with('[') {
            serde_json::from_str(value.get()).map_err(|error| InputError::Invalid {
                line: lines.line_of(value),
                message: format!("invalid list: {error}"),
            })?
        } else {
            vec![value]
        };
        for item in items {
            parse_item(item, lines, records)?;
        }
    }
    Ok(())
}

/// Reads one tracker dump or body of a document.
fn parse_item(
    item: &RawValue,
    lines: &Lines<'_>,
    records: &mut Vec<Record>,
) -> Result<(), InputError> {
    let line = lines.line_of(item);
    #[derive(Deserialize)]
    struct Dump<'a> {
        sender_id: Option<String>,
        #[serde(borrow)]
        event: Option<&'a RawValue>,
        #[serde(borrow)]
        events: Option<Vec<&'a RawValue>>,
    }
    let dump: Dump<'_> = serde_json::from_str(item.get()).map_err(|error| InputError::Invalid {
        line,
        message: format!(
            "expected a tracker dump (an object with `sender_id` and `events`) or an event: {error}"
        ),
    })?;
    match dump {
        Dump {
            event: None,
            events: Some(events),
            sender_id,
        } => {
            let Some(sender_id) = sender_id else {
                return Err(InputError::Invalid {
                    line,
                    message: "missing key `sender_id` in the tracker dump".into(),
                });
            };
            for event in events {
                let event_line = lines.line_of(event);
                let parsed = Event::from_json(event.get().as_bytes())
                    .map_err(|error| invalid(event_line, &error))?;
                records.push(Record {
                    line: event_line,
                    sender_id: sender_id.clone(),
                    event: parsed,
                });
            }
        }
        _ => records.push(body(item.get().as_bytes(), line)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<(u64, String, String)>, String> {
        let mut reader = InputReader::new("test", Box::new(std::io::Cursor::new(text.to_owned())));
        let mut all = Vec::new();
        loop {
            let chunk = reader.next_chunk(2).map_err(|e| e.to_string())?;
            if chunk.is_empty() {
                break;
            }
            all.extend(
                chunk
                    .into_iter()
                    .map(|r| (r.line, r.sender_id, r.event.type_name().to_owned())),
            );
        }
        Ok(all)
    }

    fn ok(text: &str, expected: &[(u64, &str, &str)]) {
        let expected: Vec<(u64, String, String)> = expected
            .iter()
            .map(|(l, s, t)| (*l, s.to_string(), t.to_string()))
            .collect();
        assert_eq!(read(text).unwrap(), expected, "input:\n{text}");
    }

    fn err(text: &str, expected: &str) {
        assert_eq!(read(text).unwrap_err(), expected, "input:\n{text}");
    }

    #[test]
    fn formats() {
        ok(
            "{\"sender_id\": \"a\", \"event\": \"pause\"}\n\n{\"event\": \"resume\", \"sender_id\": \"b\"}\r\n",
            &[(1, "a", "pause"), (3, "b", "resume")],
        );
        ok(
            "{\"sender_id\": \"a\", \"events\": [{\"event\": \"pause\"}, {\"event\": \"resume\"}]}\n{\"sender_id\": \"b\", \"events\": [{\"event\": \"restart\"}]}\n",
            &[(1, "a", "pause"), (1, "a", "resume"), (2, "b", "restart")],
        );
        ok(
            "{\n  \"sender_id\": \"a\",\n  \"slots\": {},\n  \"events\": [\n    {\"event\": \"pause\"},\n    {\n      \"event\": \"resume\"\n    }\n  ]\n}\n",
            &[(5, "a", "pause"), (6, "a", "resume")],
        );
        ok(
            "[\n {\"sender_id\": \"a\", \"events\": [{\"event\": \"pause\"}]},\n {\"sender_id\": \"b\", \"events\": [\n  {\"event\": \"undo\"}]}\n]",
            &[(2, "a", "pause"), (4, "b", "undo")],
        );
        ok("", &[]);
    }

    #[test]
    fn records_before_a_bad_one_come_first() {
        for text in [
            "{\"sender_id\": \"a\", \"event\": \"pause\"}\n{\"sender_id\": \"a\", \"event\": \"resume\"}\n{\"event\": \"pause\"}\n",
            "[{\"sender_id\": \"a\", \"events\": [{\"event\": \"pause\"}, {\"event\": \"resume\"}, {\"event\": 1}]}]",
        ] {
            let mut reader =
                InputReader::new("test", Box::new(std::io::Cursor::new(text.to_owned())));
            assert_eq!(reader.next_chunk(1).unwrap().len(), 1, "{text}");
            assert_eq!(reader.next_chunk(10).unwrap().len(), 1, "{text}");
            assert!(reader.next_chunk(10).is_err(), "{text}");
        }
    }

    /// Importing one document of many tracker dumps scans it once to locate lines: the work is proportional
    /// to its size (10k, 20k, 40k dumps), where counting from the start for every event was quadratic.
    #[test]
    fn locating_lines_in_a_large_document_is_linear() {
        let dump = |i: usize| {
            format!(
                "  {{\n    \"sender_id\": \"c{i}\",\n    \"events\": [\n      {{\"event\": \"action\", \"timestamp\": 1.0, \"name\": \"action_listen\"}},\n      {{\"event\": \"pause\", \"timestamp\": 2.0}}\n    ]\n  }}"
            )
        };
        for dumps in [10_000, 20_000, 40_000] {
            let text = format!(
                "[\n{}\n]\n",
                (0..dumps).map(dump).collect::<Vec<_>>().join(",\n")
            );
            let lines = Lines::new(text.as_bytes(), 1);
            let mut records = Vec::new();
            parse_values_into(&lines, &mut records).unwrap();
            assert_eq!(records.len(), 2 * dumps);
            // Each dump takes 7 lines after the opening `[`; its events are on its 4th and 5th.
            let last = &records[2 * dumps - 1];
            assert_eq!(last.sender_id, format!("c{}", dumps - 1));
            assert_eq!(last.line, 1 + 7 * (dumps as u64 - 1) + 5);
            assert!(
                lines.scanned.get() <= text.len(),
                "{dumps} dumps: {} bytes scanned for a document of {} bytes",
                lines.scanned.get(),
                text.len()
            );
        }
    }

    #[test]
    fn errors_name_the_line() {
        err(
            "{\"sender_id\": \"a\", \"event\": \"pause\"}\n{\"event\": \"pause\"}\n",
            "line 2: missing key `sender_id` in $",
        );
        err(
            "{\"sender_id\": \"a\", \"event\": \"pause\"}\n\n{\"sender_id\": \"a\", \"event\": \"pause\",}\n",
            "line 3: invalid JSON at column 37: trailing comma",
        );
        err(
            "{\"sender_id\": \"a\", \"event\": \"slot\", \"name\": 3}\n",
            "line 1: $.name must be a string, found a number",
        );
        err(
            "{\"sender_id\": \"a\", \"events\": [{\"event\": \"pause\"},\n {\"event\": \"action\"}]}",
            "line 2: $: an `action` event needs `name` or `action_text`, found neither",
        );
        err(
            "[{\"events\": []}]",
            "line 1: missing key `sender_id` in the tracker dump",
        );
    }
}
