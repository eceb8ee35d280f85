//! Issue 9's "Loses events", at the storage level, with a really full disk: a batch is `Ok` only after a
//! COMMIT that returned success, and a connection whose COMMIT or ROLLBACK failed is discarded, never
//! reused. Every batch that returned `Ok` must be in the database when it is opened afresh, and no batch that
//! failed may be there in part.

use std::path::{Path, PathBuf};
use std::process::Command;

use colloquy_storage::{ConnectOptions, Database, EventRow, Schema};
use colloquy_testkit::unique_name;

use crate::fixture::row;

/// A small tmpfs mounted for one test, unmounted (and its mount point removed) when dropped.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`2m`) on a new directory. Needs root, as CI and the dev machines run tests.
    pub fn mount(size: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name("colloquy-tmpfs"));
        std::fs::create_dir(&dir).expect("creating a mount point");
        let tmpfs = Self { dir };
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
                tmpfs.path(),
            ],
        );
        tmpfs
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().expect("a UTF-8 temp dir")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, in case a test that failed still holds a file open on it.
        let unmounted = Command::new("umount").args(["-l", self.path()]).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            eprintln!("could not unmount {}", self.path());
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("running {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed (the full-disk tests mount a tmpfs and need root): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Fills `path` with `bytes` bytes (or as many as fit).
pub fn fill(path: &Path, bytes: usize) {
    let _ = std::fs::write(path, vec![0x5a; bytes]);
}

/// Batch `n`: 20 events of about 1 KB each in conversation `b{n}`.
pub fn batch(n: usize) -> Vec<EventRow> {
    (0..20)
        .map(|i| {
            let mut row = row(
                &format!("b{n}"),
                &format!("b{n}-{i}"),
                "bot",
                Some(n as f64),
            );
            row.data = format!(
                r#"{{"event": "bot", "text": "{}", "n": {n}, "i": {i}}}"#,
                "x".repeat(1000)
            );
            row
        })
        .collect()
}

/// What became of each batch a test tried to store.
#[derive(Default, Debug)]
pub struct Outcomes {
    pub ok: Vec<usize>,
    pub failed: Vec<usize>,
}

impl Outcomes {
    /// Stores batch `n` on `db`, records the outcome; returns whether it was `Ok`.
    pub async fn store(&mut self, db: &Database, n: usize, what: &str) -> bool {
        let outcome = db.store_batch(&batch(n), &[]).await;
        self.record(n, what, outcome)
    }

    /// Like [`Outcomes::store`], with a dead letter in every other batch (a multi-statement transaction).
    pub async fn store_alternating(&mut self, db: &Database, n: usize, what: &str) -> bool {
        if n.is_multiple_of(2) {
            return self.store(db, n, what).await;
        }
        let letter = colloquy_storage::DeadLetterRow {
            source: "q".into(),
            body: vec![0; 512],
            properties: "{}".into(),
            error: format!("batch {n}"),
        };
        let outcome = db.store_batch(&batch(n), &[letter]).await;
        self.record(n, what, outcome)
    }

    fn record(&mut self, n: usize, what: &str, outcome: colloquy_storage::Result<u64>) -> bool {
        match outcome {
            Ok(inserted) => {
                assert_eq!(inserted, 20, "{what}: batch {n} is new");
                self.ok.push(n);
                true
            }
            Err(error) => {
                assert!(
                    error.is_transient(),
                    "{what}: a full disk is transient: {error:?}"
                );
                eprintln!("{what}: batch {n}: {}", error);
                self.failed.push(n);
                false
            }
        }
    }

    /// Checks, on a database opened afresh, that every `Ok` batch is there whole and no failed one in part.
    pub async fn check(&self, db: &Database, what: &str) {
        for &n in &self.ok {
            let ids: Vec<String> = batch(n).iter().filter_map(|r| r.event_id.clone()).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let found = db.count_stored_ids(&format!("b{n}"), &ids).await.unwrap();
            assert_eq!(
                found, 20,
                "{what}: batch {n} returned Ok but {found} of its 20 events are stored"
            );
        }
        for &n in &self.failed {
            let found = db.count_events(&format!("b{n}")).await.unwrap();
            assert!(
                found == 0,
                "{what}: batch {n} failed but {found} of its 20 events are stored"
            );
        }
    }
}

/// SQLite on a 2 MB tmpfs: store until the disk is full, free space, store on, and every acknowledged batch
/// is in the file when it is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_acknowledges_only_committed_batches() {
    let what = "SQLite on a full tmpfs";
    let tmpfs = Tmpfs::mount("2m");
    let filler = tmpfs.dir.join("filler");
    // Half the disk: in WAL mode the events sit in the WAL until a checkpoint copies them into the database
    // file, so storing resumes only once as much space is free as the WAL holds.
    fill(&filler, 1024 * 1024);
    let url = format!("sqlite://{}/events.db", tmpfs.path());
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    db.migrate(Schema::Events).await.unwrap();

    let mut outcomes = Outcomes::default();
    let mut n = 0;
    // Until the disk is full: a few failures in a row. Bounded: 2 MB hold about 40 batches, and batches that
    // return Ok without reaching the file (the old behaviour) are caught by the checks below.
    let mut failures_in_a_row = 0;
    while failures_in_a_row < 5 && n < 200 {
        if outcomes.store(&db, n, what).await {
            failures_in_a_row = 0;
        } else {
            failures_in_a_row += 1;
        }
        n += 1;
    }
    let full = outcomes.ok.len();
    eprintln!("{what}: full: {}", sizes(&tmpfs.dir));

    // Space comes back: storing goes on, on the same pool. A few batches, not so many that the disk fills up
    // again before another writer tries.
    std::fs::remove_file(&filler).unwrap();
    let mut stored_after = 0;
    for _ in 0..30 {
        if outcomes.store(&db, n, what).await {
            stored_after += 1;
        }
        n += 1;
        if stored_after == 5 {
            break;
        }
    }
    // No write transaction was left open: another writer (another process) can write.
    let other = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    let mut other_outcomes = Outcomes::default();
    let other_stored = other_outcomes.store(&other, 10_000, what).await;
    other.close().await;
    db.close().await;

    let reopened = Database::connect_lazy(&url, &ConnectOptions::read_only()).unwrap();
    outcomes.check(&reopened, what).await;
    other_outcomes.check(&reopened, what).await;
    reopened.close().await;
    eprintln!(
        "{what}: {full} batches Ok before the disk filled, {} failed, {stored_after} Ok after space was freed",
        outcomes.failed.len()
    );
    assert!(!outcomes.failed.is_empty(), "{what}: the disk filled up");
    assert!(
        stored_after > 0,
        "{what}: batches are stored again once space is freed: {outcomes:?}"
    );
    assert!(other_stored, "{what}: another writer is not locked out");
}

