//! colloquy-tracker-store
