//! colloquy-consumer
