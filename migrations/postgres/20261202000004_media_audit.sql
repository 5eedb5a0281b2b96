-- The alt-text audit. One row per platform: its scan's progress, what tether learnt about the
-- instance, and the claim of the one worker that scans or publishes for it. One row per
-- attachment found: what the instance says, and tether's draft and its publishing state.
CREATE TABLE media_audits (
    platform_id       BIGINT PRIMARY KEY REFERENCES platform_connections (id) ON DELETE CASCADE,
    scan_state        TEXT    NOT NULL DEFAULT 'idle'
        CHECK (scan_state IN ('idle', 'queued', 'running', 'waiting', 'finished', 'failed')),
    scan_run          BIGINT  NOT NULL DEFAULT 0,
    posts_scanned     BIGINT  NOT NULL DEFAULT 0,
    max_posts         BIGINT  NOT NULL DEFAULT 0,
    scan_cursor       TEXT,
    reached_end       BOOLEAN NOT NULL DEFAULT FALSE,
    oldest_posted_at  TIMESTAMPTZ,
    scan_requested_at TIMESTAMPTZ,
    scan_finished_at  TIMESTAMPTZ,
    scan_error        TEXT,
    instance_version  TEXT,
    description_limit BIGINT,
    waiting_until     TIMESTAMPTZ,
    due_at            TIMESTAMPTZ,
    claim_token       TEXT,
    claimed_until     TIMESTAMPTZ
);
CREATE INDEX media_audits_due_at ON media_audits (due_at);

CREATE TABLE media_items (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform_id    BIGINT  NOT NULL REFERENCES platform_connections (id) ON DELETE CASCADE,
    status_id      TEXT    NOT NULL,
    status_url     TEXT,
    posted_at      TIMESTAMPTZ NOT NULL,
    status_text    TEXT    NOT NULL,
    media_id       TEXT    NOT NULL,
    position       BIGINT  NOT NULL,
    media_type     TEXT    NOT NULL CHECK (media_type IN ('image', 'gifv', 'video')),
    preview_url    TEXT,
    description    TEXT,
    draft          TEXT,
    state          TEXT    NOT NULL DEFAULT 'none'
        CHECK (state IN ('none', 'draft', 'queued', 'waiting', 'published', 'failed')),
    error          TEXT,
    waiting_until  TIMESTAMPTZ,
    queued_at      TIMESTAMPTZ,
    attempted_at   TIMESTAMPTZ,
    published_at   TIMESTAMPTZ,
    seen_run       BIGINT  NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX media_items_platform_media_key ON media_items (platform_id, media_id);
CREATE INDEX media_items_platform_posted_at ON media_items (platform_id, posted_at);
CREATE INDEX media_items_platform_state ON media_items (platform_id, state, queued_at);
