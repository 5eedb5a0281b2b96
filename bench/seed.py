#!/usr/bin/env python3
"""Fills a migrated tether database for the large-database benchmark, in well under a minute:
100,000 users, 300,000 platforms (3 each, the first the default), 1,000,000 sessions (10 each,
random 64-hex token hashes like the real ones), and for about 3,000 accounts (every 33rd user's
default platform, and every platform of the bench user `bench0`) a finished audit with 100 images
each (300,000 media items, a third described, some drafted or published), one account's
images stored together as a scan writes them.

Every seeded user shares one password hash, copied from `bench0` (whom the benchmark registers
first through the web form), so nothing is hashed here. The rows are written with INSERT … SELECT
in one transaction per engine.

With `--bench-user-only` it writes just the bench user's audits and images, so that the small
database's user has the same data as the large one's and the two differ only in size.

Usage: bench/seed.py sqlite|postgres DATABASE_URL [--bench-user-only]
"""
import re
import sqlite3
import subprocess
import sys
import time

SQLITE = """
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000)
INSERT INTO users (username, email, password_hash, role, is_active, created_at)
SELECT 'seed' || n, 'seed' || n || '@seed.example',
       (SELECT password_hash FROM users WHERE username = 'bench0'), 'user', 1, :now
FROM s;

INSERT INTO platform_connections
    (user_id, name, platform_type, instance_url, username, access_token_encrypted, is_active,
     is_default, created_at, updated_at, account_id, acct, display_name, followers_count,
     following_count, statuses_count, verified_at)
SELECT u.id, 'account ' || k.k, CASE WHEN k.k = 2 THEN 'pixelfed' ELSE 'mastodon' END,
       'https://i' || (u.id % 97) || '.seed.example', 'acct' || k.k, X'00', 1, k.k = 0,
       :now + k.k, :now, u.id || '-' || k.k, 'acct' || k.k, 'Seeded ' || u.id, 10, 20, 30, :now
FROM users u CROSS JOIN (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2) k
WHERE u.username LIKE 'seed%';

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10)
INSERT INTO user_sessions
    (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, user_agent, ip)
SELECT lower(hex(randomblob(32))), u.id, lower(hex(randomblob(16))), :now, :now,
       :now + 2592000, 'seeded', '10.9.0.1'
FROM users u CROSS JOIN s
WHERE u.username LIKE 'seed%';

INSERT INTO media_audits
    (platform_id, scan_state, scan_run, posts_scanned, max_posts, reached_end,
     scan_requested_at, scan_finished_at)
SELECT p.id, 'finished', 1, 400, 400, 1, :now, :now
FROM platform_connections p JOIN users u ON u.id = p.user_id
WHERE (u.username LIKE 'seed%' AND p.is_default AND u.id % 33 = 0) OR u.username = 'bench0';

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100)
INSERT INTO media_items
    (platform_id, status_id, posted_at, status_text, media_id, position, media_type,
     description, draft, state, seen_run, updated_at)
SELECT a.platform_id, 's' || n, :now - n * 3600, 'A seeded post', 'm' || n, 0, 'image',
       CASE WHEN n % 3 = 0 THEN 'Described before' END,
       CASE WHEN n % 7 = 1 THEN 'A draft' END,
       CASE n % 7 WHEN 0 THEN 'published' WHEN 1 THEN 'draft' ELSE 'none' END, 1, :now
FROM media_audits a CROSS JOIN s
ORDER BY a.platform_id, n;
"""

