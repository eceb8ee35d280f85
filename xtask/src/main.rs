//! `cargo xtask`: Colloquy's development tasks, everything that is not plain cargo.
//!
//! - `cargo xtask ci` — format check, clippy (`-D warnings`, all targets), each library crate checked with its
//!   default features, with none and PostgreSQL-only, then every test (the examples registered as tests too, and
//!   the tidy tests of `tidy.rs`: ARCHITECTURE.md's invariants, checked on the source text), then
//!   `rasa-compat`. Before the tests it installs Debian's `chromium` and `chromium-driver` when missing (the
//!   server's browser tests drive them).
//! - `cargo xtask services` — makes sure the local RabbitMQ, PostgreSQL and Redis answer, starting them if
//!   needed.
//! - `cargo xtask bench [events|broker|tracker-store|consumer|serve]... [--prefill N[,M...]]` — the benchmarks (all
//!   when none is named); `--prefill` runs the consumer's growth curve instead of its usual bench: the drain
//!   into a table that already holds 0, N, M... events, generated inside PostgreSQL (`BENCH_PREFILL`).
//! - `cargo xtask demo` — the newcomer's tour: consume, import a sample, print a summary.
//! - `cargo xtask rasa-compat [PYTEST ARGS]` — the suite that runs genuine Rasa 3.6.21 against us
//!   (`compat/rasa/README.md`), in a venv under `target/rasa-venv`.
//!
//! It keeps few dependencies on purpose: it only runs commands.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[cfg(test)]
mod tidy;

/// How often `services` asks a service it started whether it answers yet.
const SERVICE_POLL: Duration = Duration::from_millis(250);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("services") => services(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("rasa-compat") => rasa_compat(&args[1..], true),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                 fmt check, clippy -D warnings, all tests (needs RabbitMQ, PostgreSQL, MariaDB, Redis)\n  \
                 services           start the local RabbitMQ, PostgreSQL, MariaDB and Redis if they do not answer\n  \
                 bench [NAME]... [--prefill N[,M...]]\n                    run benchmarks: events, broker, tracker-store, consumer (default: all), serve (only when named);\n                    --prefill: the consumer's drain rate into tables already holding N, M... events\n  \
                 demo               run the consumer, import sample conversations, print a summary\n  \
                 rasa-compat [ARGS] run Rasa 3.6.21's own code against us (pytest compat/rasa; ARGS go to pytest)"
            );
            std::process::exit(2)
        }
    }
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    check_feature_sets()?;
    services()?;
    browser_for_tests()?;
    let tests = cargo(&["test", "--workspace", "--all-features", "--no-fail-fast"]);
    // Then the suite against genuine Rasa 3.6.21 on every dialect (its venv is reused while
    // compat/rasa/requirements.txt is unchanged), whatever the Rust tests gave: CI reports both.
    let compat = rasa_compat(&[], false);
    tests?;
    compat
}

