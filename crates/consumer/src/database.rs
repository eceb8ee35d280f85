//! The consumer's one seam to storage: [`EventSink`], implemented by the storage layer's
//! [`colloquy_storage::Database`] for every dialect.

use async_trait::async_trait;
use colloquy_storage::{AnalyticsSettings, Database, DeadLetterRow, EventRow};

use crate::error::Result;

/// Where stored events go. One call to [`EventSink::store`] is one transaction (with analytics on PostgreSQL,
/// one per group of whole conversations, all committed before it returns `Ok`; see
/// [`Database::store_batch_with_analytics`]).
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Stores events (skipping those whose `event_id` is stored already) and dead letters in one transaction
    /// (or one per group of conversations, as above); returns how many events were inserted. `Ok` only once
    /// everything committed; after an error, storing the same events again stores each of them once.
    async fn store(&self, events: &[EventRow], dead_letters: &[DeadLetterRow]) -> Result<u64>;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;
    /// Makes the database ready to store (applies the migrations); the consumer calls it before the first
    /// batch, waiting out failures that can pass.
    async fn prepare(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl EventSink for Database {
    async fn store(&self, events: &[EventRow], dead_letters: &[DeadLetterRow]) -> Result<u64> {
        Ok(self.store_batch(events, dead_letters).await?)
    }

    async fn prepare(&self) -> Result<()> {
        Ok(self.migrate(colloquy_storage::Schema::Events).await?)
    }

    async fn ping(&self) -> Result<()> {
        Ok(Database::ping(self).await?)
    }
}

/// A [`Database`] whose batches also keep Rasa Pro's analytics tables (`colloquy consume --analytics`): each
/// batch's conversations are brought up to date in the same transaction as its events
/// ([`Database::store_batch_with_analytics`]), and [`EventSink::prepare`] applies the analytics migrations
/// besides the events schema. Give its consumer [`ConsumerOptions::ANALYTICS_BATCH_SIZE`](crate::ConsumerOptions::ANALYTICS_BATCH_SIZE)
/// as the batch size unless you have a reason for another.
#[derive(Debug, Clone)]
pub struct AnalyticsSink {
    database: Database,
    settings: AnalyticsSettings,
}

impl AnalyticsSink {
    /// Stores into `database`, deriving the analytics rows with `settings`.
    pub fn new(database: Database, settings: AnalyticsSettings) -> Self {
        Self { database, settings }
    }
}

#[async_trait]
impl EventSink for AnalyticsSink {
    async fn store(&self, events: &[EventRow], dead_letters: &[DeadLetterRow]) -> Result<u64> {
        Ok(self
            .database
            .store_batch_with_analytics(events, dead_letters, &self.settings)
            .await?)
    }

    async fn prepare(&self) -> Result<()> {
        self.database
            .migrate(colloquy_storage::Schema::Events)
            .await?;
        Ok(self.database.migrate_analytics().await?)
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.database.ping().await?)
    }
}
