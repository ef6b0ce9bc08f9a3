//! Upcasting: the one place that turns stored payloads of old schema versions into the current
//! shape, before they are deserialised. Each step is a pure function from version `n` to `n + 1`.
//!
//! History:
//! - `UserSignedUp` v1 had no `referred_by`; v2 (current) adds it (`null` for old sign-ups).

use serde_json::Value;

/// The current schema version of `event_type`'s payload (1 unless listed here).
pub fn current_schema_version(event_type: &str) -> i32 {
    match event_type {
        "UserSignedUp" => 2,
        _ => 1,
    }
}

/// Applies upcasters until the payload is at the current version; returns that version and the
/// payload. A version with no upcaster (including a newer, unknown one) is returned unchanged.
pub fn upcast(event_type: &str, schema_version: i32, payload: Value) -> (i32, Value) {
    let mut version = schema_version;
    let mut payload = payload;
    while let Some(step) = upcaster(event_type, version) {
        payload = step(payload);
        version += 1;
    }
    (version, payload)
}

/// Whether a payload of `event_type` at `schema_version` is changed by [`upcast`].
pub fn needs_upcasting(event_type: &str, schema_version: i32) -> bool {
    upcaster(event_type, schema_version).is_some()
}

/// The upcaster from `version` to `version + 1` of `event_type`, if there is one.
fn upcaster(event_type: &str, version: i32) -> Option<fn(Value) -> Value> {
    match (event_type, version) {
        ("UserSignedUp", 1) => Some(user_signed_up_v1_to_v2),
        _ => None,
    }
}

/// `UserSignedUp` v1 → v2: adds `referred_by: null`.
fn user_signed_up_v1_to_v2(mut payload: Value) -> Value {
    if let Value::Object(map) = &mut payload {
        map.entry("referred_by").or_insert(Value::Null);
    }
    payload
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregate::DomainEvent;
    use crate::ids::UserId;
    use crate::user::UserEvent;
    use crate::values::{DisplayName, Email, ReferralCode};

    #[test]
    fn user_signed_up_v1_upcasts_to_v2_and_deserialises() {
        let user_id = UserId::from_uuid(uuid::Uuid::from_u128(7));
        let v1 = json!({
            "user_id": user_id,
            "email": "ada@example.com",
            "display_name": "Ada",
            "referral_code": "ADA123",
        });
        let (version, payload) = upcast("UserSignedUp", 1, v1.clone());
        assert_eq!(version, 2);
        assert_eq!(payload["referred_by"], Value::Null);

        let event = UserEvent::from_stored("UserSignedUp", 1, v1).expect("v1 payload must load");
        let expected = UserEvent::UserSignedUp {
            user_id,
            email: Email::parse("ada@example.com").expect("valid"),
            display_name: DisplayName::parse("Ada").expect("valid"),
            referral_code: ReferralCode::parse("ADA123").expect("valid"),
            referred_by: None,
        };
        assert_eq!(event, expected);
    }

    #[test]
    fn stored_json_text_reads_like_a_stored_value_at_any_version() {
        let user_id = UserId::from_uuid(uuid::Uuid::from_u128(7));
        let v1 = json!({
            "user_id": user_id,
            "email": "ada@example.com",
            "display_name": "Ada \"the\" first",
            "referral_code": "ADA123",
        });
        let (_, v2) = upcast("UserSignedUp", 1, v1.clone());
        for (version, payload) in [(1, v1), (2, v2)] {
            let from_text =
                UserEvent::from_stored_json("UserSignedUp", version, &payload.to_string());
            let from_value = UserEvent::from_stored("UserSignedUp", version, payload);
            assert_eq!(from_text.expect("text"), from_value.expect("value"));
        }
        assert!(needs_upcasting("UserSignedUp", 1));
        assert!(!needs_upcasting("UserSignedUp", 2));
        // A type no variant has is refused, however it is spelt.
        assert!(UserEvent::from_stored_json("Nope\":{}, \"UserRenamed", 1, "{}").is_err());
    }

    #[test]
    fn current_versions_are_reported_by_the_event_trait() {
        assert_eq!(UserEvent::schema_version("UserSignedUp"), 2);
        assert_eq!(UserEvent::schema_version("UserRenamed"), 1);
        assert_eq!(current_schema_version("ItemCreated"), 1);
    }

    #[test]
    fn current_and_unknown_versions_pass_through_unchanged() {
        let payload = json!({"a": 1});
        assert_eq!(
            upcast("UserSignedUp", 2, payload.clone()),
            (2, payload.clone())
        );
        assert_eq!(
            upcast("ItemCreated", 1, payload.clone()),
            (1, payload.clone())
        );
        assert_eq!(upcast("UserSignedUp", 9, payload.clone()), (9, payload));
    }

    #[test]
    fn upcasting_keeps_an_existing_referred_by() {
        let referrer = UserId::from_uuid(uuid::Uuid::from_u128(8));
        let payload = json!({"referred_by": referrer});
        let (_, upcasted) = upcast("UserSignedUp", 1, payload.clone());
        assert_eq!(upcasted, payload);
    }
}
