-- What the scheduled pruning (api/src/startup.rs, `Pruning`) looks rows up by, so that each of
-- its small batches finds its rows without scanning the table.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX refresh_token_families_revoked_idx
    ON refresh_token_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX login_throttle_window_idx ON login_throttle (window_start);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
