//! The two traits every aggregate implements: [`Aggregate`] (decide and evolve) and
//! [`DomainEvent`] (naming and (de)serialising events for the log).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::DomainError;

/// An event of one aggregate: an externally tagged enum whose variant names are the event types.
pub trait DomainEvent:
    Sized + Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned
{
    /// The event's type name, past tense, e.g. `"ItemCreated"` (the enum variant name).
    fn event_type(&self) -> &'static str;

    /// Every event type of this enum, in declaration order: the variant names serde's derive
    /// records, so a new variant is listed without anyone maintaining a list.
    fn event_types() -> &'static [&'static str] {
        variant_names::<Self>()
    }

    /// Current schema version of this event type's payload. The table lives in
    /// [`crate::upcast::current_schema_version`], beside the upcasters.
    fn schema_version(event_type: &str) -> i32 {
        crate::upcast::current_schema_version(event_type)
    }

    /// Splits the event into its type and payload JSON (the externally tagged enum's single
    /// key and value).
    fn to_parts(&self) -> (&'static str, serde_json::Value) {
        let payload = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .next()
                .map_or(serde_json::Value::Null, |(_, value)| value),
            _ => serde_json::Value::Null,
        };
        (self.event_type(), payload)
    }

    /// Inverse of [`DomainEvent::to_parts`]; fails when the type is unknown or the payload does
    /// not fit it. The payload must be at the current schema version (see
    /// [`DomainEvent::from_stored`]).
    fn from_parts(event_type: &str, payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(event_type.to_owned(), payload);
        serde_json::from_value(serde_json::Value::Object(map))
    }

    /// Reads a stored event of any schema version: upcasts it to the current version, then
    /// deserialises it.
    fn from_stored(
        event_type: &str,
        schema_version: i32,
        payload: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        let (_, payload) = crate::upcast::upcast(event_type, schema_version, payload);
        Self::from_parts(event_type, payload)
    }

    /// [`DomainEvent::from_stored`] for a payload still in its stored JSON text: a payload at
    /// the current version is deserialised straight from the text, without building a
    /// [`serde_json::Value`] first (what a reader of millions of events saves); an older one
    /// is parsed and upcast.
    fn from_stored_json(
        event_type: &str,
        schema_version: i32,
        payload: &str,
    ) -> Result<Self, serde_json::Error> {
        if crate::upcast::needs_upcasting(event_type, schema_version) {
            let payload = serde_json::from_str(payload)?;
            return Self::from_stored(event_type, schema_version, payload);
        }
        // The externally tagged form `{"<type>": <payload>}`, the type escaped as a JSON string.
        let key = serde_json::to_string(event_type)?;
        let mut tagged = String::with_capacity(key.len() + payload.len() + 3);
        tagged.push('{');
        tagged.push_str(&key);
        tagged.push(':');
        tagged.push_str(payload);
        tagged.push('}');
        serde_json::from_str(&tagged)
    }
}

/// An event-sourced aggregate: its state is a fold of its events; `decide` holds every rule.
pub trait Aggregate: Default + Clone + std::fmt::Debug {
    /// Stream type stored in the log: `"user"`, `"workspace"`, `"item"`.
    const STREAM_TYPE: &'static str;
    /// What may be asked of the aggregate.
    type Command;
    /// What the aggregate records.
    type Event: DomainEvent;

    /// Every rule. Pure. Returns the events to append (possibly empty for a no-op change).
    fn decide(
        &self,
        command: Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Self::Event>, DomainError>;

    /// Applies a fact; never fails, never validates.
    fn evolve(self, event: &Self::Event) -> Self;

    /// Folds events, in order, starting from the default (non-existent) state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}

/// The variant names of the enum `E` derives `Deserialize` for, read from what the derive
/// passes to [`serde::Deserializer::deserialize_enum`].
fn variant_names<E: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};

    /// A deserializer that produces nothing: it only records the variants it is asked for.
    struct VariantNames<'a>(&'a mut &'static [&'static str]);

    #[derive(Debug)]
    struct Recorded;

    impl std::fmt::Display for Recorded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("variant names recorded")
        }
    }
    impl std::error::Error for Recorded {}
    impl Error for Recorded {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Recorded
        }
    }

    impl<'de> serde::Deserializer<'de> for VariantNames<'_> {
        type Error = Recorded;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
            Err(Recorded)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Recorded> {
            *self.0 = variants;
            Err(Recorded)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }

    let mut names: &'static [&'static str] = &[];
    // Always an error: the deserializer gives no value, only the names.
    let _ = E::deserialize(VariantNames(&mut names));
    names
}
