-- Timestamps are INTEGER Unix seconds (see src/db/timestamp.rs); booleans are 0/1.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    is_active     BOOLEAN NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE platform_connections (
    id                     INTEGER PRIMARY KEY,
    user_id                INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                   TEXT    NOT NULL,
    platform_type          TEXT    NOT NULL CHECK (platform_type IN ('mastodon', 'pixelfed')),
    instance_url           TEXT    NOT NULL,
    username               TEXT    NOT NULL,
    access_token_encrypted BLOB    NOT NULL,
    is_active              BOOLEAN NOT NULL DEFAULT 1,
    is_default             BOOLEAN NOT NULL DEFAULT 0,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE UNIQUE INDEX platform_connections_name_key
    ON platform_connections (user_id, name);
CREATE UNIQUE INDEX platform_connections_account_key
    ON platform_connections (user_id, instance_url, lower(username));
CREATE UNIQUE INDEX platform_connections_one_default
    ON platform_connections (user_id) WHERE is_default;

CREATE TABLE user_sessions (
    id                 INTEGER PRIMARY KEY,
    token_hash         TEXT    NOT NULL UNIQUE,
    user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    active_platform_id INTEGER REFERENCES platform_connections (id) ON DELETE SET NULL,
    csrf_token         TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    last_seen_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    user_agent         TEXT,
    ip                 TEXT
);
CREATE INDEX user_sessions_user_id ON user_sessions (user_id);
CREATE INDEX user_sessions_expires_at ON user_sessions (expires_at);
CREATE INDEX user_sessions_active_platform_id ON user_sessions (active_platform_id);
