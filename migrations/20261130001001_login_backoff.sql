-- Log-in throttling that cannot lock an account's owner out (issue 9).
--
-- Failed log-ins are now counted per (account, client address): after a few, each further
-- attempt from that address for that account waits an exponentially growing delay. An attacker
-- failing from one address therefore slows only themself; the owner, elsewhere, logs in. The
-- per-account rows of `login_throttle` (a flat lock anyone could trigger) are no longer
-- written; they are pruned with the rest.
CREATE TABLE login_backoff (
    account         text        NOT NULL,  -- normalized email, whether or not an account has it
    address         text        NOT NULL,  -- the client address key (IPv4, IPv6 /64), '' if unknown
    failures        integer     NOT NULL,  -- failed attempts since the last success
    last_failure_at timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,  -- no attempt is looked at before this
    PRIMARY KEY (account, address)
);
CREATE INDEX login_backoff_last_failure_idx ON login_backoff (last_failure_at);

-- `login_throttle` keeps fixed windows per client address: every log-in attempt ('ip') and
-- every sign-up ('signup').
ALTER TABLE login_throttle DROP CONSTRAINT login_throttle_kind_check;
ALTER TABLE login_throttle
    ADD CONSTRAINT login_throttle_kind_check CHECK (kind IN ('account', 'ip', 'signup'));
