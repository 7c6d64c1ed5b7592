//! Storage faults on the real binary: a locked database, a full disk, a read-only file system,
//! a file that is not ours, a newer schema. Each is one clear line, exit 7, and nothing lost.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{KEY, Scratch, binary, binary_async, isbns, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeApi, FakeConfig};
use sqlx::Connection;

const STORAGE: i32 = ExitCode::Storage as i32;

fn run(db: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = binary()
        .arg("--db")
        .arg(db)
        .args(["--busy-timeout", "200ms"])
        .args(args)
        .env("GOOGLE_BOOKS_API_KEY", KEY)
        .output()
        .expect("run");
    let (o, e) = text(&out);
    let all = format!("{o}{e}");
    assert!(!all.contains(KEY), "the key leaked: {all}");
    (out.status.code(), all)
}

/// A connection holding a write transaction on the scratch database, as another process would.
async fn write_lock(s: &Scratch) -> sqlx::SqliteConnection {
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", s.db_str()))
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("begin");
    sqlx::query("UPDATE jobs SET updated_at = updated_at")
        .execute(&mut holder)
        .await
        .expect("write");
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_past_the_busy_timeout_is_exit_7_for_load_and_crawl() {
    let s = Scratch::new();
    let list = isbns(5);
    assert_eq!(s.load_lines(&list[..3]).await, ExitCode::Success);
    let more = s.file("more.txt", list[3..].join("\n").as_bytes());

    // Another process holds a write transaction.
    let mut holder = write_lock(&s).await;

    let (code, out) = run(&s.db(), &["load", &more]);
    assert_eq!(code, Some(STORAGE), "{out}");
    assert!(out.contains("is locked by another process"), "{out}");
    let api = FakeApi::start(FakeConfig::default()).await.expect("fake");
    let (code, out) = run(
        &s.db(),
        &["crawl", "--providers", "google", "--api-url", &api.url()],
    );
    assert_eq!(code, Some(STORAGE), "{out}");
    assert!(out.contains("is locked by another process"), "{out}");
    assert_eq!(
        api.total_requests(),
        0,
        "nothing was fetched that could not be stored"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("rollback");
    drop(holder);
    let (code, out) = run(&s.db(), &["load", &more]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        s.scalar("SELECT count(*) FROM jobs").await,
        5,
        "nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_from_an_endless_pipe_stops_reading_once_the_store_failed() {
    use std::io::Write;
    let s = Scratch::new();
    assert_eq!(s.load_lines(&isbns(1)).await, ExitCode::Success);
    let holder = write_lock(&s).await;

    let mut child = binary()
        .arg("--db")
        .arg(s.db())
        .args(["--busy-timeout", "200ms", "load", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // The producer writes until the pipe closes, or gives up after CAP bytes: a load that
    // read on after the store failed would drain all of them before exiting.
    const CAP: u64 = 400_000_000;
    let producer = std::thread::spawn(move || {
        let chunk = isbns(10_000).join("\n") + "\n";
        let mut written = 0u64;
        while written < CAP {
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return (written, true);
            }
            written += chunk.len() as u64;
        }
        (written, false)
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let (written, closed) = producer.join().expect("producer");
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(STORAGE), "{o}{e}");
    assert!(e.contains("is locked by another process"), "{e}");
    assert!(
        closed && written < CAP,
        "load read {written} bytes after its store failed"
    );
    drop(holder);
}

#[test]
fn a_file_that_is_not_sqlite_or_from_a_newer_version_is_exit_7() {
    let s = Scratch::new();
    let notes = s.file("notes.db", &vec![b'#'; 10_000]);
    let (code, out) = run(Path::new(&notes), &["status"]);
    assert_eq!(code, Some(STORAGE), "{out}");
    assert!(
        out.contains("is not an isbn-crawler SQLite database"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&notes).expect("read"),
        vec![b'#'; 10_000],
        "left untouched"
    );

    let list = s.file("list.txt", b"0306406152\n");
    let (code, out) = run(&s.db(), &["load", &list]);
    assert_eq!(code, Some(0), "{out}");
    let newer = tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let store = s.store().await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .execute(store.pool())
        .await
    });
    newer.expect("insert");
    let (code, out) = run(&s.db(), &["status"]);
    assert_eq!(code, Some(STORAGE), "{out}");
    assert!(out.contains("written by a newer isbn-crawler"), "{out}");
}

/// A small tmpfs of our own; None where mounting is not allowed (not root).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // CI runs as root and mounts; elsewhere this test cannot make a full disk.
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI must be able to mount a tmpfs"
            );
            eprintln!("cannot mount a tmpfs here (not root?): skipped");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {options}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_crawl_keeps_every_book_and_the_next_run_finishes() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let db = disk.dir.path().join("books.db");
    let s = Scratch::new();
    let list = isbns(400);
    let file = s.file("list.txt", list.join("\n").as_bytes());
    let (code, out) = run(&db, &["load", &file]);
    assert_eq!(code, Some(0), "{out}");
    let api = FakeApi::start(FakeConfig::default()).await.expect("fake");
    let url = api.url();
    let crawl = [
        "crawl",
        "--providers",
        "google",
        "--api-url",
        url.as_str(),
        "--rate",
        "unlimited",
    ];
    let (code, out) = run(&db, &crawl);
    assert_eq!(code, Some(STORAGE), "{out}");
    assert!(out.contains("the disk is full"), "{out}");

    disk.remount("size=64m");
    let books_before = count(&db, "SELECT count(*) FROM books").await;
    let done_before = count(&db, "SELECT count(*) FROM jobs WHERE state = 'done'").await;
    assert_eq!(books_before, done_before);
    assert!(books_before < 400, "the disk filled before the end");
    let out = binary_async()
        .arg("--db")
        .arg(&db)
        .args(crawl)
        .env("GOOGLE_BOOKS_API_KEY", KEY)
        .output()
        .await
        .expect("rerun");
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert_eq!(count(&db, "SELECT count(*) FROM books").await, 400);
    assert_eq!(
        count(&db, "SELECT count(*) FROM jobs WHERE state = 'done'").await,
        400
    );
    // Books stored before the disk filled were not fetched again.
    let asked_twice = api.requests_per_isbn().values().filter(|&&n| n > 1).count() as i64;
    assert!(asked_twice <= 400 - books_before, "{asked_twice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_system_is_exit_7_and_changes_nothing() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let db = disk.dir.path().join("books.db");
    let s = Scratch::new();
    let file = s.file("list.txt", b"0306406152\n");
    let (code, out) = run(&db, &["load", &file]);
    assert_eq!(code, Some(0), "{out}");
    let before = std::fs::read(&db).expect("read");
    disk.remount("ro");
    let more = s.file("more.txt", b"9780439023481\n");
    let (code, out) = run(&db, &["load", &more]);
    assert_eq!(code, Some(STORAGE), "{out}");
    assert!(out.contains("read-only"), "{out}");
    assert_eq!(std::fs::read(&db).expect("read"), before);
    disk.remount("rw");
}

async fn count(db: &Path, sql: &str) -> i64 {
    let store = isbn_crawler::store::SqliteStore::open_with(db, false, Duration::from_secs(5))
        .await
        .expect("open");
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .expect("query")
}

/// Another application's SQLite database gains no table and keeps its journal mode, whatever
/// the command; an empty file and a database without tables are ours to make.
#[test]
fn a_foreign_sqlite_database_is_refused_before_any_write() {
    let s = Scratch::new();
    let foreign = s.dir.path().join("calibre.db");
    let made = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute('CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT)'); \
             c.execute(\"INSERT INTO books (title) VALUES ('Dune')\"); c.commit()",
        ])
        .arg(&foreign)
        .status()
        .expect("python3");
    assert!(made.success());
    let before = std::fs::read(&foreign).expect("read");
    let list = s.file("list.txt", b"0306406152\n");
    for args in [
        vec!["status"],
        vec!["load", list.as_str()],
        vec!["export"],
        vec!["crawl", "--api-url", "http://127.0.0.1:9"],
    ] {
        let (code, out) = run(&foreign, &args);
        assert_eq!(code, Some(STORAGE), "{args:?}: {out}");
        assert!(
            out.contains("holds tables that are not isbn-crawler's"),
            "{out}"
        );
    }
    assert_eq!(std::fs::read(&foreign).expect("read"), before, "changed");
    for companion in ["-wal", "-shm"] {
        let mut p = foreign.clone().into_os_string();
        p.push(companion);
        assert!(!Path::new(&p).exists(), "{companion} made");
    }

    let empty = s.file("empty.db", b"");
    let (code, out) = run(Path::new(&empty), &["load", &list]);
    assert_eq!(code, Some(0), "{out}");
}
