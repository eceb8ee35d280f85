//! Rasa's topology, declared at every (re)connect so that Rasa and Colloquy can share one broker: a fanout
//! exchange, non-durable and not auto-delete; durable queues, not exclusive, not auto-delete, without
//! arguments, bound to the exchange with routing key `""`.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use crate::config::AmqpConfig;
use crate::error::{Error, Result, channel_error};

const EXCHANGE_AS: &str = "a fanout exchange, non-durable, not auto-delete";
const QUEUE_AS: &str = "a durable queue, not exclusive, not auto-delete, without arguments";

/// Declares the exchange and every queue, and binds them. A declaration refused because the object exists with
/// other properties is [`Error::Topology`]; the channel is closed by the broker then.
pub(crate) async fn declare(channel: &Channel, config: &AmqpConfig) -> Result<()> {
    let exchange = config.exchange();
    channel
        .exchange_declare(
            exchange.short(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: false,
                durable: false,
                auto_delete: false,
                internal: false,
                nowait: false,
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| topology_error(format!("exchange `{exchange}`"), EXCHANGE_AS, e))?;
    for queue in config.queues() {
        channel
            .queue_declare(
                queue.short(),
                QueueDeclareOptions {
                    passive: false,
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    nowait: false,
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| topology_error(format!("queue `{queue}`"), QUEUE_AS, e))?;
        channel
            .queue_bind(
                queue.short(),
                exchange.short(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| channel_error("binding a queue to the exchange", e))?;
    }
    Ok(())
}

fn topology_error(object: String, expected: &'static str, error: lapin::Error) -> Error {
    // 406 PRECONDITION_FAILED (inequivalent arguments) and 403 ACCESS_REFUSED are answers about the object; any
    // other failure is the channel or connection going away.
    let refused = matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if matches!(amqp.get_id(), 403 | 406));
    if refused {
        Error::Topology {
            object,
            expected,
            source: Box::new(error),
        }
    } else {
        channel_error("declaring the topology", error)
    }
}
