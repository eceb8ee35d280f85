//! Deterministic row ids: UUID version 5 (RFC 9562, SHA-1) over what a row describes, so that deriving the
//! same events again — incrementally or in a rebuild, on any machine — gives the same ids.

use sha1::{Digest, Sha1};
use uuid::{Builder, Uuid};

/// The namespace of every id this crate makes (a fixed, random UUID).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6c0f_4a51_9d2e_4b7a_a3c8_51e0_7f3d_2b96);

/// The UUID v5 of `parts` in [`NAMESPACE`]; each part is length-prefixed so that no two lists of parts
/// share a name (`["ab", "c"]` and `["a", "bc"]` differ).
pub fn uuid_of(parts: &[&str]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(NAMESPACE.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Builder::from_sha1_bytes(bytes).into_uuid().to_string()
}

/// The id of the row of `table` that describes the thing at `position` of conversation `sender_key`.
pub(crate) fn at_position(table: &str, sender_key: &str, position: u64) -> String {
    uuid_of(&[table, sender_key, &position.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_5_stable_and_injective() {
        let id = uuid_of(&["rasa_sender", "alice"]);
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
        assert_eq!(id, uuid_of(&["rasa_sender", "alice"]));
        assert_ne!(uuid_of(&["ab", "c"]), uuid_of(&["a", "bc"]));
        assert_ne!(
            at_position("rasa_event", "a", 1),
            at_position("rasa_event", "a", 2)
        );
        assert_ne!(
            at_position("rasa_event", "a", 1),
            at_position("rasa_turn", "a", 1)
        );
    }
}
