//! Rasa's topology, declared at every (re)connect so that Rasa and Colloquy can share one broker: a fanout
//! exchange, non-durable and not auto-delete; queues bound to it with routing key `""`.
//!
//! A queue that exists is used as it is — classic or quorum, with whatever arguments the operator gave it
//! (`x-max-length`, `x-dead-letter-exchange`, `x-single-active-consumer`, ...): it is only checked passively
//! and bound. A queue that does not exist is declared durable, not exclusive, not auto-delete, as Rasa does,
//! classic or quorum as configured ([`QueueType`]).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::config::{AmqpConfig, AmqpName, QueueType};
use crate::error::{Error, Result, channel_error};

const EXCHANGE_AS: &str = "a fanout exchange, non-durable, not auto-delete";

/// Declares the exchange and every queue, and binds them. A declaration refused because the exchange exists
/// with other properties is [`Error::Topology`]; the channel is closed by the broker then.
pub(crate) async fn declare(
    connection: &Connection,
    channel: &Channel,
    config: &AmqpConfig,
) -> Result<()> {
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
        if !exists(connection, queue).await? {
            declare_queue(channel, queue, config.queue_type()).await?;
        }
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

/// Whether `queue` exists, asked with a passive declare on a channel of its own (RabbitMQ closes the channel
/// that asks about a missing queue).
async fn exists(connection: &Connection, queue: &AmqpName) -> Result<bool> {
    let probe = connection
        .create_channel()
        .await
        .map_err(|e| channel_error("opening a channel", e))?;
    let declared = probe
        .queue_declare(
            queue.short(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(_) => {
            let _ = probe.close(200, "OK".into()).await;
            Ok(true)
        }
        // 404 NOT_FOUND: RabbitMQ closed the probe channel.
        Err(e) if protocol_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(channel_error("checking whether a queue exists", e)),
    }
}

async fn declare_queue(channel: &Channel, queue: &AmqpName, queue_type: QueueType) -> Result<()> {
    let mut arguments = FieldTable::default();
    let expected = match queue_type {
        QueueType::Classic => "a durable queue, not exclusive, not auto-delete, without arguments",
        QueueType::Quorum => {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from(queue_type.as_str())),
            );
            "a durable quorum queue"
        }
    };
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
            arguments,
        )
        .await
        .map(drop)
        .map_err(|e| topology_error(format!("queue `{queue}`"), expected, e))
}

/// The AMQP reply code of a channel or connection closed by the broker, if that is what `error` is.
pub(crate) fn protocol_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

fn topology_error(object: String, expected: &'static str, error: lapin::Error) -> Error {
    // 406 PRECONDITION_FAILED (inequivalent arguments) and 403 ACCESS_REFUSED are answers about the object; any
    // other failure is the channel or connection going away.
    if matches!(protocol_code(&error), Some(403 | 406)) {
        Error::Topology {
            object,
            expected,
            source: Box::new(error),
        }
    } else {
        channel_error("declaring the topology", error)
    }
}