POSTGRES = """
BEGIN;
INSERT INTO users (username, email, password_hash, role, is_active, created_at)
SELECT 'seed' || n, 'seed' || n || '@seed.example',
       (SELECT password_hash FROM users WHERE username = 'bench0'), 'user', TRUE, now()
FROM generate_series(1, 100000) n;

INSERT INTO platform_connections
    (user_id, name, platform_type, instance_url, username, access_token_encrypted, is_active,
     is_default, created_at, updated_at, account_id, acct, display_name, followers_count,
     following_count, statuses_count, verified_at)
SELECT u.id, 'account ' || k, CASE WHEN k = 2 THEN 'pixelfed' ELSE 'mastodon' END,
       'https://i' || (u.id % 97) || '.seed.example', 'acct' || k, '\\x00'::bytea, TRUE, k = 0,
       now() + k * interval '1 second', now(), u.id || '-' || k, 'acct' || k,
       'Seeded ' || u.id, 10, 20, 30, now()
FROM users u CROSS JOIN generate_series(0, 2) k
WHERE u.username LIKE 'seed%';

INSERT INTO user_sessions
    (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, user_agent, ip)
SELECT md5(random()::text) || md5(random()::text), u.id, md5(random()::text), now(), now(),
       now() + interval '30 days', 'seeded', '10.9.0.1'
FROM users u CROSS JOIN generate_series(1, 10)
WHERE u.username LIKE 'seed%';

INSERT INTO media_audits
    (platform_id, scan_state, scan_run, posts_scanned, max_posts, reached_end,
     scan_requested_at, scan_finished_at)
SELECT p.id, 'finished', 1, 400, 400, TRUE, now(), now()
FROM platform_connections p JOIN users u ON u.id = p.user_id
WHERE (u.username LIKE 'seed%' AND p.is_default AND u.id % 33 = 0) OR u.username = 'bench0';

INSERT INTO media_items
    (platform_id, status_id, posted_at, status_text, media_id, position, media_type,
     description, draft, state, seen_run, updated_at)
SELECT a.platform_id, 's' || n, now() - n * interval '1 hour', 'A seeded post', 'm' || n, 0,
       'image', CASE WHEN n % 3 = 0 THEN 'Described before' END,
       CASE WHEN n % 7 = 1 THEN 'A draft' END,
       CASE n % 7 WHEN 0 THEN 'published' WHEN 1 THEN 'draft' ELSE 'none' END, 1, now()
FROM media_audits a CROSS JOIN generate_series(1, 100) n
ORDER BY a.platform_id, n;
COMMIT;
ANALYZE;
"""

def counts_sql():
    return """SELECT (SELECT count(*) FROM users) AS users,
                     (SELECT count(*) FROM platform_connections) AS platforms,
                     (SELECT count(*) FROM user_sessions) AS sessions,
                     (SELECT count(*) FROM media_audits) AS audits,
                     (SELECT count(*) FROM media_items) AS media_items"""


# The dashboard's two statements as tether sends them (src/models/session.rs
# SessionRecord::find_by_token_hash; src/models/platform.rs Platform::list_active_with_audit with
# src/models/media_item.rs summary_sql), for their query plans. :token is a seeded session's
# hash, :user the bench user, :focus NULL (a session that has not chosen: its default).
SESSION_SQL = """SELECT s.id AS session_id, s.user_id, s.active_platform_id, s.csrf_token,
       s.created_at, s.last_seen_at, s.expires_at,
       u.username, u.email, u.role, u.is_active AS user_is_active
FROM user_sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = :token"""

PLATFORMS_SQL = """WITH focus AS (
    SELECT COALESCE(:focus, (SELECT id FROM platform_connections
                             WHERE user_id = :user AND is_default AND is_active)) AS id
)
SELECT p.id, p.name, p.id = f.id AS focus, a.scan_state, c.total, c.missing
FROM platform_connections p
CROSS JOIN focus f
LEFT JOIN media_audits a ON a.platform_id = p.id AND p.id = f.id
LEFT JOIN (SELECT CAST(coalesce(sum(n), 0) AS BIGINT) AS total,
                  CAST(coalesce(sum(CASE WHEN NOT described AND state <> 'published' THEN n END), 0)
                       AS BIGINT) AS missing,
                  CAST(coalesce(sum(CASE WHEN state IN ('draft', 'failed') THEN n END), 0)
                       AS BIGINT) AS drafted,
                  CAST(coalesce(sum(CASE WHEN state IN ('queued', 'waiting') THEN n END), 0)
                       AS BIGINT) AS queued,
                  CAST(coalesce(sum(CASE WHEN state = 'published' THEN n END), 0)
                       AS BIGINT) AS published
           FROM (SELECT state, described, count(*) AS n FROM media_items
                 WHERE platform_id = (SELECT id FROM focus) GROUP BY state, described) g) c ON p.id = f.id
WHERE p.user_id = :user AND p.is_active
ORDER BY p.created_at, p.id"""


