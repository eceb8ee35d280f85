//! A private PostgreSQL cluster for tests that break the database (stop it, make it read-only): `initdb` in a
//! temporary directory, served on a free local port, stopped and removed when dropped. The shared server is
//! never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A PostgreSQL cluster of one test's own. Created stopped; [`PrivatePostgres::start`] serves it on
/// `127.0.0.1:`[`PrivatePostgres::port`] (trust authentication, user `postgres`). Dropping it stops the server
/// and deletes its directory, also when the test fails.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// Runs `initdb` in a new temporary directory and picks a free port. Panics, saying what is missing, when
    /// PostgreSQL's server binaries are not installed.
    pub fn init() -> Self {
        let bin = server_binaries();
        let dir = std::env::temp_dir().join(crate::unique_name("colloquy-private-pg"));
        let cluster = Self {
            dir,
            port: free_port(),
            bin,
        };
        cluster.run_as_server_user("mkdir", &["-p", &cluster.dir.display().to_string()]);
        let data = cluster.data().display().to_string();
        let initdb = cluster.bin.join("initdb").display().to_string();
        cluster.run_as_server_user(
            &initdb,
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        );
        cluster
    }

    /// The port the cluster is served on (once started).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` in this cluster, as user `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&["start", "-w", "-t", "60", "-o", &options]);
    }

    /// Stops the server (fast shutdown: sessions are disconnected) and waits until it is down.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-w", "-t", "60", "-m", "fast"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let data = self.data().display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log];
        all.extend_from_slice(args);
        self.run_as_server_user(&pg_ctl, &all);
    }

    /// Runs `program` as the `postgres` user when this process is root (PostgreSQL refuses to run as root),
    /// else as ourselves; panics with its output and the server log when it fails.
    fn run_as_server_user(&self, program: &str, args: &[&str]) -> Output {
        let output = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--", program])
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        }
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
        output
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data();
        let stop = |command: &mut Command| {
            let _ = command
                .args(["-D".as_ref(), data.as_os_str()])
                .args(["stop", "-w", "-m", "immediate"])
                .output();
        };
        if is_root() {
            stop(
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&pg_ctl),
            );
        } else {
            stop(&mut Command::new(&pg_ctl));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
fn server_binaries() -> PathBuf {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .max_by_key(|bin| {
            bin.parent()
                .and_then(Path::file_name)
                .and_then(|version| version.to_str()?.parse::<u32>().ok())
        });
    if let Some(bin) = installed {
        return bin;
    }
    let bindir = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|bin| bin.join("initdb").exists());
    bindir.expect(
        "a private PostgreSQL cluster needs PostgreSQL's server binaries (initdb, pg_ctl): install the \
         postgresql package (they land in /usr/lib/postgresql/<version>/bin)",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}
