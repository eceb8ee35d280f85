//! Fault injection on the shared local servers, in one place: stop, start and restart RabbitMQ's application,
//! the PostgreSQL cluster and the MariaDB server, and a guard that starts a server again when a test ends,
//! however it ends.
//!
//! These faults touch servers other tests use: a test that injects them holds its own process-wide lock so that
//! it runs alone within its binary, keeps the outage short, and keeps a [`Restorer`] alive across it. Faults
//! that last (full disks, alarms, killed processes) belong on a private instance instead
//! ([`PrivatePostgres`](crate::PrivatePostgres), [`PrivateRabbitMq`](crate::PrivateRabbitMq), the tracker
//! stores' private `redis-server`).

use std::process::Command;

/// How long a restarted MariaDB server is given to answer, in tenths of a second polled by the shell.
const MARIADB_START_POLLS: u32 = 300;

/// A shared local server that a fault test may stop, start or restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalServer {
    /// RabbitMQ's application (`rabbitmqctl stop_app` / `start_app`): the node stays up, AMQP goes away.
    RabbitMq,
    /// The Debian PostgreSQL cluster `main` (`pg_ctlcluster`).
    Postgres,
    /// The MariaDB server, through its own tools (the Debian init script cannot stop a server it did not
    /// start): `mariadb-admin shutdown`, then `mariadbd-safe` in a session of its own.
    MariaDb,
}

/// What to do to a [`LocalServer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stop it.
    Stop,
    /// Start it if it is not running (a no-op when it is).
    Start,
    /// Stop it and start it again.
    Restart,
}

impl LocalServer {
    /// Runs `action` on the server and waits until it is done; panics with the tool's output when it fails.
    pub fn run(self, action: Action) {
        let output = self
            .command(action)
            .output()
            .unwrap_or_else(|error| panic!("cannot run the tools of {self:?}: {error}"));
        assert!(
            output.status.success(),
            "{action:?} {self:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A guard that starts the server again when dropped: keep it alive across the fault.
    pub fn restorer(self) -> Restorer {
        Restorer(self)
    }

    fn command(self, action: Action) -> Command {
        let mut command = Command::new("sh");
        let script = match self {
            Self::RabbitMq => match action {
                Action::Stop => "rabbitmqctl stop_app".to_owned(),
                Action::Start => "rabbitmqctl start_app && rabbitmqctl await_startup".to_owned(),
                Action::Restart => {
                    "rabbitmqctl stop_app && rabbitmqctl start_app && rabbitmqctl await_startup"
                        .to_owned()
                }
            },
            Self::Postgres => {
                let cluster = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n1) main";
                match action {
                    Action::Stop => format!("{cluster} stop"),
                    Action::Start => format!("{cluster} status >/dev/null 2>&1 || {cluster} start"),
                    Action::Restart => format!("{cluster} restart"),
                }
            }
            Self::MariaDb => {
                let start = format!(
                    "if ! mariadb-admin -uroot ping >/dev/null 2>&1; then \
                     (setsid mariadbd-safe --user=mysql >/dev/null 2>&1 &); \
                     for i in $(seq {MARIADB_START_POLLS}); do mariadb-admin -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done; \
                     mariadb-admin -uroot ping >/dev/null 2>&1; fi"
                );
                match action {
                    Action::Stop => "mariadb-admin -uroot shutdown".to_owned(),
                    Action::Start => start,
                    Action::Restart => format!("mariadb-admin -uroot shutdown && {start}"),
                }
            }
        };
        command.arg("-c").arg(script);
        command
    }
}

/// Starts its [`LocalServer`] again when dropped (if it is not running), so that a failing fault test leaves
/// the shared server up for the others.
#[must_use = "the server is restored when the guard drops"]
pub struct Restorer(LocalServer);

impl Drop for Restorer {
    fn drop(&mut self) {
        let restored = self.0.command(Action::Start).status();
        if !restored.is_ok_and(|status| status.success()) {
            eprintln!("could not start {:?} again after the test", self.0);
        }
    }
}
