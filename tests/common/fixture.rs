//! A database without Rocket: a pool with the migrations applied, on a temp SQLite file or a fresh
//! PostgreSQL schema, for model-level tests that are cheap enough to run hundreds of times.
#![allow(dead_code)]

use tempfile::TempDir;
use tether::db::{DbConn, DbPool, Value};

/// A migrated database of its own. Dropping it removes the SQLite file or the PostgreSQL schema.
pub struct TestDb {
    pub pool: DbPool,
    _dir: Option<TempDir>,
    pg_schema: Option<(String, String)>,
}

fn config(url: String) -> rocket_db_pools::Config {
    rocket_db_pools::Config {
        url,
        min_connections: None,
        max_connections: 4,
        connect_timeout: 5,
        idle_timeout: None,
        extensions: None,
    }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let pool = DbPool::connect(&config(url)).await.expect("SQLite pool");
        tether::db::migrate(&pool).await.expect("migrations apply");
        TestDb {
            pool,
            _dir: Some(dir),
            pg_schema: None,
        }
    }

    /// `None` when `TETHER_TEST_POSTGRES_URL` is not set (and `TETHER_REQUIRE_POSTGRES` is not).
    pub async fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var("TETHER_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("TETHER_REQUIRE_POSTGRES").is_none(),
                "TETHER_REQUIRE_POSTGRES is set but TETHER_TEST_POSTGRES_URL is not"
            );
            return None;
        };
        let schema = format!("tether_fixture_{}", hex_suffix());
        let admin = sqlx::PgPool::connect(&base)
            .await
            .expect("PostgreSQL at TETHER_TEST_POSTGRES_URL answers");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create test schema");
        admin.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let pool = DbPool::connect(&config(url))
            .await
            .expect("PostgreSQL pool");
        tether::db::migrate(&pool).await.expect("migrations apply");
        Some(TestDb {
            pool,
            _dir: None,
            pg_schema: Some((base, schema)),
        })
    }

    pub async fn conn(&self) -> DbConn {
        self.pool.acquire().await.expect("pool connection")
    }

    pub async fn exec(&self, sql: &str, args: Vec<Value>) -> u64 {
        let mut db = self.conn().await;
        let mut q = tether::db::query(sql);
        for arg in args {
            q = q.bind(arg);
        }
        q.execute(&mut db).await.expect("test SQL runs")
    }

    pub async fn count(&self, sql: &str, args: Vec<Value>) -> i64 {
        let mut db = self.conn().await;
        let mut q = tether::db::query(sql);
        for arg in args {
            q = q.bind(arg);
        }
        let (n,): (i64,) = q.fetch_one(&mut db).await.expect("test SQL runs");
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg_schema.take() {
            // Drop may run inside a runtime; clean up on a thread with its own. The pool's idle
            // connections hold no locks, so the schema can go while they are still open.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(admin) = sqlx::PgPool::connect(&base).await {
                        // One simple-protocol batch on one connection, without the NOTICE about
                        // what the CASCADE dropped.
                        let drop = format!(
                            "SET client_min_messages TO WARNING; \
                             DROP SCHEMA IF EXISTS {schema} CASCADE"
                        );
                        let _ = sqlx::Executor::execute(&admin, drop.as_str()).await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn hex_suffix() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
