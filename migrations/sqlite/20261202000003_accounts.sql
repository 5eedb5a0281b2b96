-- Verified accounts: the copy of the instance's account, OAuth apps per instance, and the
-- single-use states of connects in progress.
CREATE TABLE oauth_apps (
    id                      INTEGER PRIMARY KEY,
    instance_url            TEXT    NOT NULL,
    redirect_uri            TEXT    NOT NULL,
    platform_type           TEXT    NOT NULL CHECK (platform_type IN ('mastodon', 'pixelfed')),
    client_id               TEXT    NOT NULL,
    client_secret_encrypted BLOB    NOT NULL,
    created_at              INTEGER NOT NULL
);
CREATE UNIQUE INDEX oauth_apps_instance_redirect_key ON oauth_apps (instance_url, redirect_uri);

CREATE TABLE oauth_states (
    id                       INTEGER PRIMARY KEY,
    state_hash               TEXT    NOT NULL UNIQUE,
    session_id               INTEGER NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
    app_id                   INTEGER NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    code_verifier_encrypted  BLOB    NOT NULL,
    expires_at               INTEGER NOT NULL
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

ALTER TABLE platform_connections ADD COLUMN account_id TEXT;
ALTER TABLE platform_connections ADD COLUMN acct TEXT;
ALTER TABLE platform_connections ADD COLUMN display_name TEXT;
ALTER TABLE platform_connections ADD COLUMN avatar_url TEXT;
ALTER TABLE platform_connections ADD COLUMN followers_count INTEGER;
ALTER TABLE platform_connections ADD COLUMN following_count INTEGER;
ALTER TABLE platform_connections ADD COLUMN statuses_count INTEGER;
ALTER TABLE platform_connections ADD COLUMN verified_at INTEGER;
ALTER TABLE platform_connections ADD COLUMN needs_reconnect BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE platform_connections ADD COLUMN refresh_token_encrypted BLOB;
ALTER TABLE platform_connections ADD COLUMN token_expires_at INTEGER;
ALTER TABLE platform_connections ADD COLUMN oauth_app_id INTEGER
    REFERENCES oauth_apps (id) ON DELETE SET NULL;
ALTER TABLE platform_connections ADD COLUMN refresh_claimed_until INTEGER;
CREATE INDEX platform_connections_verified_at ON platform_connections (verified_at);
