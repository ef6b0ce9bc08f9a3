//! Global opaque IDs: `base64url("Kind:uuid")`, so an id names its kind and can't be mistaken
//! for another entity's.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::ApiError;

/// The kinds of entity with a global id of one uuid (a [`Member`](GlobalId::Member) is named
/// by two: see [`encode_member`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Workspace,
    Item,
    Invite,
    Event,
    Job,
    Export,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::User,
        Kind::Workspace,
        Kind::Item,
        Kind::Invite,
        Kind::Event,
        Kind::Job,
        Kind::Export,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Workspace => "Workspace",
            Kind::Item => "Item",
            Kind::Invite => "Invite",
            Kind::Event => "Event",
            Kind::Job => "Job",
            Kind::Export => "Export",
        }
    }

    fn entity(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Workspace => "workspace",
            Kind::Item => "item",
            Kind::Invite => "invite",
            Kind::Event => "event",
            Kind::Job => "job",
            Kind::Export => "export",
        }
    }
}

/// The prefix of a member's id.
const MEMBER: &str = "Member";

/// The longest global id accepted (ours are under 110 characters): anything longer is refused
/// before it is decoded.
const MAX_ID_CHARS: usize = 160;

/// What a global id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalId {
    /// An entity with a uuid of its own.
    Entity(Kind, Uuid),
    /// A user's membership of a workspace.
    Member { workspace_id: Uuid, user_id: Uuid },
}

/// The global id of an entity.
pub fn encode(kind: Kind, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.prefix())))
}

/// The global id of `user_id`'s membership of `workspace_id`.
pub fn encode_member(workspace_id: Uuid, user_id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{MEMBER}:{workspace_id}:{user_id}")))
}

/// What any global id names. Garbage (and an id longer than any we issue) is
/// `BAD_USER_INPUT`.
pub fn parse(id: &ID) -> Result<GlobalId, ApiError> {
    let malformed = || {
        ApiError::BadInput(format!(
            "`{}` is not a valid id",
            id.as_str().chars().take(64).collect::<String>()
        ))
    };
    if id.len() > MAX_ID_CHARS {
        return Err(malformed());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(id.as_str())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let (prefix, rest) = text.split_once(':').ok_or_else(malformed)?;
    if prefix == MEMBER {
        let (workspace_id, user_id) = rest.split_once(':').ok_or_else(malformed)?;
        return Ok(GlobalId::Member {
            workspace_id: Uuid::parse_str(workspace_id).map_err(|_| malformed())?,
            user_id: Uuid::parse_str(user_id).map_err(|_| malformed())?,
        });
    }
    let kind = Kind::ALL
        .into_iter()
        .find(|kind| kind.prefix() == prefix)
        .ok_or_else(malformed)?;
    let uuid = Uuid::parse_str(rest).map_err(|_| malformed())?;
    Ok(GlobalId::Entity(kind, uuid))
}

/// The uuid behind a global id of `kind`. Garbage is `BAD_USER_INPUT`; a well-formed id of
/// another kind is `NOT_FOUND` (there is no such `kind`).
pub fn decode(kind: Kind, id: &ID) -> Result<Uuid, ApiError> {
    match parse(id)? {
        GlobalId::Entity(found, uuid) if found == kind => Ok(uuid),
        _ => Err(ApiError::NotFound(kind.entity())),
    }
}

/// The stream behind the global id of a user, a workspace or an item, or a raw UUID (accepted
/// where raw UUIDs were taken before global ids: the events filter's stream id).
pub fn decode_stream(id: &ID) -> Result<Uuid, ApiError> {
    if let Ok(uuid) = Uuid::parse_str(id.as_str()) {
        return Ok(uuid);
    }
    match parse(id)? {
        GlobalId::Entity(Kind::User | Kind::Workspace | Kind::Item, uuid) => Ok(uuid),
        _ => Err(ApiError::NotFound("stream")),
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
            &URL_SAFE_NO_PAD.encode("Nothing:0190a1a2-0000-7000-8000-000000000000"),
            &"A".repeat(10_000),
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

    #[test]
    fn member_ids_name_both_the_workspace_and_the_user() {
        let (workspace_id, user_id) = (Uuid::now_v7(), Uuid::now_v7());
        let id = encode_member(workspace_id, user_id);
        assert_eq!(
            parse(&id).unwrap(),
            GlobalId::Member {
                workspace_id,
                user_id
            }
        );
        assert!(matches!(
            decode(Kind::User, &id),
            Err(ApiError::NotFound("user"))
        ));
        let event = encode(Kind::Event, user_id);
        assert_eq!(
            parse(&event).unwrap(),
            GlobalId::Entity(Kind::Event, user_id)
        );
    }
}
