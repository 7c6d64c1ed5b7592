//! A PostgreSQL database of its own for each test, so the suite runs in parallel: made on the
//! server of `ISBN_CRAWLER_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and dropped afterwards. Outside CI, a test whose server does not answer says it was skipped;
//! under `CI=true` it fails.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub struct PgDb {
    pub name: String,
    admin: String,
}

fn admin_url() -> String {
    std::env::var("ISBN_CRAWLER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl PgDb {
    /// A fresh, empty database; `None` (with a note) when no server answers outside CI.
    pub async fn create() -> Option<PgDb> {
        static N: AtomicU32 = AtomicU32::new(0);
        let admin = admin_url();
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "CI must have PostgreSQL at {admin}: {e}"
                );
                eprintln!("SKIPPED: no PostgreSQL answers at {admin} ({e})");
                return None;
            }
        };
        let name = format!(
            "isbn_t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        Some(PgDb { name, admin })
    }

    /// The URL of the test database.
    pub fn url(&self) -> String {
        let base = self.admin.rsplit_once('/').map_or("", |(b, _)| b);
        format!("{base}/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
