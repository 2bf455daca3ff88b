-- The web portal's sessions (src/portal/session.rs is this table's one owner).
-- (PostgreSQL copy of the SQLite file; same columns.)
--
-- Signing in exchanges an API key for a random 32-byte session token, which the browser
-- keeps in an HttpOnly, SameSite=Strict cookie. Only the token's BLAKE3 hash is stored,
-- so a copy of this table signs nobody in; the API key itself is never stored. A
-- session acts as its key: the key is read afresh on every request, so revoking it ends
-- the session at the next request. A session ends when idle for `portal_session_idle`
-- or `portal_session_max` after sign-in (`expires_ms`), whichever comes first.
CREATE TABLE portal_sessions (
    token_hash   TEXT   PRIMARY KEY,       -- BLAKE3 of the session token, hex
    key_id       TEXT   NOT NULL REFERENCES api_keys (key_id),
    csrf         TEXT   NOT NULL,          -- the token every form of the session carries
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,          -- updated at most once a minute
    expires_ms   BIGINT NOT NULL           -- created_ms + portal_session_max
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_ms);
CREATE INDEX portal_sessions_key ON portal_sessions (key_id);
