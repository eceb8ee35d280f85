//! Tidy: tests that fail when an invariant of ARCHITECTURE.md breaks (as rust-analyzer's `xtask/src/tidy.rs`).
//! They read the source text; `cargo test --workspace` (so `cargo xtask ci`) runs them.
//!
//! - the events crate depends on exactly the crates ARCHITECTURE.md lists;
//! - only the binary (and xtask, tests, the dev-only testkit) reads the environment (`std::env`);
//! - no lapin outside the broker crate (library and binary code; tests may drive RabbitMQ directly);
//! - no SQL text outside `crates/storage` (library and binary code);
//! - no `unwrap()` / `expect(` in library code outside tests;
//! - no unnamed sleep: `sleep(Duration::from_…(<literal>))` anywhere — name the pause in a constant that says
//!   why it is that long.
//!
//! A line may be exempted with a comment `tidy: allow(<rule>)` on it or on the line before, saying why (e.g. a
//! user-facing hint that shows a query). Comments (`//`, `//!`, `///`) are not checked, and neither is what
//! follows a file's first `#[cfg(test)]` or `#[cfg(all(test, ...))]` (the unit tests at the end of a file).

use std::path::{Path, PathBuf};

/// The library crates: no `unwrap()`/`expect(` outside tests.
const LIBRARIES: &[&str] = &[
    "events",
    "retry",
    "broker",
    "storage",
    "tracker-store",
    "consumer",
    "analytics",
    "server",
];

/// Crates whose code may read the environment: the binary and the dev-only test kit.
const MAY_READ_ENV: &[&str] = &["cli", "testkit"];

/// Crates whose code may name lapin: the broker (its transport) and the dev-only test kit.
const MAY_USE_LAPIN: &[&str] = &["broker", "testkit"];

/// Phrases that only SQL contains.
const SQL_PHRASES: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "CREATE TABLE",
    "CREATE INDEX",
    "CREATE UNIQUE INDEX",
    "DELETE FROM",
    "ALTER TABLE",
    "DROP TABLE",
    "ON CONFLICT",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn crate_dir(name: &str) -> PathBuf {
    workspace().join("crates").join(name)
}

/// The crates under `crates/`, by directory name.
fn crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace().join("crates"))
        .expect("reading crates/")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").exists())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|entry| entry.ok()) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// One line of code that breaks a rule.
struct Finding {
    path: PathBuf,
    line: usize,
    text: String,
}

/// The lines of code of `path` (not comments, not the unit tests at its end) for which `breaks` holds, unless
/// exempted for `rule`.
fn find(path: &Path, rule: &str, breaks: impl Fn(&str) -> bool) -> Vec<Finding> {
    let text = std::fs::read_to_string(path).expect("reading a source file");
    let allow = format!("tidy: allow({rule})");
    let mut findings = Vec::new();
    let mut previous = "";
    for (index, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") || code.starts_with("#[cfg(all(test,") {
            break;
        }
        let exempt = line.contains(&allow) || previous.contains(&allow);
        previous = line;
        if code.starts_with("//") || exempt {
            continue;
        }
        if breaks(code) {
            findings.push(Finding {
                path: path.to_path_buf(),
                line: index + 1,
                text: code.to_owned(),
            });
        }
    }
    findings
}

fn assert_none(rule: &str, why: &str, findings: Vec<Finding>) {
    if findings.is_empty() {
        return;
    }
    let root = workspace();
    let list: Vec<String> = findings
        .iter()
        .map(|finding| {
            let path = finding.path.strip_prefix(&root).unwrap_or(&finding.path);
            format!("  {}:{}: {}", path.display(), finding.line, finding.text)
        })
        .collect();
    panic!(
        "tidy `{rule}`: {why} ({} found; exempt a line with `// tidy: allow({rule})` and the reason):\n{}",
        findings.len(),
        list.join("\n")
    );
}

/// The names in the `[dependencies]` table of a manifest.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("reading a manifest");
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once(['=', '.']) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_events_crate_depends_on_what_architecture_md_lists() {
    let architecture = std::fs::read_to_string(workspace().join("ARCHITECTURE.md"))
        .expect("reading ARCHITECTURE.md");
    let sentence = architecture
        .split("`colloquy-events` does no I/O")
        .nth(1)
        .and_then(|rest| rest.split("depends on ").nth(1))
        .and_then(|rest| rest.split(" only").next())
        .expect("ARCHITECTURE.md says what `colloquy-events` depends on (\"depends on ... only\")");
    let mut listed: Vec<String> = sentence
        .replace(" and ", ", ")
        .split(',')
        .map(|name| name.trim().trim_matches('`').replace('_', "-"))
        .filter(|name| !name.is_empty())
        .collect();
    listed.sort();
    let actual: Vec<String> = dependencies(&crate_dir("events").join("Cargo.toml"))
        .into_iter()
        .map(|name| name.replace('_', "-"))
        .collect();
    assert_eq!(
        actual, listed,
        "crates/events/Cargo.toml [dependencies] against ARCHITECTURE.md's list"
    );
}

