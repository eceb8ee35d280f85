//! `cargo xtask`: Colloquy's development tasks, everything that is not plain cargo.
//!
//! - `cargo xtask ci` — format check, clippy (`-D warnings`, all targets), then every test.
//! - `cargo xtask services` — makes sure the local RabbitMQ and PostgreSQL answer, starting them if needed.
//! - `cargo xtask bench [events|broker|tracker-store|consumer]...` — the benchmarks (all when none is named).
//! - `cargo xtask demo` — the newcomer's tour: consume, import a sample, print a summary.
//!
//! It keeps few dependencies on purpose: it only runs commands.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("services") => services(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                 fmt check, clippy -D warnings, all tests (needs RabbitMQ and PostgreSQL)\n  \
                 services           start the local RabbitMQ and PostgreSQL if they do not answer\n  \
                 bench [NAME]...    run benchmarks: events, broker, tracker-store, consumer (default: all)\n  \
                 demo               run the consumer, import sample conversations, print a summary"
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
    services()?;
    cargo(&["test", "--workspace", "--all-features"])
}

fn bench(names: &[String]) -> Result<()> {
    const ALL: [&str; 4] = ["events", "broker", "tracker-store", "consumer"];
    let names: Vec<&str> = if names.is_empty() {
        ALL.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    for name in names {
        if !ALL.contains(&name) {
            bail!("unknown benchmark {name:?}: choose from {ALL:?}");
        }
        if name != "events" {
            services()?;
        }
        cargo(&["bench", "--package", &format!("colloquy-{name}")])?;
    }
    Ok(())
}

fn demo() -> Result<()> {
    services_rabbitmq()?;
    cargo(&["run", "--release", "--package", "colloquy", "--", "demo"])
}

/// Starts RabbitMQ and PostgreSQL when they do not answer on their local ports, then waits for them.
fn services() -> Result<()> {
    services_rabbitmq()?;
    ensure_service(
        "PostgreSQL",
        5432,
        "sh",
        &[
            "-c",
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start",
        ],
    )
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
        std::thread::sleep(Duration::from_millis(250));
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo).args(args))
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
