//! `colloquy migrate`: the schema, the state of the `events` table, and the conversions that run only on
//! request.

use anyhow::Result;
use colloquy_storage::{ConnectOptions, ConversionStep, EventsStatus, Schema, redact};

use crate::cli::MigrateArgs;
use crate::settings::Endpoints;

/// Rows filled per statement by `--convert-event-key`.
const CONVERT_CHUNK_ROWS: i64 = 100_000;

/// Applies the schema migrations, reports the `events` table's state, runs the conversions asked for, and
/// exits.
pub async fn run(args: MigrateArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let (database, url) =
        super::open_database(&args.database, endpoints, &ConnectOptions::default())?;
    database
        .migrate(Schema::Events)
        .await
        .map_err(super::storage_error)?;
    tracing::info!(database = %redact(&url), "Schema is up to date.");
    let status = database
        .events_status()
        .await
        .map_err(super::storage_error)?;
    println!("{}", describe(&status));
    if args.convert_event_key {
        println!("Converting to the compact dedupe key (event_key); consumers may keep running.");
        let steps = database
            .convert_event_key(CONVERT_CHUNK_ROWS, &|filled| {
                tracing::info!(filled, "Filled event_key of stored rows.");
            })
            .await
            .map_err(super::storage_error)?;
        report(&steps);
    }
    if args.convert_ids {
        println!(
            "Widening id to BIGINT: the table is rewritten under an exclusive lock; writers wait until it is done."
        );
        let steps = database.convert_ids().await.map_err(super::storage_error)?;
        report(&steps);
    }
    if args.convert_event_key || args.convert_ids {
        let status = database
            .events_status()
            .await
            .map_err(super::storage_error)?;
        println!("{}", describe(&status));
    }
    database.close().await;
    Ok(())
}

fn report(steps: &[ConversionStep]) {
    for step in steps {
        println!("  {} in {:.1} s", step.what, step.took.as_secs_f64());
    }
}

/// The table's state in a few lines: rows and size, the id's headroom, the dedupe index, and what a
/// conversion would change.
fn describe(status: &EventsStatus) -> String {
    let mut lines = vec![format!(
        "events: about {} rows{}",
        status.rows,
        status
            .bytes
            .map(|bytes| format!(", {:.1} MiB with indexes", bytes as f64 / 1_048_576.0))
            .unwrap_or_default()
    )];
    lines.push(format!(
        "id: {}-bit, last id {} of {} ({:.4}% used, {} left)",
        status.id_bits,
        status.last_id,
        status.id_limit(),
        status.id_used_percent(),
        status.id_limit() - status.last_id
    ));
    if status.id_bits == 32 {
        lines.push(
            "  the int4 id runs out at 2,147,483,647 events: `colloquy migrate --convert-ids` widens it to BIGINT"
                .to_owned(),
        );
    }
    lines.push(if status.compact_key {
        "dedupe: unique index on the 16-byte event_key".to_owned()
    } else {
        "dedupe: unique index on the event_id text".to_owned()
    });
    if !status.legacy_indexes.is_empty() {
        lines.push(format!(
            "  indexes a converted table does without: {}; `colloquy migrate --convert-event-key` converts",
            status.legacy_indexes.join(", ")
        ));
    }
    lines.join("\n")
}
