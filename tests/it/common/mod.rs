//! Shared helpers for the integration tests: a temp database, the library's `run` with real
//! arguments, the real binary, and reads of the resulting SQLite file.

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::Output;

use clap::Parser;
use isbn_crawler::cli::Cli;
use isbn_crawler::crawl::Control;
use isbn_crawler::store::{CrawlStore, SqliteStore};
use isbn_crawler::{Environment, ExitCode};
use secrecy::SecretString;
use sqlx::Row;

/// Short timeouts and backoff, so faults cost milliseconds; eight attempts.
pub const FAST: [&str; 8] = [
    "--timeout",
    "500ms",
    "--backoff-base",
    "5ms",
    "--backoff-max",
    "50ms",
    "--max-attempts",
    "8",
];

/// A distinctive key: tests assert it never shows up anywhere.
pub const KEY: &str = "AIzaSy-TEST-KEY-d0ntLeakMe-7f3a9c";

pub struct Scratch {
    pub dir: tempfile::TempDir,
    /// A PostgreSQL database used instead of the SQLite file (`Scratch::postgres`).
    pub pg: Option<pg::PgDb>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
            pg: None,
        }
    }

    /// A scratch whose database is a fresh PostgreSQL one; `None` when it is skipped.
    pub async fn postgres() -> Option<Scratch> {
        Some(Scratch {
            pg: Some(pg::PgDb::create().await?),
            ..Scratch::new()
        })
    }

    async fn pg_pool(&self) -> Option<sqlx::PgPool> {
        let pg = self.pg.as_ref()?;
        Some(sqlx::PgPool::connect(&pg.url()).await.expect("connect"))
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("books.db")
    }

    pub fn db_str(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url(),
            None => self.db().display().to_string(),
        }
    }

    pub fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write input");
        path.display().to_string()
    }

    pub async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.db(), false).await.expect("open db")
    }

    /// Runs the library with real arguments (the program name is added).
    pub async fn run(&self, args: &[&str]) -> ExitCode {
        self.run_with(args, env_with_key()).await
    }

    pub async fn run_with(&self, args: &[&str], env: Environment) -> ExitCode {
        let db = self.db_str();
        let mut argv = vec!["isbn-crawler", "--quiet", "--db", db.as_str()];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(&argv).expect("arguments parse");
        match isbn_crawler::run(cli, env).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("run failed: {e:#}");
                ExitCode::for_error(&e)
            }
        }
    }

    /// Loads lines of text through the library.
    pub async fn load_lines(&self, lines: &[String]) -> ExitCode {
        let path = self.file("list.txt", lines.join("\n").as_bytes());
        self.run(&["load", &path]).await
    }

    /// Counts rows of the jobs table per state.
    pub async fn states(&self) -> std::collections::BTreeMap<String, i64> {
        self.grouped("SELECT state, count(*) FROM jobs GROUP BY state")
            .await
    }

    /// `(key, count)` rows of a GROUP BY query, as a map.
    pub async fn grouped(&self, sql: &str) -> std::collections::BTreeMap<String, i64> {
        if let Some(pool) = self.pg_pool().await {
            let rows: Vec<(String, i64)> =
                sqlx::query_as(sql).fetch_all(&pool).await.expect("query");
            return rows.into_iter().collect();
        }
        let store = self.store().await;
        sqlx::query(sql)
            .fetch_all(store.pool())
            .await
            .expect("query")
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        if let Some(pool) = self.pg_pool().await {
            return sqlx::query_scalar(sql)
                .fetch_one(&pool)
                .await
                .expect("query");
        }
        let store = self.store().await;
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .expect("query")
    }

    pub async fn strings(&self, sql: &str) -> Vec<String> {
        if let Some(pool) = self.pg_pool().await {
            return sqlx::query_scalar(sql)
                .fetch_all(&pool)
                .await
                .expect("query");
        }
        let store = self.store().await;
        sqlx::query_scalar(sql)
            .fetch_all(store.pool())
            .await
            .expect("query")
    }

    pub async fn open_jobs(&self) -> u64 {
        if let Some(pool) = self.pg_pool().await {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE state IN ('pending', 'in_progress')",
            )
            .fetch_one(&pool)
            .await
            .expect("query");
            return n as u64;
        }
        self.store().await.open_jobs().await.expect("count")
    }
}

pub async fn start_fake(
    config: isbn_crawler::fake_api::FakeConfig,
) -> isbn_crawler::fake_api::FakeApi {
    isbn_crawler::fake_api::FakeApi::start(config)
        .await
        .expect("fake API starts")
}

