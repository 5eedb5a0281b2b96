-- Failed-login throttling, shared by every tether instance on this database.
CREATE TABLE login_throttle (
    scope        TEXT    NOT NULL CHECK (scope IN ('username', 'address')),
    key          TEXT    NOT NULL,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY,
    created_at     INTEGER NOT NULL,
    action         TEXT    NOT NULL,
    actor_user_id  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    actor_name     TEXT,
    target_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    target_name    TEXT,
    ip             TEXT,
    detail         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_created_at ON audit_events (created_at);