#[test]
fn only_the_binary_reads_the_environment() {
    let mut findings = Vec::new();
    for name in crates()
        .iter()
        .filter(|name| !MAY_READ_ENV.contains(&name.as_str()))
    {
        for path in rust_files(&crate_dir(name).join("src")) {
            findings.extend(find(&path, "env", |code| {
                code.contains("std::env") || code.contains("env::var")
            }));
        }
    }
    assert_none(
        "env",
        "only the `colloquy` binary reads environment variables; libraries take typed configuration",
        findings,
    );
}

#[test]
fn no_lapin_outside_the_broker_crate() {
    let mut findings = Vec::new();
    for name in crates()
        .iter()
        .filter(|name| !MAY_USE_LAPIN.contains(&name.as_str()))
    {
        for path in rust_files(&crate_dir(name).join("src")) {
            findings.extend(find(&path, "lapin", |code| code.contains("lapin::")));
        }
        let manifest = crate_dir(name).join("Cargo.toml");
        if dependencies(&manifest)
            .iter()
            .any(|dependency| dependency == "lapin")
        {
            findings.push(Finding {
                path: manifest,
                line: 0,
                text: "lapin in [dependencies]".to_owned(),
            });
        }
    }
    assert_none(
        "lapin",
        "lapin is the broker crate's transport; the others go through `EventBroker` and `Subscription`",
        findings,
    );
}

#[test]
fn no_sql_text_outside_the_storage_crate() {
    let mut findings = Vec::new();
    let mut dirs: Vec<PathBuf> = crates()
        .iter()
        .filter(|name| name.as_str() != "storage" && name.as_str() != "testkit")
        .map(|name| crate_dir(name).join("src"))
        .collect();
    dirs.push(workspace().join("xtask").join("src"));
    for dir in dirs {
        for path in rust_files(&dir) {
            if path.ends_with("tidy.rs") {
                continue;
            }
            findings.extend(find(&path, "sql", |code| {
                SQL_PHRASES.iter().any(|phrase| code.contains(phrase))
            }));
        }
    }
    assert_none("sql", "only crates/storage contains SQL text", findings);
}

#[test]
fn no_unwrap_or_expect_in_library_code() {
    let mut findings = Vec::new();
    for name in LIBRARIES {
        for path in rust_files(&crate_dir(name).join("src")) {
            findings.extend(find(&path, "unwrap", |code| {
                code.contains(".unwrap()") || code.contains(".expect(")
            }));
        }
    }
    assert_none(
        "unwrap",
        "library code returns errors (or says why a case cannot happen without a panic)",
        findings,
    );
}

#[test]
fn no_unnamed_sleeps() {
    let mut findings = Vec::new();
    let mut dirs: Vec<PathBuf> = crates().iter().map(|name| crate_dir(name)).collect();
    dirs.push(workspace().join("xtask").join("src"));
    for dir in dirs {
        // This file's own examples excepted.
        for path in rust_files(&dir)
            .into_iter()
            .filter(|path| !path.ends_with("tidy.rs"))
        {
            findings.extend(find(&path, "sleep", is_unnamed_sleep));
        }
    }
    assert_none(
        "sleep",
        "a pause is a named constant that says why it is that long",
        findings,
    );
}

/// `sleep(Duration::from_millis(50))`, `sleep(std::time::Duration::from_secs(1))`: a literal right inside.
fn is_unnamed_sleep(code: &str) -> bool {
    code.match_indices("sleep(").any(|(at, _)| {
        let rest = &code[at + "sleep(".len()..];
        let rest = rest
            .trim_start_matches("std::time::")
            .trim_start_matches("tokio::time::");
        let Some(rest) = rest.strip_prefix("Duration::from_") else {
            return false;
        };
        rest.split_once('(')
            .is_some_and(|(_, argument)| argument.starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[test]
fn the_sleep_rule_sees_literals_only() {
    assert!(is_unnamed_sleep(
        "tokio::time::sleep(Duration::from_millis(50)).await;"
    ));
    assert!(is_unnamed_sleep(
        "std::thread::sleep(std::time::Duration::from_secs(1));"
    ));
    assert!(!is_unnamed_sleep(
        "tokio::time::sleep(POLL_INTERVAL).await;"
    ));
    assert!(!is_unnamed_sleep(
        "tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;"
    ));
}