/// `crawl` of Google alone through the library with fast test settings (unlimited rate,
/// concurrency 8, millisecond backoff, 2 s timeout); `extra` comes last so it can override them.
pub async fn crawl(s: &Scratch, api: &isbn_crawler::fake_api::FakeApi, extra: &[&str]) -> ExitCode {
    let url = api.url();
    let mut args = vec![
        "crawl",
        "--providers",
        "google",
        "--batch",
        "1",
        "--openlibrary-url",
        &url,
        "--openlibrary-rate",
        "unlimited",
        "--api-url",
        &url,
        "--rate",
        "unlimited",
        "--concurrency",
        "8",
        "--backoff-base",
        "1ms",
        "--backoff-max",
        "5ms",
        "--timeout",
        "2s",
    ];
    args.extend_from_slice(extra);
    s.run(&args).await
}

pub fn env_with_key() -> Environment {
    Environment {
        api_key: Some(SecretString::from(KEY.to_string())),
        contact: None,
        handle_signals: false,
        control: Control::default(),
        sru_urls: Vec::new(),
    }
}

/// The real binary, with only the variables a test sets (no .env, no user database).
pub fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_isbn-crawler"));
    cmd.env_remove("GOOGLE_BOOKS_API_KEY")
        .env_remove("ISBN_CRAWLER_DB")
        .env_remove("GOOGLE_BOOKS_API_URL")
        .env_remove("OPEN_LIBRARY_API_URL")
        .env_remove("ISBN_CRAWLER_CONTACT")
        .env_remove("RUST_LOG");
    for p in isbn_crawler::providers::sru::profile::ALL {
        cmd.env_remove(format!("ISBN_CRAWLER_SRU_URL_{}", p.name.to_uppercase()));
    }
    cmd
}

pub fn binary_async() -> tokio::process::Command {
    let std = binary();
    tokio::process::Command::from(std)
}

/// The real binary with `args` and the test key, killed if the test drops it.
pub fn with_key(args: &[&str]) -> tokio::process::Command {
    let mut cmd = binary_async();
    cmd.args(args)
        .env("GOOGLE_BOOKS_API_KEY", KEY)
        .kill_on_drop(true);
    cmd
}

/// `isbn-crawler --db DB --quiet crawl --providers google --api-url FAKE --rate unlimited
/// EXTRA...` with the test key, output piped, killed if the test drops it. A later option in
/// `extra` wins (`--providers google,openlibrary` brings in the fake's Open Library half).
pub fn crawl_binary(
    s: &Scratch,
    api: &isbn_crawler::fake_api::FakeApi,
    extra: &[&str],
) -> tokio::process::Command {
    let (db, url) = (s.db_str(), api.url());
    let mut args = vec![
        "--db",
        &db,
        "--quiet",
        "crawl",
        "--providers",
        "google",
        "--batch",
        "1",
        "--api-url",
        &url,
        "--openlibrary-url",
        &url,
        "--openlibrary-rate",
        "unlimited",
        "--rate",
        "unlimited",
    ];
    args.extend_from_slice(extra);
    let mut cmd = with_key(&args);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Spawns `cmd`, SIGKILLs it once the fake has seen `n` requests in all, and reaps it.
/// `Err` carries the exit status if it ended by itself first.
pub async fn kill_after(
    api: &isbn_crawler::fake_api::FakeApi,
    mut cmd: tokio::process::Command,
    n: u64,
) -> Result<(), std::process::ExitStatus> {
    let mut child = cmd.spawn().expect("spawn");
    wait_for_requests(api, &mut child, n).await?;
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("wait");
    assert_eq!(status.code(), None, "killed by a signal");
    Ok(())
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` distinct valid ISBN-13s (978-0-00-..., deterministic).
pub fn isbns(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| isbn_crawler::isbn::synthetic(100_000 + i as u64).to_string())
        .collect()
}

/// `--sru-url` and `--sru-rate` for every catalogue: the fake's, unlimited.
pub fn sru_args(api: &isbn_crawler::fake_api::FakeApi) -> Vec<String> {
    let mut args = Vec::new();
    for p in isbn_crawler::providers::sru::profile::ALL {
        args.push("--sru-url".to_string());
        args.push(format!("{}={}/sru/{}", p.name, api.url(), p.name));
        args.push("--sru-rate".to_string());
        args.push(format!("{}=unlimited", p.name));
    }
    args
}

/// A scratch database with `n` ISBNs loaded (see [`isbns`]).
pub async fn loaded(n: usize) -> (Scratch, Vec<String>) {
    let s = Scratch::new();
    let list = isbns(n);
    assert_eq!(s.load_lines(&list).await, ExitCode::Success);
    (s, list)
}

/// Waits until the fake has seen `n` requests in all; panics if `child` ends first. Bounded
/// by a minute so a stuck crawl fails the test instead of hanging it.
pub async fn wait_for_requests(
    api: &isbn_crawler::fake_api::FakeApi,
    child: &mut tokio::process::Child,
    n: u64,
) -> Result<(), std::process::ExitStatus> {
    let wait = async {
        while api.total_requests() < n {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(status);
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("no progress within 60 s")
}

/// Every file of the database (main, WAL, shared memory), for byte sweeps.
pub fn db_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| p.exists())
        .collect()
}