/// Each library crate compiles with its default features, with none, and as a PostgreSQL-only user builds it
/// (no SQLite, MySQL, Redis or YAML). `cargo check` only, sharing the workspace's artefacts: quick.
fn check_feature_sets() -> Result<()> {
    const LIBRARIES: [&str; 5] = [
        "colloquy-events",
        "colloquy-broker",
        "colloquy-storage",
        "colloquy-tracker-store",
        "colloquy-consumer",
    ];
    for package in LIBRARIES {
        cargo(&["check", "--quiet", "--package", package])?;
        cargo(&[
            "check",
            "--quiet",
            "--package",
            package,
            "--no-default-features",
        ])?;
    }
    for package in [
        "colloquy-storage",
        "colloquy-tracker-store",
        "colloquy-consumer",
    ] {
        cargo(&[
            "check",
            "--quiet",
            "--package",
            package,
            "--no-default-features",
            "--features",
            "postgres",
        ])?;
    }
    // The promise to a PostgreSQL-only user: no bundled SQLite, no MySQL or Redis client, no YAML parser.
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let tree = Command::new(cargo_bin)
        .args([
            "tree",
            "--package",
            "colloquy-tracker-store",
            "--no-default-features",
        ])
        .args([
            "--features",
            "postgres",
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .context("could not run cargo tree")?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    for unwanted in [
        "libsqlite3-sys",
        "sqlx-sqlite",
        "sqlx-mysql",
        "redis",
        "serde_norway",
    ] {
        if tree
            .lines()
            .any(|line| line.starts_with(&format!("{unwanted} ")))
        {
            bail!("colloquy-tracker-store with only `postgres` depends on {unwanted}");
        }
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    const ALL: [&str; 4] = ["events", "broker", "tracker-store", "consumer"];
    let mut names = Vec::new();
    let mut prefill = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if let Some(value) = arg.strip_prefix("--prefill=") {
            prefill = Some(value.to_owned());
        } else if arg == "--prefill" {
            prefill = Some(
                rest.next()
                    .context("--prefill needs a row count, e.g. --prefill 10000000")?
                    .clone(),
            );
        } else {
            names.push(arg.clone());
        }
    }
    if let Some(sizes) = &prefill {
        if sizes.split(',').any(|n| n.trim().parse::<u64>().is_err()) {
            bail!(
                "--prefill takes row counts separated by commas, e.g. 1000000,10000000: {sizes:?}"
            );
        }
        // The growth curve is the consumer's: `--prefill` alone means that bench.
        if names.is_empty() {
            names.push("consumer".to_owned());
        }
    }
    let names: Vec<&str> = if names.is_empty() {
        ALL.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    for name in names {
        // `serve` fills 1M events per dialect: only when named.
        if name == "serve" {
            services()?;
            cargo(&["bench", "--package", "colloquy-server", "--bench", "serve"])?;
            continue;
        }
        if !ALL.contains(&name) {
            bail!("unknown benchmark {name:?}: choose from {ALL:?} or serve");
        }
        if name != "events" {
            services()?;
        }
        let package = format!("colloquy-{name}");
        match (&prefill, name) {
            (Some(sizes), "consumer") => run(Command::new(cargo_program())
                .args(["bench", "--package", &package, "--bench", "drain"])
                .env("BENCH_PREFILL", sizes))?,
            _ => cargo(&["bench", "--package", &package])?,
        }
    }
    Ok(())
}

/// The demo itself finds RabbitMQ, starts the local one if needed, or says how to get one; extra arguments go
/// to `colloquy demo` (e.g. `cargo xtask demo --amqp-url URL`).
fn demo(extra: &[String]) -> Result<()> {
    let mut args = vec!["run", "--release", "--package", "colloquy", "--", "demo"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

/// The Rasa compatibility suite: a venv with Rasa 3.6.21 (its wheel, `--no-deps`) and the pinned packages
/// of `compat/rasa/requirements.txt`, the Rust binaries the tests drive (release builds; with `release`
/// false, as in `ci`, the debug ones `cargo test` built), then pytest. The venv is reused as it
/// is while the requirements are unchanged, and rebuilt from scratch when they change (a stamp file holds the
/// ones it was built from).
fn rasa_compat(pytest_args: &[String], release: bool) -> Result<()> {
    const RASA: &str = "rasa==3.6.21";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the workspace")?;
    let venv = root.join("target/rasa-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("compat/rasa/requirements.txt");
    let wanted = format!("{RASA}\n{}", std::fs::read_to_string(&requirements)?);
    let stamp = venv.join("colloquy-requirements.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("xtask: building the Rasa venv in {}", venv.display());
        let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        // From scratch: a package dropped from the requirements must not linger and hide a missing one.
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove the old venv {}", venv.display()))?;
        }
        run(Command::new(&system_python).args(["-m", "venv"]).arg(&venv))
            .context("cannot create the venv: needs Python >= 3.10 with the venv module")?;
        let wheels = root.join("target/rasa-wheels");
        let pip = |args: &[&str]| {
            run(Command::new(&python).args(["-m", "pip", "--disable-pip-version-check"]).args(args))
                .context(
                    "pip failed. It needs PyPI (https://pypi.org) or a mirror named by PIP_INDEX_URL; if \
                     the log above shows connection errors, PyPI is not reachable from this machine",
                )
        };
        // Rasa 3.6.21 declares python <3.11 but is pure Python: fetch the wheel as if for 3.10.
        pip(&[
            "download",
            RASA,
            "--no-deps",
            "--ignore-requires-python",
            "--python-version",
            "3.10",
            "--only-binary=:all:",
            "--quiet",
            "-d",
            &wheels.to_string_lossy(),
        ])?;
        pip(&["install", "--quiet", "-r", &requirements.to_string_lossy()])?;
        pip(&[
            "install",
            "--quiet",
            "--no-deps",
            "--ignore-requires-python",
            "--no-index",
            "--find-links",
            &wheels.to_string_lossy(),
            RASA,
        ])?;
        std::fs::write(&stamp, &wanted)?;
    }
    services()?;
    let mut pytest = Command::new(&python);
    if release {
        build_compat_binaries_release();
    } else {
        // The binaries `cargo test --workspace` just built (debug): no second, release build in CI.
        for (variable, path) in [
            ("COLLOQUY_BIN", "target/debug/colloquy"),
            ("RASA_BYTES_BIN", "target/debug/examples/rasa_bytes"),
            ("MARKERS_BIN", "target/debug/examples/markers"),
        ] {
            pytest.env(variable, root.join(path));
        }
    }
    run(pytest
        .args(["-m", "pytest", "-c"])
        .arg(root.join("compat/rasa/pytest.ini"))
        .arg("--rootdir")
        .arg(root.join("compat/rasa"))
        .arg(root.join("compat/rasa"))
        .args(pytest_args)
        .current_dir(root))
}

/// The release binaries the compat suite drives (`cargo xtask rasa-compat`).
fn build_compat_binaries_release() {
    for (package, kind, name) in [
        ("colloquy-events", "--example", "rasa_bytes"),
        ("colloquy-analytics", "--example", "markers"),
        ("colloquy", "--bin", "colloquy"),
    ] {
        if let Err(error) = cargo(&["build", "--release", "--package", package, kind, name]) {
            // The tests that need a missing binary fail with a message naming it; the others still run.
            eprintln!("xtask: warning: {error:#}; the tests that run `{name}` will fail");
        }
    }
}

/// Starts RabbitMQ, PostgreSQL and Redis when they do not answer on their local ports, then waits for them.
fn services() -> Result<()> {
    services_rabbitmq()?;
    // The shared test Redis keeps nothing on disk; tests that need persistence start their own server.
    ensure_service(
        "Redis",
        6379,
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    )?;
    ensure_service(
        "PostgreSQL",
        5432,
        "sh",
        &[
            "-c",
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start",
        ],
    )?;
    // The Debian init script cannot stop a server it did not start; the server's own wrapper starts it either
    // way, detached from this process.
    ensure_service(
        "MariaDB",
        3306,
        "sh",
        &[
            "-c",
            "(setsid mariadbd-safe --user=mysql >/dev/null 2>&1 &)",
        ],
    )
}

/// The server's browser tests (`crates/server/tests/browser.rs`) drive Debian's headless Chromium through
/// chromedriver: installs both with apt-get when either is missing (CI runs as root on Debian).
fn browser_for_tests() -> Result<()> {
    let present = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if present("chromium") && present("chromedriver") {
        return Ok(());
    }
    eprintln!(
        "xtask: chromium or chromedriver is missing; installing Debian's chromium and chromium-driver"
    );
    run(Command::new("apt-get").arg("update"))
        .and_then(|()| {
            run(Command::new("apt-get")
                .args(["install", "-y", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive"))
        })
        .context("could not install chromium and chromium-driver, which the browser tests need: install them (`apt-get install chromium chromium-driver`)")
}

fn services_rabbitmq() -> Result<()> {
    ensure_service("RabbitMQ", 5672, "rabbitmq-server", &["-detached"])?;
    // The port opens before the broker accepts work; `await_startup` waits for the application itself.
    run(Command::new("rabbitmqctl").args(["--timeout", "120", "await_startup"]))
        .context("RabbitMQ did not finish starting")
}

fn ensure_service(name: &str, port: u16, program: &str, args: &[&str]) -> Result<()> {
    if port_answers(port) {
        return Ok(());
    }
    eprintln!(
        "xtask: {name} does not answer on 127.0.0.1:{port}; starting it with `{program} {}`",
        args.join(" ")
    );
    run(Command::new(program).args(args)).with_context(|| {
        format!(
            "could not start {name}: install it, or point the tests at one with its URL variable"
        )
    })?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !port_answers(port) {
        if Instant::now() > deadline {
            bail!("{name} was started but does not answer on 127.0.0.1:{port} after 120 s");
        }
        std::thread::sleep(SERVICE_POLL);
    }
    Ok(())
}

fn port_answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(cargo_program()).args(args))
}

fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