/// The files in `dir` and their sizes, for messages.
pub fn sizes(dir: &Path) -> String {
    let mut entries: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    let len = entry.metadata().map_or(0, |m| m.len());
                    format!("{} {len}", entry.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries.join(", ")
}

/// PostgreSQL's programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A private PostgreSQL cluster for one test (never the shared server: filling its disk is destructive),
/// with a tablespace on a small tmpfs. Stopped, unmounted and removed when dropped.
struct PrivateCluster {
    data: PathBuf,
    port: u16,
    /// The tmpfs that holds the tablespace (dropped after the cluster is stopped).
    tmpfs: Tmpfs,
}

impl PrivateCluster {
    /// initdb (as user `postgres`) in a temporary directory, started on a free port.
    fn start(tmpfs_size: &str) -> Self {
        let tmpfs = Tmpfs::mount(tmpfs_size);
        let data = std::env::temp_dir().join(unique_name("colloquy-pg"));
        std::fs::create_dir(&data).expect("creating the cluster's directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self { data, port, tmpfs };
        run(
            "chown",
            &["postgres:postgres", cluster.data(), cluster.tmpfs.path()],
        );
        as_postgres(
            "initdb",
            &[
                "-D",
                cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB",
            cluster.data()
        );
        let log = format!("{}/log", cluster.data());
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                cluster.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        cluster
    }

    fn data(&self) -> &str {
        self.data.to_str().expect("a UTF-8 temp dir")
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{PG_BIN}/pg_ctl"),
                "-D",
                self.data(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
        // `self.tmpfs` is unmounted after this, once nothing uses it.
    }
}

fn as_postgres(program: &str, args: &[&str]) {
    let program = format!("{PG_BIN}/{program}");
    let mut all = vec!["-u", "postgres", "--", program.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all);
}

/// PostgreSQL with its tables in a full tablespace: the same rule and the same checks as for SQLite. Batches
/// alternate between the one-statement path and the transaction path (a batch with a dead letter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_a_full_tablespace_acknowledges_only_committed_batches() {
    let what = "PostgreSQL with a full tablespace";
    let cluster = PrivateCluster::start("2m");
    let tablespace = cluster.tmpfs.dir.join("tablespace");
    std::fs::create_dir(&tablespace).unwrap();
    run(
        "chown",
        &["postgres:postgres", tablespace.to_str().unwrap()],
    );
    let filler = cluster.tmpfs.dir.join("filler");
    fill(&filler, 768 * 1024);
    {
        let admin = Database::connect(&cluster.url("postgres"), &ConnectOptions::default(), 5)
            .await
            .unwrap();
        admin.close().await;
    }
    let setup = format!(
        "CREATE TABLESPACE small LOCATION '{}'; CREATE DATABASE colloquy; \
         ALTER DATABASE colloquy SET default_tablespace = small;",
        tablespace.display()
    );
    for statement in setup.split("; ") {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let url = cluster.url("colloquy");
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    db.migrate(Schema::Events).await.unwrap();

    let mut outcomes = Outcomes::default();
    let mut n = 0;
    let mut failures_in_a_row = 0;
    while failures_in_a_row < 5 && n < 400 {
        if outcomes.store_alternating(&db, n, what).await {
            failures_in_a_row = 0;
        } else {
            failures_in_a_row += 1;
        }
        n += 1;
    }
    let full = outcomes.ok.len();
    eprintln!("{what}: full: {}", sizes(&cluster.tmpfs.dir));
    std::fs::remove_file(&filler).unwrap();
    let mut stored_after = 0;
    for _ in 0..30 {
        if outcomes.store_alternating(&db, n, what).await {
            stored_after += 1;
        }
        n += 1;
        if stored_after == 5 {
            break;
        }
    }
    db.close().await;
    let reopened = Database::connect_lazy(&url, &ConnectOptions::read_only()).unwrap();
    outcomes.check(&reopened, what).await;
    reopened.close().await;
    eprintln!(
        "{what}: {full} batches Ok before the tablespace filled, {} failed, {stored_after} Ok after space was freed",
        outcomes.failed.len()
    );
    assert!(
        !outcomes.failed.is_empty(),
        "{what}: the tablespace filled up"
    );
    assert!(
        stored_after > 0,
        "{what}: batches are stored again once space is freed: {outcomes:?}"
    );
}
