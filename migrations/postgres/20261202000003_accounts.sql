-- Verified accounts: the copy of the instance's account, OAuth apps per instance, and the
-- single-use states of connects in progress.
CREATE TABLE oauth_apps (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_url            TEXT        NOT NULL,
    redirect_uri            TEXT        NOT NULL,
    platform_type           TEXT        NOT NULL CHECK (platform_type IN ('mastodon', 'pixelfed')),
    client_id               TEXT        NOT NULL,
    client_secret_encrypted BYTEA       NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX oauth_apps_instance_redirect_key ON oauth_apps (instance_url, redirect_uri);

CREATE TABLE oauth_states (
    id                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state_hash               TEXT        NOT NULL UNIQUE,
    session_id               BIGINT      NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
    app_id                   BIGINT      NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    code_verifier_encrypted  BYTEA       NOT NULL,
    expires_at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);
CREATE INDEX oauth_states_session_id ON oauth_states (session_id);
CREATE INDEX oauth_states_app_id ON oauth_states (app_id);

ALTER TABLE platform_connections
    ADD COLUMN account_id TEXT,
    ADD COLUMN acct TEXT,
    ADD COLUMN display_name TEXT,
    ADD COLUMN avatar_url TEXT,
    ADD COLUMN followers_count BIGINT,
    ADD COLUMN following_count BIGINT,
    ADD COLUMN statuses_count BIGINT,
    ADD COLUMN verified_at TIMESTAMPTZ,
    ADD COLUMN needs_reconnect BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN refresh_token_encrypted BYTEA,
    ADD COLUMN token_expires_at TIMESTAMPTZ,
    ADD COLUMN oauth_app_id BIGINT REFERENCES oauth_apps (id) ON DELETE SET NULL,
    ADD COLUMN refresh_claimed_until TIMESTAMPTZ;
CREATE INDEX platform_connections_verified_at ON platform_connections (verified_at);
CREATE INDEX platform_connections_oauth_app_id ON platform_connections (oauth_app_id);
