-- Failed-login throttling, shared by every tether instance on this database.
CREATE TABLE login_throttle (
    scope        TEXT        NOT NULL CHECK (scope IN ('username', 'address')),
    key          TEXT        NOT NULL,
    failures     BIGINT      NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at     TIMESTAMPTZ NOT NULL,
    action         TEXT        NOT NULL,
    actor_user_id  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    actor_name     TEXT,
    target_user_id BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    target_name    TEXT,
    ip             TEXT,
    detail         TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_created_at ON audit_events (created_at);
