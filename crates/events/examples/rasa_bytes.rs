//! `rasa_bytes`: echoes broker message bodies through our event model, for Rasa's compatibility suite
//! (`compat/rasa`).
//!
//! Reads JSON lines on stdin (one broker body per line, as Rasa's `PikaEventBroker` publishes them) and
//! writes, for each line, [`Envelope::to_rasa_json`] — the bytes we would publish for that event (with
//! `--export`: [`Envelope::to_rasa_export_json`], what `rasa export` publishes). A line we
//! cannot read produces `error: line N: <reason>` on stdout instead (N counts from 1), so the output keeps
//! one line per input line and the caller can match them up. Empty lines are echoed as empty lines.
//!
//! ```text
//! cargo run -q -p colloquy-events --example rasa_bytes < bodies.jsonl
//! ```

use std::io::{BufRead, BufWriter, Write};

use colloquy_events::Envelope;

fn main() -> std::io::Result<()> {
    let export = std::env::args().skip(1).any(|arg| arg == "--export");
    let write = if export {
        Envelope::to_rasa_export_json
    } else {
        Envelope::to_rasa_json
    };
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (index, line) in stdin.split(b'\n').enumerate() {
        let line = line?;
        if line.is_empty() {
            writeln!(out)?;
            continue;
        }
        match Envelope::from_json(&line).map(|envelope| write(&envelope)) {
            Ok(json) => writeln!(out, "{json}")?,
            Err(error) => writeln!(out, "error: line {}: {error}", index + 1)?,
        }
    }
    out.flush()
}
