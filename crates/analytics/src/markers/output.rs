//! The files `rasa evaluate markers all` writes, byte for byte: the markers CSV, and with statistics
//! `<prefix>-overall.csv` and `<prefix>-per-session.csv`.
//!
//! Python's `csv.writer` (excel dialect): rows end with `\r\n`; a field is quoted only when it contains `,`,
//! `"` (doubled inside quotes), `\r` or `\n`. Statistics are written as numpy does: counts as integers,
//! means, medians and percentages rounded with `np.round(x, 3)` (`rint(x * 1000) / 1000`) and printed as
//! Python prints floats; a statistic of no values is `nan`.

use std::io::{self, Write};

use colloquy_events::pyjson::float_repr;

use super::eval::ConversationResult;

/// Writes one CSV row the way Python's `csv.writer` does.
fn write_row(out: &mut impl Write, fields: &[&str]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if field.contains([',', '"', '\r', '\n']) {
            write!(out, "\"{}\"", field.replace('"', "\"\""))?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

/// The markers CSV: `sender_id,session_idx,marker,event_idx,num_preceding_user_turns`, a row per event
/// at which a marker applied, by conversation, session, marker (configuration order) and event.
pub fn write_markers_csv(out: &mut impl Write, results: &[ConversationResult]) -> io::Result<()> {
    write_row(
        out,
        &[
            "sender_id",
            "session_idx",
            "marker",
            "event_idx",
            "num_preceding_user_turns",
        ],
    )?;
    for result in results {
        for (session_idx, session) in result.sessions.iter().enumerate() {
            for (marker, applied) in session {
                for meta in applied {
                    write_row(
                        out,
                        &[
                            &result.sender_id,
                            &session_idx.to_string(),
                            marker,
                            &meta.idx.to_string(),
                            &meta.preceding_user_turns.to_string(),
                        ],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// A statistic's value as Rasa's `MarkerStatistics._write_row` prints it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stat {
    Int(usize),
    Float(f64),
    Nan,
}

impl Stat {
    fn text(self) -> String {
        match self {
            Stat::Int(n) => n.to_string(),
            Stat::Nan => "nan".into(),
            Stat::Float(x) => {
                let rounded = (x * 1000.0).round_ties_even() / 1000.0;
                // tidy: allow(unwrap) statistics of counts are finite.
                float_repr(rounded).expect("statistics of counts are finite")
            }
        }
    }
}

/// `compute_statistics` of Rasa: count, mean, median, min, max of the user-turn counts.
fn statistics(values: &[usize]) -> [(&'static str, Stat); 5] {
    if values.is_empty() {
        return [
            ("count", Stat::Int(0)),
            ("mean", Stat::Nan),
            ("median", Stat::Nan),
            ("min", Stat::Nan),
            ("max", Stat::Nan),
        ];
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let sum: f64 = sorted.iter().map(|v| *v as f64).sum();
    let median = if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0
    };
    [
        ("count", Stat::Int(n)),
        ("mean", Stat::Float(sum / n as f64)),
        ("median", Stat::Float(median)),
        ("min", Stat::Int(sorted[0])),
        ("max", Stat::Int(sorted[n - 1])),
    ]
}

fn turns_label(statistic: &str) -> String {
    format!("{statistic}(number of preceding user turns)")
}

/// The sessions and the per-marker user-turn counts, as Rasa's `MarkerStatistics` collects them.
struct Collected<'a> {
    /// Marker names, sorted.
    markers: Vec<&'a str>,
    /// (sender_id, session_idx, per marker in `markers` order: the user-turn counts where it applied).
    sessions: Vec<(&'a str, usize, Vec<Vec<usize>>)>,
}

fn collect(results: &[ConversationResult]) -> Collected<'_> {
    let mut markers: Vec<&str> = results
        .iter()
        .flat_map(|r| r.sessions.first())
        .next()
        .map(|session| session.iter().map(|(name, _)| name.as_str()).collect())
        .unwrap_or_default();
    markers.sort_unstable();
    let mut sessions = Vec::new();
    for result in results {
        for (session_idx, session) in result.sessions.iter().enumerate() {
            let per_marker = markers
                .iter()
                .map(|name| {
                    session
                        .iter()
                        .find(|(marker, _)| marker == name)
                        .map(|(_, applied)| {
                            applied.iter().map(|m| m.preceding_user_turns).collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
            sessions.push((result.sender_id.as_str(), session_idx, per_marker));
        }
    }
    Collected { markers, sessions }
}

/// `<prefix>-overall.csv`: number of sessions; per marker the sessions where it applied (count and
/// percentage); per marker the statistics of the user turns preceding its applications in all sessions.
pub fn write_overall_statistics(
    out: &mut impl Write,
    results: &[ConversationResult],
) -> io::Result<()> {
    let collected = collect(results);
    let num_sessions = collected.sessions.len();
    let header = ["sender_id", "session_idx", "marker", "statistic", "value"];
    write_row(out, &header)?;
    row(
        out,
        "-",
        "total_number_of_sessions",
        Stat::Int(num_sessions),
    )?;
    for (m, marker) in collected.markers.iter().enumerate() {
        let applied = collected
            .sessions
            .iter()
            .filter(|s| !s.2[m].is_empty())
            .count();
        row(
            out,
            marker,
            "number_of_sessions_where_marker_applied_at_least_once",
            Stat::Int(applied),
        )?;
        let percentage = if num_sessions > 0 {
            applied as f64 / num_sessions as f64 * 100.0
        } else {
            100.0
        };
        row(
            out,
            marker,
            "percentage_of_sessions_where_marker_applied_at_least_once",
            Stat::Float(percentage),
        )?;
    }
    for (m, marker) in collected.markers.iter().enumerate() {
        let all: Vec<usize> = collected
            .sessions
            .iter()
            .flat_map(|s| s.2[m].iter().copied())
            .collect();
        for (statistic, value) in statistics(&all) {
            row(out, marker, &turns_label(statistic), value)?;
        }
    }
    Ok(())
}

/// `<prefix>-per-session.csv`: per marker (sorted), per statistic (`count`, `max`, `mean`, `median`, `min`),
/// per session: the statistics of the user turns preceding the marker's applications in that session.
pub fn write_per_session_statistics(
    out: &mut impl Write,
    results: &[ConversationResult],
) -> io::Result<()> {
    let collected = collect(results);
    write_row(
        out,
        &["sender_id", "session_idx", "marker", "statistic", "value"],
    )?;
    let per_session: Vec<Vec<[(&str, Stat); 5]>> = collected
        .sessions
        .iter()
        .map(|(_, _, per_marker)| per_marker.iter().map(|counts| statistics(counts)).collect())
        .collect();
    for (m, marker) in collected.markers.iter().enumerate() {
        for statistic in ["count", "max", "mean", "median", "min"] {
            for (s, (sender_id, session_idx, _)) in collected.sessions.iter().enumerate() {
                let value = per_session[s][m]
                    .iter()
                    .find(|(name, _)| *name == statistic)
                    .map(|(_, value)| *value)
                    // tidy: allow(unwrap) every statistic is computed.
                    .expect("every statistic is computed");
                write_row(
                    out,
                    &[
                        sender_id,
                        &session_idx.to_string(),
                        marker,
                        &turns_label(statistic),
                        &value.text(),
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// A row of the overall statistics (sender `all`, session `nan`).
fn row(out: &mut impl Write, marker: &str, statistic: &str, value: Stat) -> io::Result<()> {
    write_row(out, &["all", "nan", marker, statistic, &value.text()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_like_python_csv() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("cr\r", "\"cr\r\""),
            ("", ""),
            (" spaced ", " spaced "),
        ];
        for (field, expected) in cases {
            let mut out = Vec::new();
            write_row(&mut out, &[field, "x"]).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("{expected},x\r\n"));
        }
    }

    #[test]
    fn statistics_print_like_numpy() {
        let cases = [
            (Stat::Int(3), "3"),
            (Stat::Nan, "nan"),
            (Stat::Float(100.0), "100.0"),
            (Stat::Float(100.0 / 3.0), "33.333"),
            (Stat::Float(2.0 / 3.0 * 100.0), "66.667"),
            (Stat::Float(0.0625), "0.062"),
            (Stat::Float(2.5), "2.5"),
        ];
        for (stat, expected) in cases {
            assert_eq!(stat.text(), expected, "{stat:?}");
        }
        assert_eq!(statistics(&[3, 1, 2, 10])[2].1, Stat::Float(2.5));
    }
}
