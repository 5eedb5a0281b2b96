-- Whether an image has a description, as a column the summary's index can cover: the dashboard
-- counts an account's images on every request, and without it each count read every row.
ALTER TABLE media_items ADD COLUMN described BOOLEAN
    GENERATED ALWAYS AS (description IS NOT NULL AND trim(description) <> '') VIRTUAL;
CREATE INDEX media_items_platform_summary ON media_items (platform_id, state, described);
