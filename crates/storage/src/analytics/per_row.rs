//! SQLite and MySQL/MariaDB: one statement per row (`?` placeholders in column order), one conversation
//! after the other. Instantiated once per dialect by `per_row_dialect!`.

/// Defines `write_rows` and `catch_up` for a dialect whose statements take one row.
macro_rules! per_row_dialect {
    ($folder:literal, $db:ty, $conn:ty, $args:ty) => {
        use colloquy_analytics::rows::EventColumns;
        use colloquy_analytics::{Rows, Settings};
        use sqlx::Row;
        use sqlx::query::Query;

        use super::{ActivePatterns, AnalyticsProgress, MarkerRow, State, marker_rows};

        macro_rules! statement {
            ($name:literal) => {
                include_str!(concat!("../../sql/analytics/", $folder, "/", $name, ".sql"))
            };
        }

        type Q<'q> = Query<'q, $db, $args>;

        fn event_columns<'q>(query: Q<'q>, id: &'q str, e: &'q EventColumns) -> Q<'q> {
            query
                .bind(id)
                .bind(e.sender_id.as_str())
                .bind(e.session_id.as_str())
                .bind(e.event_id.as_str())
                .bind(e.timestamp)
                .bind(e.model_id.as_deref())
                .bind(e.sequence_number as i64)
        }

        /// Writes `rows`, one statement per row.
        pub(crate) async fn write_rows(conn: &mut $conn, rows: &Rows) -> Result<(), sqlx::Error> {
            for r in &rows.senders {
                sqlx::query(statement!("upsert_rasa_sender"))
                    .bind(r.id.as_str())
                    .bind(r.sender_key.as_str())
                    .bind(r.channel.as_deref())
                    .bind(r.first_seen)
                    .bind(r.last_seen)
                    .execute(&mut *conn)
                    .await?;
            }
            for r in &rows.sessions {
                sqlx::query(statement!("upsert_rasa_session"))
                    .bind(r.id.as_str())
                    .bind(r.sender_id.as_str())
                    .bind(r.timestamp)
                    .bind(r.start_sequence_number as i64)
                    .bind(r.end_sequence_number as i64)
                    .execute(&mut *conn)
                    .await?;
            }
            for r in &rows.turns {
                sqlx::query(statement!("upsert_rasa_turn"))
                    .bind(r.id.as_str())
                    .bind(r.sender_id.as_str())
                    .bind(r.session_id.as_str())
                    .bind(r.start_sequence_number as i64)
                    .bind(r.end_sequence_number as i64)
                    .execute(&mut *conn)
                    .await?;
            }
            for r in &rows.events {
                sqlx::query(statement!("insert_rasa_event"))
                    .bind(r.id.as_str())
                    .bind(r.sender_id.as_str())
                    .bind(r.session_id.as_str())
                    .bind(r.timestamp)
                    .bind(r.model_id.as_deref())
                    .bind(r.environment.as_deref())
                    .bind(r.sequence_number as i64)
                    .bind(r.event_type.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            for r in &rows.user_messages {
                event_columns(
                    sqlx::query(statement!("insert_rasa_user_message")),
                    &r.id,
                    &r.event,
                )
                .bind(r.intent.as_deref())
                .bind(r.retrieval_intent.as_deref())
                .bind(r.confidence)
                .bind(r.text.as_deref())
                .bind(r.message_id.as_deref())
                .execute(&mut *conn)
                .await?;
            }
            for r in &rows.bot_messages {
                event_columns(
                    sqlx::query(statement!("insert_rasa_bot_message")),
                    &r.id,
                    &r.event,
                )
                .bind(r.template_name.as_deref())
                .bind(r.text.as_deref())
                .execute(&mut *conn)
                .await?;
            }
            for r in &rows.actions {
                event_columns(
                    sqlx::query(statement!("insert_rasa_action")),
                    &r.id,
                    &r.event,
                )
                .bind(r.name.as_deref())
                .bind(r.confidence)
                .bind(r.policy.as_deref())
                .execute(&mut *conn)
                .await?;
            }
            for r in &rows.slots {
                event_columns(sqlx::query(statement!("insert_rasa_slot")), &r.id, &r.event)
                    .bind(r.slot_path.as_str())
                    .bind(r.name.as_str())
                    .bind(r.value.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            for r in &rows.session_slot_states {
                sqlx::query(statement!("upsert_rasa_session_slot_state"))
                    .bind(r.id.as_str())
                    .bind(r.sender_id.as_str())
                    .bind(r.session_id.as_str())
                    .bind(r.name.as_str())
                    .bind(r.value.as_str())
                    .bind(r.timestamp)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// Writes one `rasa_marker` row (once).
        async fn write_marker(conn: &mut $conn, row: &MarkerRow) -> Result<(), sqlx::Error> {
            sqlx::query(statement!("insert_rasa_marker"))
                .bind(row.id.as_str())
                .bind(row.pattern_id.as_str())
                .bind(row.sender_id.as_str())
                .bind(row.session_id.as_str())
                .bind(row.event_id.as_str())
                .bind(row.num_preceding_user_turns)
                .bind(row.created_at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// Writes the patterns of an upload in the caller's transaction: every pattern inactive, then each of
        /// `patterns` inserted or updated, active.
        pub(crate) async fn upload_patterns(
            conn: &mut $conn,
            patterns: &[colloquy_analytics::markers::Pattern],
        ) -> Result<(), sqlx::Error> {
            sqlx::query(statement!("deactivate_patterns"))
                .execute(&mut *conn)
                .await?;
            for pattern in patterns {
                sqlx::query(statement!("upsert_rasa_pattern"))
                    .bind(pattern.id.as_str())
                    .bind(pattern.name.as_str())
                    .bind(pattern.description.as_deref())
                    .bind(pattern.config.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// Brings the analytics tables of `senders` up to date with their events, in the caller's
        /// transaction, one conversation after the other.
        pub(crate) async fn catch_up(
            conn: &mut $conn,
            senders: &[&str],
            settings: &Settings,
        ) -> Result<AnalyticsProgress, sqlx::Error> {
            let mut progress = AnalyticsProgress::default();
            let patterns: Vec<(String, String)> = sqlx::query(statement!("select_active_patterns"))
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|row| (row.get(0), row.get(2)))
                .collect();
            let patterns = ActivePatterns::of(patterns)?;
            for sender in senders {
                progress.conversations += 1;
                let stored: Option<(String, i64)> = sqlx::query(statement!("select_state"))
                    .bind(*sender)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| (row.get(0), row.get(1)));
                let mut state = State::read(sender, stored)?;
                let events: Vec<(i64, Option<String>)> =
                    sqlx::query(statement!("select_new_events"))
                        .bind(*sender)
                        .bind(state.last_row_id)
                        .fetch_all(&mut *conn)
                        .await?
                        .into_iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect();
                if events.is_empty() {
                    continue;
                }
                let first_new = state.conversation.next_position();
                let rows = state.apply(settings, &events)?;
                progress.events += rows.events.len() as u64;
                write_rows(conn, &rows).await?;
                if let Some(patterns) = &patterns {
                    let all: Vec<(i64, Option<String>)> =
                        sqlx::query(statement!("select_conversation_events"))
                            .bind(*sender)
                            .fetch_all(&mut *conn)
                            .await?
                            .into_iter()
                            .map(|row| (row.get(0), row.get(1)))
                            .collect();
                    for marker in marker_rows(patterns, sender, &all, first_new)? {
                        write_marker(conn, &marker).await?;
                    }
                }
                sqlx::query(statement!("upsert_state"))
                    .bind(*sender)
                    .bind(state.conversation.to_json())
                    .bind(state.last_row_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(progress)
        }
    };
}

pub(crate) use per_row_dialect;
