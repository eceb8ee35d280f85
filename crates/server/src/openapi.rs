//! The OpenAPI 3 description served at `/api/openapi.json`, written by hand (one document, no generator
//! dependency): every `/api` endpoint and Rasa's three tracker endpoints.

use serde_json::{Value, json};

/// A query parameter.
fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description,
            "schema": { "type": kind } })
}

/// A path parameter.
fn path(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": { "type": kind } })
}

/// A JSON answer with a schema reference.
fn answer(description: &str, schema: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// The whole document.
pub(crate) fn document() -> Value {
    let error = answer("An error: `{\"error\": \"...\"}`", "Error");
    let rasa_error = answer("Rasa's error body", "RasaError");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Colloquy server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Colloquy's JSON API over a Rasa events database, and Rasa 3.6's tracker endpoints. \
                With --auth-token every request needs the token (`?token=`, `Authorization: Bearer`, or the \
                `colloquy_token` cookie set by a request that carried `?token=`); writes need the query token or \
                the bearer header."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "query": { "type": "apiKey", "in": "query", "name": "token" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "colloquy_token" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "RasaError": { "type": "object", "properties": {
                    "version": { "type": "string" }, "status": { "type": "string", "enum": ["failure"] },
                    "message": { "type": "string" }, "reason": { "type": "string" },
                    "details": { "type": "object" }, "help": { "type": "string", "nullable": true },
                    "code": { "type": "integer" } } },
                "Server": { "type": "object", "properties": {
                    "version": { "type": "string" }, "auth": { "type": "boolean" }, "writes": { "type": "boolean" },
                    "analytics": { "type": "boolean" },
                    "dialect": { "type": "string", "enum": ["postgres", "mysql", "sqlite"] },
                    "consumer_metrics": { "type": "boolean" } } },
                "Conversation": { "type": "object", "properties": {
                    "sender_id": { "type": "string" },
                    "first_activity": { "type": "number", "nullable": true },
                    "last_activity": { "type": "number", "nullable": true },
                    "events": { "type": "integer" },
                    "channel": { "type": "string", "nullable": true },
                    "last_text": { "type": "string", "nullable": true },
                    "intents": { "type": "array", "items": { "type": "string" } },
                    "fallback": { "type": "boolean" } } },
                "Conversations": { "type": "object", "properties": {
                    "conversations": { "type": "array", "items": { "$ref": "#/components/schemas/Conversation" } },
                    "matches": { "type": "integer" },
                    "next_cursor": { "type": "string", "nullable": true } } },
                "Events": { "type": "object", "properties": {
                    "sender_id": { "type": "string" }, "total": { "type": "integer" },
                    "events": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "integer" }, "type": { "type": "string" },
                        "timestamp": { "type": "number", "nullable": true },
                        "event": { "type": "object", "description": "the event's JSON as stored" } } } },
                    "next_after": { "type": "integer", "nullable": true } } },
                "DeadLetter": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "received_at": { "type": "string" }, "source": { "type": "string" },
                    "error": { "type": "string" }, "body_len": { "type": "integer" },
                    "preview": { "type": "string" }, "sender_id": { "type": "string", "nullable": true } } },
                "DeadLetterFull": { "allOf": [ { "$ref": "#/components/schemas/DeadLetter" }, { "type": "object",
                    "properties": { "body": { "type": "string" }, "body_base64": { "type": "string" },
                        "properties": { "type": "object" } } } ] },
                "DeadLetters": { "type": "object", "properties": {
                    "dead_letters": { "type": "array", "items": { "$ref": "#/components/schemas/DeadLetter" } },
                    "next_after": { "type": "integer", "nullable": true } } },
                "Metrics": { "type": "object", "properties": {
                    "available": { "type": "boolean" },
                    "sessions_per_day": { "type": "array", "items": { "type": "object", "properties": {
                        "day": { "type": "string" }, "sessions": { "type": "integer" } } } },
                    "sessions_per_channel": { "type": "array", "items": { "type": "object", "properties": {
                        "channel": { "type": "string", "nullable": true }, "sessions": { "type": "integer" } } } },
                    "top_intents": { "type": "array", "items": { "type": "object", "properties": {
                        "intent": { "type": "string" }, "count": { "type": "integer" } } } },
                    "turns_per_session": { "type": "array", "items": { "type": "object", "properties": {
                        "turns": { "type": "integer" }, "sessions": { "type": "integer" } } } },
                    "senders": { "type": "integer" },
                    "average_bot_response_seconds": { "type": "number", "nullable": true },
                    "rates": { "type": "object", "properties": {
                        "escalation": { "type": "number", "nullable": true },
                        "abandonment": { "type": "number", "nullable": true },
                        "containment": { "type": "number", "nullable": true },
                        "fallback": { "type": "number", "nullable": true } } } } },
                "Consumer": { "type": "object", "properties": {
                    "available": { "type": "boolean" },
                    "role": { "type": "string", "enum": ["active", "standby"], "nullable": true },
                    "events_per_second": { "type": "number", "nullable": true },
                    "events_total": { "type": "integer", "nullable": true } } },
                "Tracker": { "type": "object", "description": "Rasa 3.6's tracker state (`DialogueStateTracker.current_state`)" },
                "Event": { "type": "object", "description": "One Rasa event (`{\"event\": \"user\", ...}`)" }
            }
        },
        "security": [ { "bearer": [] }, { "query": [] }, { "cookie": [] } ],
        "paths": {
            "/api/server": { "get": { "summary": "What this server offers",
                "responses": { "200": answer("The server", "Server"), "401": error } } },
            "/api/conversations": { "get": {
                "summary": "Conversations, latest activity first, filtered, a page at a time",
                "parameters": [
                    query("limit", "integer", "Page size (default 50, at most 500)"),
                    query("cursor", "string", "The next_cursor of the previous page"),
                    query("since", "number", "Last activity at or after (unix seconds)"),
                    query("until", "number", "Last activity at or before (unix seconds)"),
                    query("channel", "string", "Input channel"),
                    query("intent", "string", "An intent of a user message"),
                    query("action", "string", "An action that ran"),
                    query("slot", "string", "A slot that was set"),
                    query("min_events", "integer", "At least this many events"),
                    query("confidence_below", "number", "Some user message's intent confidence is below"),
                    query("text", "string", "A substring of a user or bot message (case-insensitive)"),
                    query("fallback", "boolean", "true: a fallback happened; false: none did")
                ],
                "responses": { "200": answer("A page", "Conversations"), "400": error, "401": error } } },
            "/api/conversations/{sender_id}/events": { "get": {
                "summary": "A conversation's events in stored order, a page at a time",
                "parameters": [
                    path("sender_id", "string", "The conversation"),
                    query("after", "integer", "The row id after which the page starts (next_after)"),
                    query("limit", "integer", "Page size (default 200, at most 1000)")
                ],
                "responses": { "200": answer("A page", "Events"), "404": error, "401": error } } },
            "/api/conversations/{sender_id}/dead-letters": { "get": {
                "summary": "Dead letters whose body names this conversation",
                "parameters": [ path("sender_id", "string", "The conversation") ],
                "responses": { "200": answer("The dead letters", "DeadLetters"), "401": error } } },
            "/api/dead-letters": { "get": {
                "summary": "Dead letters, oldest first, a page at a time",
                "parameters": [
                    query("after", "integer", "The id after which the page starts (next_after)"),
                    query("limit", "integer", "Page size (default 100, at most 500)")
                ],
                "responses": { "200": answer("A page", "DeadLetters"), "401": error } } },
            "/api/dead-letters/{id}": { "get": {
                "summary": "One dead letter with its whole body and properties",
                "parameters": [ path("id", "integer", "The dead letter") ],
                "responses": { "200": answer("The dead letter", "DeadLetterFull"), "404": error, "401": error } } },
            "/api/dead-letters/{id}/requeue": { "post": {
                "summary": "Publish the dead letter to the queue it came from, then delete it (needs the token as ?token= or bearer)",
                "security": [ { "bearer": [] }, { "query": [] } ],
                "parameters": [ path("id", "integer", "The dead letter") ],
                "responses": {
                    "200": { "description": "`{\"requeued\": id}`" },
                    "401": error, "403": error, "404": error,
                    "502": error,
                    "503": error } } },
            "/api/metrics": { "get": { "summary": "The analytics metrics (when the analytics tables exist)",
                "responses": { "200": answer("The metrics, or {\"available\": false}", "Metrics"), "401": error } } },
            "/api/consumer": { "get": { "summary": "The consumer's live figures, scraped from --consumer-metrics",
                "responses": { "200": answer("The figures, or {\"available\": false}", "Consumer"), "401": error } } },
            "/api/openapi.json": { "get": { "summary": "This document",
                "responses": { "200": { "description": "OpenAPI 3" } } } },
            "/conversations/{conversation_id}/tracker": { "get": {
                "summary": "Rasa: a conversation's tracker",
                "parameters": [
                    path("conversation_id", "string", "The conversation"),
                    { "name": "include_events", "in": "query", "required": false,
                      "schema": { "type": "string", "enum": ["ALL", "APPLIED", "AFTER_RESTART", "NONE"], "default": "AFTER_RESTART" } },
                    query("until", "number", "Only events up to this timestamp")
                ],
                "responses": { "200": answer("The tracker", "Tracker"), "400": rasa_error, "401": rasa_error, "403": rasa_error, "500": rasa_error } } },
            "/conversations/{conversation_id}/tracker/events": {
                "post": {
                    "summary": "Rasa: append one event or a list (saved through the tracker store and streamed through the broker)",
                    "parameters": [
                        path("conversation_id", "string", "The conversation"),
                        { "name": "include_events", "in": "query", "required": false,
                          "schema": { "type": "string", "enum": ["ALL", "APPLIED", "AFTER_RESTART", "NONE"] } }
                    ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "oneOf": [
                        { "$ref": "#/components/schemas/Event" },
                        { "type": "array", "items": { "$ref": "#/components/schemas/Event" } } ] } } } },
                    "responses": { "200": answer("The tracker", "Tracker"), "400": rasa_error, "401": rasa_error, "403": rasa_error, "500": rasa_error } },
                "put": {
                    "summary": "Rasa: replace the conversation's events",
                    "parameters": [
                        path("conversation_id", "string", "The conversation"),
                        { "name": "include_events", "in": "query", "required": false,
                          "schema": { "type": "string", "enum": ["ALL", "APPLIED", "AFTER_RESTART", "NONE"] } }
                    ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "array", "items": { "$ref": "#/components/schemas/Event" } } } } },
                    "responses": { "200": answer("The tracker", "Tracker"), "400": rasa_error, "401": rasa_error, "403": rasa_error, "500": rasa_error } } }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described() {
        let document = super::document();
        let paths = document["paths"].as_object().expect("paths");
        for path in [
            "/api/server",
            "/api/conversations",
            "/api/conversations/{sender_id}/events",
            "/api/conversations/{sender_id}/dead-letters",
            "/api/dead-letters",
            "/api/dead-letters/{id}",
            "/api/dead-letters/{id}/requeue",
            "/api/metrics",
            "/api/consumer",
            "/api/openapi.json",
            "/conversations/{conversation_id}/tracker",
            "/conversations/{conversation_id}/tracker/events",
        ] {
            assert!(paths.contains_key(path), "{path}");
        }
    }
}
