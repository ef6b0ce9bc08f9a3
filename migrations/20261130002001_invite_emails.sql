-- Invite emails recorded as sent (SPEC §7): the invite-email job's effect, under a unique key
-- (the invite), written by the inline projection in the same transaction as the
-- `InviteEmailSent` event. A job delivered twice cannot record its email twice: the second
-- append fails on this key (and the aggregate refuses it before that).
CREATE TABLE invite_emails (
    invite_id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL,
    message_id TEXT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL
);
