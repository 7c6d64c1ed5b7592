//! Every command on a PostgreSQL database, through the real binary, and what a user meets when
//! the server is not there or the database is not ours. Each test has a database of its own
//! (see `tests/it/common/pg.rs`: skipped outside CI when no server answers).

use crate::common;

use std::collections::HashSet;

use common::pg::PgDb;
use common::{KEY, Scratch, binary_async, crawl, isbns, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::FakeConfig;

const PASSWORD: &str = "Sup3r-s3cret-pw";

/// The test database's URL with a password in it (trust authentication ignores it), so every
/// output can be searched for it.
fn with_password(url: &str) -> String {
    url.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1)
}

async fn binary(db: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = binary_async()
        .arg("--db")
        .arg(db)
        .args(args)
        .env("GOOGLE_BOOKS_API_KEY", KEY)
        .output()
        .await
        .expect("run");
    let (o, e) = text(&out);
    (out.status.code(), format!("{o}{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_on_postgres_and_the_password_never_shows() {
    let Some(s) = Scratch::postgres().await else {
        return;
    };
    let db = with_password(&s.db_str());
    let list = isbns(30);
    let mut lines = list.clone();
    lines.push("not an isbn".into());
    lines.push("978-0-00-200588-4".into());
    let file = s.file("list.txt", lines.join("\n").as_bytes());
    let mut outputs = Vec::new();

    let (code, out) = binary(&db, &["load", &file]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("30 new ISBNs queued"), "{out}");
    outputs.push(out);

    let mut config = FakeConfig::default();
    config.unknown.insert(list[0].clone());
    config.openlibrary.unknown.insert(list[0].clone());
    config.unknown.insert(list[1].clone());
    let api = start_fake(config).await;
    assert_eq!(
        crawl(
            &s,
            &api,
            &["--providers", "google,openlibrary", "--batch", "auto"]
        )
        .await,
        ExitCode::Success
    );
    assert_eq!(
        s.states().await,
        [("done".to_string(), 29), ("not_found".to_string(), 1)].into()
    );
    assert_eq!(s.scalar("SELECT count(*) FROM provider_books").await, 57);

    let (code, out) = binary(&db, &["status", "--json"]).await;
    assert_eq!(code, Some(0), "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["total"], 30);
    assert_eq!(status["lookups"]["openlibrary"]["done"], 29);
    outputs.push(out);

    let (code, out) = binary(&db, &["status"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("postgres://postgres@127.0.0.1:5432/"),
        "{out}"
    );
    outputs.push(out);

    let (code, out) = binary(&db, &["show", &list[1]]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("openlibrary"), "{out}");
    outputs.push(out);

    let csv = s.dir.path().join("books.csv");
    let (code, out) = binary(&db, &["export", "-o", &csv.display().to_string()]).await;
    assert_eq!(code, Some(0), "{out}");
    let rows = csv::Reader::from_path(&csv).expect("csv").records().count();
    assert_eq!(rows, 29);
    outputs.push(out);

    let (code, out) = binary(
        &db,
        &["export", "--format", "jsonl", "--state", "not_found"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(&list[0]), "{out}");
    outputs.push(out);

    let (code, out) = binary(&db, &["rejects"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("bad-check-digit") && out.contains("not an isbn"),
        "{out}"
    );
    outputs.push(out);

    let (code, out) = binary(&db, &["requeue", "--state", "not_found"]).await;
    assert_eq!(code, Some(0), "{out}");
    outputs.push(out);
    assert_eq!(s.open_jobs().await, 1);

    let report = s.dir.path().join("report.html");
    let (code, out) = binary(&db, &["report", "-o", &report.display().to_string()]).await;
    assert_eq!(code, Some(0), "{out}");
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(html.contains("postgres://postgres@127.0.0.1:5432/"));
    outputs.push(html);

    // `run` = load + crawl, on the same database.
    let url = api.url();
    let (code, out) = binary(
        &db,
        &[
            "run",
            &file,
            "--providers",
            "google",
            "--api-url",
            &url,
            "--rate",
            "unlimited",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    outputs.push(out);

    for out in &outputs {
        assert!(!out.contains(PASSWORD), "the password leaked: {out}");
    }
    // The README's queries run in psql as they do in sqlite3 (same tables and view).
    let pool = sqlx::PgPool::connect(&s.db_str()).await.expect("connect");
    let recipes: Vec<&str> = include_str!("../../README.md")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sqlite3 data/books.db \""))
        .filter_map(|l| l.strip_suffix('"'))
        .chain(["SELECT * FROM books_flat"])
        .collect();
    assert!(recipes.len() >= 7, "{recipes:?}");
    for sql in recipes {
        sqlx::query(sql)
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for table in ["runs", "jobs", "loads", "rejected_lines", "books"] {
        let hits = s
            .scalar(&format!(
                "SELECT count(*) FROM {table} t WHERE t::text LIKE '%{PASSWORD}%'"
            ))
            .await;
        assert_eq!(hits, 0, "the password reached {table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_is_exit_7_naming_host_and_port() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("list.txt");
    std::fs::write(&file, "9780306406157\n").expect("write");
    let db = format!("postgres://crawler:{PASSWORD}@127.0.0.1:1/books");
    let (code, out) = binary(&db, &["load", &file.display().to_string()]).await;
    assert_eq!(code, Some(i32::from(ExitCode::Storage.code())), "{out}");
    assert!(
        out.contains("postgres://crawler@127.0.0.1:1/books"),
        "{out}"
    );
    assert!(out.contains("is PostgreSQL running"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
    // PGPASSWORD is a secret too.
    let out = binary_async()
        .args(["--db", "postgres://crawler@127.0.0.1:1/books", "status"])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .await
        .expect("run");
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(7));
    assert!(!format!("{o}{e}").contains(PASSWORD));
    // A URL that cannot be read is a usage error that does not repeat it.
    let (code, out) = binary(
        &format!("postgres://crawler:{PASSWORD}@host:notaport/db"),
        &["status"],
    )
    .await;
    assert_eq!(code, Some(i32::from(ExitCode::Usage.code())), "{out}");
    assert!(out.contains("not a valid postgres:// URL"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
}

/// A server that answers but refuses what the URL says (a role it does not know, a database
/// that does not exist) is exit 7 with the server's reason, and the password is not repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_role_or_database_is_exit_7_saying_what_to_check() {
    let Some(pg) = PgDb::create().await else {
        return;
    };
    let url = pg.url();
    let no_role = with_password(&url).replacen("//postgres:", "//no_such_role:", 1);
    let no_db = format!("{}_gone", with_password(&url));
    for (db, said) in [(no_role, "no_such_role"), (no_db, "does not exist")] {
        let (code, out) = binary(&db, &["status"]).await;
        assert_eq!(code, Some(i32::from(ExitCode::Storage.code())), "{out}");
        assert!(out.contains("refused the connection"), "{out}");
        assert!(out.contains(said), "{out}");
        assert!(out.contains("pg_hba.conf"), "{out}");
        assert!(!out.contains(PASSWORD), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_not_ours_is_refused_and_an_empty_one_is_not_read() {
    let Some(pg) = PgDb::create().await else {
        return;
    };
    let (code, out) = binary(&pg.url(), &["status"]).await;
    assert_eq!(code, Some(i32::from(ExitCode::Usage.code())), "{out}");
    assert!(out.contains("isbn-crawler load FILE"), "{out}");

    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
    sqlx::query("CREATE TABLE customers (id int)")
        .execute(&pool)
        .await
        .expect("create");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("list.txt");
    std::fs::write(&file, "9780306406157\n").expect("write");
    let (code, out) = binary(&pg.url(), &["load", &file.display().to_string()]).await;
    assert_eq!(code, Some(i32::from(ExitCode::Storage.code())), "{out}");
    assert!(out.contains("not isbn-crawler's"), "{out}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    assert_eq!(
        tables.into_iter().collect::<HashSet<_>>(),
        ["customers".to_string()].into(),
        "nothing was added"
    );
}

/// The server going away mid-crawl (every connection terminated, as a restart does): the crawl
/// stops with exit 7 and says so (or goes on, had it reconnected); nothing stored is lost and
/// the next run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_crawl_loses_nothing_and_the_next_run_finishes() {
    let Some(s) = Scratch::postgres().await else {
        return;
    };
    assert_eq!(s.load_lines(&isbns(3_000)).await, ExitCode::Success);
    let api = start_fake(FakeConfig {
        latency: std::time::Duration::from_millis(2),
        ..FakeConfig::default()
    })
    .await;
    let mut child = common::crawl_binary(&s, &api, &["--concurrency", "8"])
        .spawn()
        .expect("spawn");
    if let Err(status) = common::wait_for_requests(&api, &mut child, 500).await {
        panic!("the crawl ended before the restart: {status}");
    }
    let name = s.pg.as_ref().map(|p| p.name.clone()).expect("pg");
    let admin = sqlx::PgPool::connect(&s.db_str()).await.expect("connect");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .fetch_all(&admin)
    .await
    .expect("terminate");
    assert!(!ended.is_empty(), "the crawler had connections");
    let out = child.wait_with_output().await.expect("wait");
    let (o, e) = text(&out);
    eprintln!("after the restart: exit {:?}: {e}", out.status.code());
    match out.status.code() {
        Some(7) => assert!(
            e.contains("lost the connection to the database server postgres://postgres@"),
            "{o}{e}"
        ),
        Some(0) => {}
        other => panic!("exit {other:?}: {o}{e}"),
    }
    let done = s
        .scalar("SELECT count(*) FROM jobs WHERE state = 'done'")
        .await;
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, done);
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 3_000)].into());
    assert_eq!(s.scalar("SELECT count(*) FROM books").await, 3_000);
}
