//! Global opaque IDs: `base64url("Kind:uuid")`, so an id names its kind and can't be mistaken
//! for another entity's.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::ApiError;

/// The kinds of entity with a global id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Workspace,
    Item,
    Invite,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Workspace => "Workspace",
            Kind::Item => "Item",
            Kind::Invite => "Invite",
        }
    }

    fn entity(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Workspace => "workspace",
            Kind::Item => "item",
            Kind::Invite => "invite",
        }
    }
}

/// The global id of an entity.
pub fn encode(kind: Kind, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.prefix())))
}

/// The uuid behind a global id of `kind`. Garbage is `BAD_USER_INPUT`; a well-formed id of
/// another kind is `NOT_FOUND` (there is no such `kind`).
pub fn decode(kind: Kind, id: &ID) -> Result<Uuid, ApiError> {
    let malformed = || {
        ApiError::BadInput(format!(
            "`{}` is not a valid id",
            id.as_str().chars().take(64).collect::<String>()
        ))
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(id.as_str())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let (prefix, uuid) = text.split_once(':').ok_or_else(malformed)?;
    let uuid = Uuid::parse_str(uuid).map_err(|_| malformed())?;
    if prefix == kind.prefix() {
        Ok(uuid)
    } else {
        Err(ApiError::NotFound(kind.entity()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_their_kind() {
        let uuid = Uuid::now_v7();
        let id = encode(Kind::Item, uuid);
        assert_eq!(decode(Kind::Item, &id).unwrap(), uuid);
        assert!(matches!(
            decode(Kind::Workspace, &id),
            Err(ApiError::NotFound("workspace"))
        ));
        for garbage in [
            "",
            "!!",
            "SXRlbQ",
            &URL_SAFE_NO_PAD.encode("Item:not-a-uuid"),
        ] {
            assert!(
                matches!(
                    decode(Kind::Item, &ID(garbage.to_string())),
                    Err(ApiError::BadInput(_))
                ),
                "{garbage}"
            );
        }
    }
}
