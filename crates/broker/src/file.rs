//! [`FileBroker`]: Rasa's `FileEventBroker` format, one Rasa JSON body plus `\n` per line, append-only. Brokers
//! of one process writing the same file share one writer, so lines never interleave.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use async_trait::async_trait;
use colloquy_events::StampedEnvelope;

use crate::EventBroker;
use crate::error::{Error, Result};

/// Rasa's default file name.
pub const DEFAULT_EVENT_LOG: &str = "rasa_event.log";

type SharedWriter = Arc<Mutex<BufWriter<File>>>;
type Writers = Mutex<HashMap<PathBuf, Weak<Mutex<BufWriter<File>>>>>;

/// The writers open in this process, by canonical path (why: two brokers appending to one file through two
/// buffered writers could split each other's lines).
fn writers() -> &'static Writers {
    static WRITERS: OnceLock<Writers> = OnceLock::new();
    WRITERS.get_or_init(Mutex::default)
}

/// Appends events to a file in Rasa's `FileEventBroker` format. Writes are buffered; [`EventBroker::flush`]
/// writes them out and syncs the file. The file I/O runs on Tokio's blocking threads, never on a runtime worker.
#[derive(Debug)]
pub struct FileBroker {
    path: PathBuf,
    writer: Mutex<Option<SharedWriter>>,
}

impl FileBroker {
    /// Opens (creating it if needed) `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let write_error = |source| Error::WriteFile {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(write_error)?;
        let canonical = path.canonicalize().map_err(write_error)?;
        let mut writers = writers().lock().unwrap_or_else(PoisonError::into_inner);
        writers.retain(|_, writer| writer.strong_count() > 0);
        let writer = match writers.get(&canonical).and_then(Weak::upgrade) {
            Some(writer) => writer,
            None => {
                let writer = Arc::new(Mutex::new(BufWriter::new(file)));
                writers.insert(canonical, Arc::downgrade(&writer));
                writer
            }
        };
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> Result<SharedWriter> {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)
    }

    /// Runs `io` on the shared writer in a blocking thread (a write or an fsync must not stall a runtime
    /// worker), mapping its error to [`Error::WriteFile`].
    async fn with_writer(
        &self,
        io: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()> + Send + 'static,
    ) -> Result<()> {
        let writer = self.writer()?;
        let done = tokio::task::spawn_blocking(move || {
            io(&mut writer.lock().unwrap_or_else(PoisonError::into_inner))
        })
        .await
        .unwrap_or_else(|join| Err(std::io::Error::other(join)));
        done.map_err(|source| Error::WriteFile {
            path: self.path.clone(),
            source,
        })
    }

    async fn write_lines(&self, events: &[StampedEnvelope]) -> Result<()> {
        let mut lines = String::new();
        for event in events {
            lines.push_str(&event.envelope.to_rasa_json());
            lines.push('\n');
        }
        self.with_writer(move |writer| writer.write_all(lines.as_bytes()))
            .await
    }
}

#[async_trait]
impl EventBroker for FileBroker {
    async fn publish(&self, event: StampedEnvelope) -> Result<()> {
        self.write_lines(std::slice::from_ref(&event)).await
    }

    async fn publish_batch(&self, events: Vec<StampedEnvelope>) -> Result<()> {
        self.write_lines(&events).await
    }

    async fn flush(&self) -> Result<()> {
        self.with_writer(|writer| writer.flush().and_then(|()| writer.get_ref().sync_data()))
            .await
    }

    async fn close(&self) -> Result<()> {
        if self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Ok(());
        }
        let flushed = self.flush().await;
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        flushed
    }

    fn is_ready(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}
