//! A private RabbitMQ node for the tests that break the broker (stop its application, restart it): its own
//! node name, ports, data, logs and Erlang cookie in a temporary directory, so that the shared node on 5672,
//! which other tests use at the same time, is never touched.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// The RabbitMQ installation's scripts (the `/usr/sbin` wrappers switch to the `rabbitmq` user and its
/// cookie; these run as the caller, with the private node's `HOME`).
const SBIN: &str = "/usr/lib/rabbitmq/bin";

/// A RabbitMQ node of one test, started by [`PrivateRabbitMq::start`] and stopped and deleted when dropped
/// (also when the test panicked).
#[derive(Debug)]
pub struct PrivateRabbitMq {
    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub url: String,
    node: String,
    dir: PathBuf,
    port: u16,
    dist_port: u16,
}

impl PrivateRabbitMq {
    /// Starts a node on free ports and waits (bounded) until it accepts connections. Panics, saying why,
    /// when RabbitMQ is not installed or does not start.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(crate::unique_name("colloquy-rabbitmq"));
        std::fs::create_dir_all(dir.join("home")).expect("creating the node's directory");
        let (port, dist_port) = (free_port(), free_port());
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("writing enabled_plugins");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("writing rabbitmq.conf");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("writing rabbitmq-env.conf");
        let node = Self {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            node: format!(
                "{}@localhost",
                crate::unique_name("colloquy-test").replace('-', "_")
            ),
            dir,
            port,
            dist_port,
        };
        let output = node
            .command("rabbitmq-server")
            .arg("-detached")
            .output()
            .expect("running rabbitmq-server (is RabbitMQ installed?)");
        assert!(
            output.status.success(),
            "rabbitmq-server -detached failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // `wait` waits for the pid file, then for the node to start (`await_startup` fails at once while the
        // new node is not registered yet).
        let pid_file = node.dir.join("pid");
        node.ctl(&["wait", &pid_file.to_string_lossy(), "--timeout", "120"]);
        node
    }

    /// Runs `rabbitmqctl` against this node; panics with its output when it fails.
    pub fn ctl(&self, args: &[&str]) {
        let output = self
            .command("rabbitmqctl")
            .args(["-n", &self.node])
            .args(args)
            .output()
            .expect("running rabbitmqctl");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} on {} failed: {}{}",
            self.node,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn command(&self, script: &str) -> Command {
        let mut command = Command::new(format!("{SBIN}/{script}"));
        command
            .current_dir(&self.dir)
            .env("ERL_CRASH_DUMP", self.dir.join("erl_crash.dump"))
            .env("HOME", self.dir.join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        command
    }
}

impl Drop for PrivateRabbitMq {
    fn drop(&mut self) {
        let _ = self
            .command("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now (the OS's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
