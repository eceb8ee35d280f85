//! A private MariaDB server for tests that break the database (restart it): `mariadb-install-db` in a temporary
//! directory, `mariadbd` on a free local port and a socket of its own, killed and removed when dropped. The
//! shared server on 3306 is never touched.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server is given to accept connections (InnoDB's first start takes a few seconds).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server is given to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The database the tests use on the private server.
const DATABASE: &str = "test";
/// How often a starting or stopping server is looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A MariaDB server of one test's own, served on `127.0.0.1:`[`PrivateMariaDb::port`] (user `root`, no
/// password) once [`PrivateMariaDb::start`]ed. Dropping it kills the server and deletes its directory, also
/// when the test fails.
#[derive(Debug)]
pub struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    server_args: Vec<String>,
    server: Option<Child>,
}

impl PrivateMariaDb {
    /// Creates the data directory with `mariadb-install-db` in a new temporary directory and picks a free port.
    /// The server is not started yet. Panics, saying what is missing, when MariaDB is not installed.
    pub fn init() -> Self {
        let dir = std::env::temp_dir().join(crate::unique_name("colloquy-private-mariadb"));
        let server = Self {
            dir,
            port: crate::free_port(),
            server_args: Vec::new(),
            server: None,
        };
        std::fs::create_dir_all(server.tmp()).expect("creating the private MariaDB's directory");
        let output = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", server.data().display()))
            .arg(format!("--tmpdir={}", server.tmp().display()))
            .args(server.user_option())
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run mariadb-install-db ({error}): a private MariaDB needs the mariadb-server \
                     package"
                )
            });
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        server
    }

    /// Starts the server with `args` besides its own (e.g. `--sql-mode=` for a server that is not strict).
    pub fn with_server_args(mut self, args: &[&str]) -> Self {
        self.server_args = args.iter().map(|arg| (*arg).to_owned()).collect();
        self
    }

    /// The port the server is served on (once started).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the database `test` on this server (created by [`PrivateMariaDb::start`]), as `root` without
    /// a password.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Starts `mariadbd`, waits (bounded) until it accepts connections and creates the database `test` if it
    /// is not there; panics with the server's error log when it does not start.
    pub fn start(&mut self) {
        assert!(self.server.is_none(), "the private MariaDB runs already");
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--tmpdir={}", self.tmp().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.dir.join("mariadbd.sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", self.log().display()))
            .args(self.user_option())
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=32M"])
            .args(&self.server_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run mariadbd ({error}): a private MariaDB needs the mariadb-server package")
            });
        self.server = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if TcpStream::connect_timeout(&address, POLL_INTERVAL).is_ok() {
                break;
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the private MariaDB did not start ({exited:?}); its log:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
        let output = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-h127.0.0.1"])
            .arg(format!("-P{}", self.port))
            .arg("-e")
            .arg(format!(
                "CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4"
            ))
            .output()
            .expect("running the mariadb client");
        assert!(
            output.status.success(),
            "creating the private MariaDB's database failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Shuts the server down (SIGTERM: connections are closed) and waits (bounded) until it has exited.
    pub fn stop(&mut self) {
        let mut child = self.server.take().expect("the private MariaDB runs");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "cannot signal the private MariaDB"
        );
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child
            .try_wait()
            .expect("waiting for the private MariaDB")
            .is_none()
        {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the private MariaDB did not stop within {STOP_TIMEOUT:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's own directory for temporary files. In the shared `/tmp`, a bootstrap once failed on a
    /// temporary table file gone before it deleted it (`Error on delete of '/tmp/#sql-temptable-...'`) while
    /// other tests' servers ran.
    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("mariadbd.err")
    }

    /// `--user=root` when this process is root (mariadbd refuses to run as root without it), else nothing.
    fn user_option(&self) -> Option<&'static str> {
        is_root().then_some("--user=root")
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}
