//! Redis test support: a key prefix of its own per test, whose keys are deleted when the guard drops (also
//! when the test fails), and a private `redis-server` for the tests that break it.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use colloquy_tracker_store::RedisConfig;

/// How often a private redis-server being started is asked whether it answers.
const PING_INTERVAL: Duration = Duration::from_millis(50);

/// A unique alphanumeric Rasa `key_prefix` on a Redis; deletes every key of it on drop.
pub struct Prefix {
    pub url: String,
    /// Rasa's `key_prefix` (alphanumeric).
    pub name: String,
}

impl Default for Prefix {
    fn default() -> Self {
        Self::new()
    }
}

impl Prefix {
    /// A fresh prefix on the shared test Redis.
    pub fn new() -> Self {
        Self::on(&crate::redis_url())
    }

    /// A fresh prefix on the Redis at `url`.
    pub fn on(url: &str) -> Self {
        let name = crate::unique_name("t").replace('-', "");
        Self {
            url: url.to_owned(),
            name,
        }
    }

    /// The store's settings: this prefix, a short relay idle check.
    pub fn config(&self) -> RedisConfig {
        let mut config = RedisConfig::from_url(&self.url)
            .expect("a Redis URL")
            .with_key_prefix(Some(&self.name));
        config.relay.idle_check = Duration::from_millis(200);
        config.relay.max_retry_delay = Duration::from_millis(500);
        config
    }

    /// The full prefix of the tracker keys (`<name>:tracker:`).
    pub fn keys(&self) -> String {
        format!("{}:tracker:", self.name)
    }

    /// A plain connection for looking at and changing keys behind the store's back.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection())
            .expect("a Redis connection")
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys = self.keys();
        for pattern in [
            format!("{keys}*"),
            format!("colloquy:meta:{keys}*"),
            format!("colloquy:outbox:{keys}"),
            format!("colloquy:relay:{keys}"),
        ] {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !found.is_empty() {
                let _: redis::RedisResult<u64> = redis::cmd("DEL").arg(&found).query(&mut conn);
            }
        }
    }
}

/// A private `redis-server` on a free port, persisting every write (`appendfsync always`) in a directory of
/// its own; killed and its directory removed on drop.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(crate::unique_name("colloquy-redis"));
        std::fs::create_dir_all(&dir).expect("a directory for the private Redis");
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.run();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on the same port and directory, and waits until it answers.
    pub fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running redis-server (is Redis installed?)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answered = redis::Client::open(self.url().as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
                .is_ok();
            if answered {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the private redis-server did not answer on port {} within 30 s",
                self.port
            );
            std::thread::sleep(PING_INTERVAL);
        }
    }

    /// Kills the server (SIGKILL: a crash) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
