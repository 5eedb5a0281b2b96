-- The alt-text audit. One row per platform: its scan's progress, what tether learnt about the
-- instance, and the claim of the one worker that scans or publishes for it. One row per
-- attachment found: what the instance says, and tether's draft and its publishing state.
CREATE TABLE media_audits (
    platform_id       INTEGER PRIMARY KEY REFERENCES platform_connections (id) ON DELETE CASCADE,
    scan_state        TEXT    NOT NULL DEFAULT 'idle'
        CHECK (scan_state IN ('idle', 'queued', 'running', 'waiting', 'finished', 'failed')),
    scan_run          INTEGER NOT NULL DEFAULT 0,
    posts_scanned     INTEGER NOT NULL DEFAULT 0,
    max_posts         INTEGER NOT NULL DEFAULT 0,
    scan_cursor       TEXT,
    reached_end       BOOLEAN NOT NULL DEFAULT 0,
    oldest_posted_at  INTEGER,
    scan_requested_at INTEGER,
    scan_finished_at  INTEGER,
    scan_error        TEXT,
    instance_version  TEXT,
    description_limit INTEGER,
    waiting_until     INTEGER,
    due_at            INTEGER,
    claim_token       TEXT,
    claimed_until     INTEGER
);
CREATE INDEX media_audits_due_at ON media_audits (due_at);

CREATE TABLE media_items (
    id             INTEGER PRIMARY KEY,
    platform_id    INTEGER NOT NULL REFERENCES platform_connections (id) ON DELETE CASCADE,
    status_id      TEXT    NOT NULL,
    status_url     TEXT,
    posted_at      INTEGER NOT NULL,
    status_text    TEXT    NOT NULL,
    media_id       TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    media_type     TEXT    NOT NULL CHECK (media_type IN ('image', 'gifv', 'video')),
    preview_url    TEXT,
    description    TEXT,
    draft          TEXT,
    state          TEXT    NOT NULL DEFAULT 'none'
        CHECK (state IN ('none', 'draft', 'queued', 'waiting', 'published', 'failed')),
    error          TEXT,
    waiting_until  INTEGER,
    queued_at      INTEGER,
    attempted_at   INTEGER,
    published_at   INTEGER,
    seen_run       INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX media_items_platform_media_key ON media_items (platform_id, media_id);
CREATE INDEX media_items_platform_posted_at ON media_items (platform_id, posted_at);
CREATE INDEX media_items_platform_state ON media_items (platform_id, state, queued_at);
