-- Every signed-in page lists the user's active platforms oldest first (the switcher); this index
-- hands them over in that order, so the query neither filters nor sorts.
CREATE INDEX platform_connections_user_order
    ON platform_connections (user_id, created_at, id) WHERE is_active;
