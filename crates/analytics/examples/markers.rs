//! Evaluates Rasa markers on conversations read from a JSON-lines file of Rasa event bodies (each with its
//! `sender_id`), and writes what `rasa evaluate markers all` writes. The compat suite runs it against Rasa.
//!
//! ```text
//! cargo run -p colloquy-analytics --example markers -- --config markers.yml --events events.jsonl \
//!     --output-file out.csv [--stats-file-prefix stats] [--honour-negated-tags]
//! ```
//!
//! Conversations are evaluated in the order of their first event in the file; each one's events in file
//! order. With `--stats-file-prefix P`, also writes `P-overall.csv` and `P-per-session.csv`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use colloquy_analytics::markers::{
    Evaluator, MarkerConfig, TagNegation, write_markers_csv, write_overall_statistics,
    write_per_session_statistics,
};
use colloquy_events::{Envelope, Event};

struct Args {
    config: PathBuf,
    events: PathBuf,
    output_file: PathBuf,
    stats_file_prefix: Option<String>,
    negation: TagNegation,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut events, mut output_file, mut stats_file_prefix) = (None, None, None, None);
    let mut negation = TagNegation::AsRasa3_6;
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--events" => events = Some(PathBuf::from(value()?)),
            "--output-file" => output_file = Some(PathBuf::from(value()?)),
            "--stats-file-prefix" => stats_file_prefix = Some(value()?),
            "--honour-negated-tags" => negation = TagNegation::Honoured,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(Args {
        config: config.context("--config is required")?,
        events: events.context("--events is required")?,
        output_file: output_file.context("--output-file is required")?,
        stats_file_prefix,
        negation,
    })
}

fn write_file(
    path: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let mut out =
        BufWriter::new(File::create(path).with_context(|| format!("cannot create {path}"))?);
    write(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {path}"))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let yaml = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = MarkerConfig::from_yaml(&yaml, args.negation)?;

    let text = std::fs::read_to_string(&args.events)
        .with_context(|| format!("cannot read {}", args.events.display()))?;
    let mut conversations: Vec<(String, Vec<Event>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let envelope = Envelope::from_json(line.as_bytes())
            .with_context(|| format!("{} line {}", args.events.display(), number + 1))?;
        match index.get(&envelope.sender_id) {
            Some(&i) => conversations[i].1.push(envelope.event),
            None => {
                index.insert(envelope.sender_id.clone(), conversations.len());
                conversations.push((envelope.sender_id, vec![envelope.event]));
            }
        }
    }

    let mut evaluator = Evaluator::new(&config);
    let results: Vec<_> = conversations
        .iter()
        .map(|(sender, events)| evaluator.evaluate(sender, events))
        .collect();
    write_file(&args.output_file.to_string_lossy(), |out| {
        write_markers_csv(out, &results)
    })?;
    if let Some(prefix) = &args.stats_file_prefix {
        write_file(&format!("{prefix}-overall.csv"), |out| {
            write_overall_statistics(out, &results)
        })?;
        write_file(&format!("{prefix}-per-session.csv"), |out| {
            write_per_session_statistics(out, &results)
        })?;
    }
    Ok(())
}