def plans_sqlite(db):
    user = db.execute("SELECT id FROM users WHERE username = 'bench0'").fetchone()[0]
    token = db.execute("SELECT token_hash FROM user_sessions ORDER BY id DESC LIMIT 1").fetchone()[0]
    for label, sql in (("session with user", SESSION_SQL), ("platforms with audit", PLATFORMS_SQL)):
        print(f"\nSQLite plan, {label}:")
        for row in db.execute("EXPLAIN QUERY PLAN " + sql, {"token": token, "user": user, "focus": None}):
            print("   ", row[3])


def plans_postgres(url):
    user = psql(url, "SELECT id FROM users WHERE username = 'bench0'", "-At").strip()
    token = psql(url, "SELECT token_hash FROM user_sessions ORDER BY id DESC LIMIT 1", "-At").strip()
    for label, sql in (("session with user", SESSION_SQL), ("platforms with audit", PLATFORMS_SQL)):
        literal = (sql.replace(":token", f"'{token}'").replace(":user", user)
                   .replace(":focus", "NULL::bigint"))
        print(f"\nPostgreSQL plan, {label}:")
        print(psql(url, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + literal, "-At"))


def sqlite_path(url):
    return re.sub(r"^sqlite://", "", url).split("?", 1)[0]


def only_bench_user(sql):
    """The audit and media statements, for bench0's platforms alone."""
    statements = [x for x in sql.split(";\n") if "media_" in x]
    return [x.replace("(u.username LIKE 'seed%' AND p.is_default AND u.id % 33 = 0) OR ", "")
            for x in statements]


def seed_sqlite(url, bench_only=False):
    db = sqlite3.connect(sqlite_path(url), isolation_level=None)
    db.execute("PRAGMA busy_timeout = 5000")
    now = int(time.time())
    db.execute("BEGIN")
    statements = only_bench_user(SQLITE) if bench_only else SQLITE.split(";\n")
    for statement in statements:
        if statement.strip():
            db.execute(statement, {"now": now})
    db.execute("COMMIT")
    print("seeded:", dict(zip(("users", "platforms", "sessions", "audits", "media items"),
                              db.execute(counts_sql()).fetchone())))
    return db


def psql(url, sql, *extra):
    schema = re.search(r"search_path%3D(\w+)", url)
    env_options = f"-c search_path={schema.group(1)} -c client_min_messages=warning" if schema else ""
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres",
         "-d", "test", *extra, "-c", sql],
        check=True, capture_output=True, text=True,
        env={"PGOPTIONS": env_options, "PATH": "/usr/bin:/bin"},
    ).stdout


def vacuum(url):
    """Sets the visibility map as autovacuum would on a running database, so that the counts'
    index-only scan reads no heap pages (VACUUM cannot run in the seeding transaction)."""
    psql(url, "VACUUM (ANALYZE)")


def main():
    engine, url = sys.argv[1], sys.argv[2]
    if "--bench-user-only" in sys.argv:
        if engine == "sqlite":
            seed_sqlite(url, bench_only=True)
        else:
            psql(url, "BEGIN;\n" + ";\n".join(only_bench_user(POSTGRES)) + ";\nCOMMIT;")
            vacuum(url)
        return
    started = time.perf_counter()
    if engine == "sqlite":
        db = seed_sqlite(url)
        print(f"seeded in {time.perf_counter() - started:.1f} s")
        plans_sqlite(db)
    else:
        psql(url, POSTGRES)
        vacuum(url)
        print("seeded:", psql(url, counts_sql(), "-At").strip())
        print(f"seeded in {time.perf_counter() - started:.1f} s")
        plans_postgres(url)


if __name__ == "__main__":
    main()
