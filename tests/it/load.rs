//! `load` and `status` against real files and a real SQLite database.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Scratch, binary, text};
use isbn_crawler::ExitCode;

// ---- An independent reading of goodreads-books.csv, from the rules in the issue ----------

fn check10(d: &[u8]) -> u8 {
    let s: u32 = (0..9)
        .map(|i| (10 - i as u32) * u32::from(d[i] - b'0'))
        .sum();
    match (11 - s % 11) % 11 {
        10 => b'X',
        n => b'0' + n as u8,
    }
}

fn check13(d: &[u8]) -> u8 {
    let s: u32 = (0..12)
        .map(|i| u32::from(d[i] - b'0') * if i % 2 == 1 { 3 } else { 1 })
        .sum();
    b'0' + ((10 - s % 10) % 10) as u8
}

/// The ISBN-13 a goodreads cell names, or the reject reason code.
fn reference(cell: &str) -> Result<String, &'static str> {
    let v = cell.trim().to_uppercase();
    if v.is_empty() {
        return Err("empty");
    }
    if v.contains('E') && v.contains('.') {
        return Err("scientific-notation");
    }
    if !v.bytes().all(|b| b.is_ascii_digit() || b == b'X') {
        return Err("bad-characters");
    }
    if v.find('X')
        .is_some_and(|i| i != v.len() - 1 || !(7..=10).contains(&v.len()))
    {
        return Err("misplaced-x");
    }
    match v.len() {
        13 if !(v.starts_with("978") || v.starts_with("979")) => Err("bad-prefix"),
        13 if check13(v.as_bytes()) != v.as_bytes()[12] => Err("bad-check-digit"),
        13 => Ok(v),
        7..=10 => {
            let ten = format!("{v:0>10}");
            if check10(ten.as_bytes()) != ten.as_bytes()[9] {
                return Err("bad-check-digit");
            }
            let mut t = format!("978{}", &ten[..9]).into_bytes();
            t.push(check13(&t));
            Ok(String::from_utf8(t).expect("ascii"))
        }
        _ => Err("wrong-length"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodreads_export_loads_with_exact_counts() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/goodreads-books.csv"
    );
    // Expected figures, row by row: isbn13 first, then isbn; the reason of the first column
    // whose failure says more than `empty`/`scientific-notation`.
    let mut rdr = csv::Reader::from_path(path).expect("fixture");
    let headers = rdr.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect("column");
    let (c13, c10) = (col("isbn13"), col("isbn"));
    let mut expected_set = BTreeSet::new();
    let mut valid_rows = 0u64;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for row in rdr.records() {
        let row = row.expect("row");
        let mut reason: Option<&str> = None;
        let mut found = None;
        for c in [c13, c10] {
            match reference(&row[c]) {
                Ok(isbn) => {
                    found = Some(isbn);
                    break;
                }
                Err(r) => {
                    let weak = |r: &str| r == "empty" || r == "scientific-notation";
                    if reason.is_none_or(|prev| weak(prev) && !weak(r)) {
                        reason = Some(r);
                    }
                }
            }
        }
        match found {
            Some(isbn) => {
                valid_rows += 1;
                expected_set.insert(isbn);
            }
            None => {
                *reasons
                    .entry(reason.expect("a reason").to_string())
                    .or_default() += 1
            }
        }
    }
    assert!(expected_set.len() > 13_000, "the fixture is mostly valid");

    let s = Scratch::new();
    let out = binary()
        .args(["--db", &s.db_str(), "load", path])
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let queued = expected_set.len() as u64;
    let duplicates = valid_rows - queued;
    let rejected: u64 = reasons.values().sum();
    let line = format!(
        "{}: {} lines read: {queued} new ISBNs queued, {duplicates} already known, {rejected} rejected",
        path,
        valid_rows + rejected
    );
    assert!(stdout.contains(&line), "expected {line:?} in:\n{stdout}");

    let stored: BTreeSet<String> = s
        .strings("SELECT isbn13 FROM jobs")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, expected_set);
    let stored_reasons = s
        .grouped("SELECT reason, count(*) FROM rejected_lines GROUP BY reason")
        .await;
    let reasons: BTreeMap<String, i64> = reasons.into_iter().map(|(k, v)| (k, v as i64)).collect();
    assert_eq!(stored_reasons, reasons);
    // Row 1 (Half-Blood Prince): isbn13 in scientific notation, isbn `439785960` without its
    // leading zero; the key is recovered, and the ISBN-10 kept beside it.
    assert_eq!(
        s.strings("SELECT isbn10 FROM jobs WHERE isbn13 = '9780439785969'")
            .await,
        ["0439785960"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_is_idempotent_and_never_resets_a_job() {
    let s = Scratch::new();
    let first = s.file("a.txt", b"0306406152\n9780439023481\n9.78044E+12\nnope\n");
    assert_eq!(s.run(&["load", &first]).await, ExitCode::Success);
    assert_eq!(s.scalar("SELECT count(*) FROM jobs").await, 2);
    assert_eq!(s.scalar("SELECT count(*) FROM rejected_lines").await, 2);

    // A job the crawl has finished keeps its state through any re-load.
    let store = s.store().await;
    sqlx::query("UPDATE jobs SET state = 'done', attempts = 1 WHERE isbn13 = '9780306406157'")
        .execute(store.pool())
        .await
        .expect("update");

    assert_eq!(s.run(&["load", &first]).await, ExitCode::Success);
    assert_eq!(s.scalar("SELECT count(*) FROM jobs").await, 2);
    assert_eq!(
        s.scalar("SELECT count(*) FROM rejected_lines").await,
        2,
        "no duplicate rejects"
    );
    // The same books in other forms, plus one new one.
    let overlap = s.file(
        "b.csv",
        b"title,isbn\nA,978-0-306-40615-7\nB,ISBN 0-439-02348-3\nC,0-8044-2957-X\n",
    );
    assert_eq!(s.run(&["load", &overlap]).await, ExitCode::Success);
    assert_eq!(s.scalar("SELECT count(*) FROM jobs").await, 3);
    assert_eq!(
        s.strings("SELECT state FROM jobs WHERE isbn13 = '9780306406157'")
            .await,
        ["done"]
    );
    assert_eq!(
        s.scalar("SELECT attempts FROM jobs WHERE isbn13 = '9780306406157'")
            .await,
        1
    );
    // Sources and lines are those of the first load that named the book.
    assert_eq!(
        s.scalar("SELECT source_line FROM jobs WHERE isbn13 = '9780804429573'")
            .await,
        4
    );
}

#[test]
fn stdin_and_status_json() {
    let s = Scratch::new();
    let mut child = binary()
        .args(["--db", &s.db_str(), "load", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"0-306-40615-2\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains("<stdin>: 1 lines read: 1 new ISBNs queued"),
        "{stdout}"
    );

    let out = binary()
        .args(["--db", &s.db_str(), "status", "--json"])
        .output()
        .expect("run");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(json["jobs"]["pending"], 1);
    assert_eq!(json["jobs"]["done"], 0);
    assert_eq!(json["total"], 1);
    assert_eq!(json["due_now"], 1);

    let out = binary()
        .args(["--db", &s.db_str(), "status"])
        .output()
        .expect("run");
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("pending              1  (1 due now)"),
        "{stdout}"
    );
}

#[test]
fn hostile_files_give_clear_messages_and_fail_only_when_nothing_was_read() {
    let s = Scratch::new();
    let run = |file: &str| {
        let out = binary()
            .args(["--db", &s.db_str(), "load", file])
            .output()
            .expect("run");
        let (o, e) = text(&out);
        (out.status.code(), format!("{o}{e}"))
    };

    let binary_file = s.file("blob.bin", &[0x7f, b'E', b'L', b'F', 0, 0, 1, 2, 3]);
    let (code, out) = run(&binary_file);
    assert_eq!(code, Some(ExitCode::NoInput.code().into()), "{out}");
    assert!(out.contains("looks like a binary file"), "{out}");

    let empty = s.file("empty.txt", b"");
    let (code, out) = run(&empty);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("the input is empty"), "{out}");

    let mut long = vec![b'7'; 1024 * 1024];
    long.extend_from_slice(b"\n0306406152\n");
    let long = s.file("long.txt", &long);
    let (code, out) = run(&long);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("line-too-long"), "{out}");

    let ragged = s.file(
        "ragged.csv",
        b"title,isbn\nA,0306406152\nB,0439023483,extra\n",
    );
    let (code, out) = run(&ragged);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ragged-row") && out.contains("line 3"),
        "{out}"
    );

    let mut latin1 = b"0306406152\n".to_vec();
    latin1.extend_from_slice(b"caf\xe9\n");
    let latin1 = s.file("latin1.txt", &latin1);
    let (code, out) = run(&latin1);
    assert_eq!(code, Some(0), "{out}");
    // Not UTF-8 at the start: read as the legacy 8-bit encoding, so the line reads as text.
    assert!(
        out.contains("windows-1252") && out.contains("bad-characters") && out.contains("café"),
        "{out}"
    );

    let (code, out) = run("/no/such/file.txt");
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("/no/such/file.txt") && out.contains("No such file"),
        "{out}"
    );

    // Every rejected line is kept with where it came from.
    let rows = s.scalar("SELECT count(*) FROM rejected_lines WHERE reason IN ('line-too-long', 'ragged-row', 'bad-characters', 'binary-file')").await_blocking();
    assert_eq!(rows, 4);
}

/// A tiny blocking bridge for the sync tests above.
trait Blocking {
    type Out;
    fn await_blocking(self) -> Self::Out;
}

impl<F: std::future::Future> Blocking for F {
    type Out = F::Output;
    fn await_blocking(self) -> F::Output {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(self)
    }
}

/// The integer value of `PRAGMA name` on `conn`.
async fn pragma(conn: &mut sqlx::SqliteConnection, name: &str) -> i64 {
    sqlx::query_scalar(&format!("PRAGMA {name}"))
        .fetch_one(conn)
        .await
        .expect(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pragmas_read_back_as_set() {
    let s = Scratch::new();
    s.load_lines(&["0306406152".into()]).await;
    let store = s.store().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    assert_eq!(pragma(&mut conn, "synchronous").await, 1, "NORMAL");
    assert_eq!(pragma(&mut conn, "foreign_keys").await, 1);
    let busy = pragma(&mut conn, "busy_timeout").await;
    assert!(busy >= 1000, "busy timeout {busy} ms");
    assert_eq!(
        pragma(&mut conn, "page_size").await,
        i64::from(isbn_crawler::store::sqlite::PAGE_SIZE)
    );
    assert_eq!(pragma(&mut conn, "wal_autocheckpoint").await, 256);
}

/// A database made with SQLite's default 4 KiB pages (by an earlier version, or by hand)
/// keeps them: the page size of a file with tables cannot change, and setting it must not
/// fail the open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_other_pages_keeps_them_and_works() {
    use sqlx::ConnectOptions as _;
    let s = Scratch::new();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(s.db())
        .create_if_missing(true)
        .page_size(4096)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .expect("create");
    // A table made (and dropped) fixes the page size.
    sqlx::raw_sql("CREATE TABLE t (x); DROP TABLE t")
        .execute(&mut conn)
        .await
        .expect("table");
    drop(conn);
    s.load_lines(&["0306406152".into(), "9780140449136".into()])
        .await;
    let store = s.store().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    assert_eq!(pragma(&mut conn, "page_size").await, 4096);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(jobs, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_is_an_index_scan() {
    let s = Scratch::new();
    s.load_lines(&["0306406152".into()]).await;
    let store = s.store().await;
    use sqlx::Row;
    let plan: Vec<String> = sqlx::query(&format!(
        "EXPLAIN QUERY PLAN {}",
        isbn_crawler::store::sqlite::CLAIM_DUE_SQL
    ))
    .bind("google")
    .bind(3)
    .bind(10)
    .fetch_all(store.pool())
    .await
    .expect("plan")
    .into_iter()
    .map(|r| r.get::<String, _>(3))
    .collect();
    let plan = plan.join(" | ");
    assert!(
        plan.contains("INDEX lookups_due (provider=? AND next_attempt_at<?)"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
}

/// The length of the `-wal` file beside the scratch database (0 when there is none).
fn wal_len(s: &Scratch) -> u64 {
    let name = s
        .db()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    std::fs::metadata(s.db().with_file_name(format!("{name}-wal"))).map_or(0, |m| m.len())
}

/// A command that fails after opening the database closes it too: the writes in the WAL (here
/// another connection's, still open) end up in the file.
#[tokio::test]
async fn a_command_that_fails_still_moves_the_wal_into_the_file() {
    let s = Scratch::new();
    assert_eq!(s.load_lines(&common::isbns(50)).await, ExitCode::Success);
    let other = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.db().display()))
        .await
        .expect("open");
    sqlx::query("UPDATE jobs SET source = 'edited'")
        .execute(&other)
        .await
        .expect("update");
    assert!(wal_len(&s) > 0, "the update is in the WAL");
    let nowhere = s.dir.path().join("no/such/dir/out.csv");
    let code = s
        .run(&["export", "-o", &nowhere.display().to_string()])
        .await;
    assert_eq!(code, ExitCode::Error);
    assert_eq!(wal_len(&s), 0, "the failed export checkpointed the WAL");
    other.close().await;
}

#[tokio::test]
async fn after_a_command_the_database_file_alone_holds_everything() {
    let s = Scratch::new();
    assert_eq!(s.load_lines(&common::isbns(500)).await, ExitCode::Success);
    // What a user copies or mails: the file without the `-wal` beside it.
    let copy = s.db().with_file_name("copy.db");
    std::fs::copy(s.db(), &copy).expect("copy");
    let url = format!("sqlite://{}?mode=ro", copy.display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the copy");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .expect("the copy has the jobs table");
    assert_eq!(jobs, 500);
    assert_eq!(wal_len(&s), 0, "nothing is left in the -wal file");
}

// ---- Spreadsheets under a budget ---------------------------------------------------------

/// Every part of `zip`, with `edit` applied to each part's bytes by name, as a new zip.
fn rezip(
    zip: &[u8],
    edit: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    extra: &[(&str, Vec<u8>)],
) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut from = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    let mut to = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..from.len() {
        let mut part = from.by_index(i).expect("part");
        let name = part.name().expect("name").into_owned();
        let mut bytes = Vec::new();
        part.read_to_end(&mut bytes).expect("read");
        // OpenDocument's `mimetype` comes first and stored, or the file is not recognised.
        let options = if name == "mimetype" {
            deflated.compression_method(zip::CompressionMethod::Stored)
        } else {
            deflated
        };
        to.start_file(name.as_str(), options).expect("start");
        to.write_all(&edit(&name, bytes)).expect("write");
    }
    for (name, bytes) in extra {
        to.start_file(*name, deflated).expect("start");
        to.write_all(bytes).expect("write");
    }
    to.finish().expect("finish").into_inner()
}

/// A hostile workbook is that file's error naming the limit, never an abort, and the files
/// after it on the command line load.
#[test]
fn hostile_spreadsheets_are_refused_and_the_next_file_loads() {
    let s = Scratch::new();
    let fixture =
        |name: &str| std::fs::read(format!("tests/fixtures/formats/{name}")).expect("fixture");
    let good = s.file("good.txt", b"9780306406157\n");
    let db = s.db_str();
    let load = |file: &str| {
        let out = binary()
            .args(["--db", &db, "load", file, &good])
            .output()
            .expect("load runs");
        let (stdout, stderr) = text(&out);
        assert!(out.status.code().is_some(), "killed: {stderr}");
        (out.status.code(), format!("{stdout}{stderr}"))
    };

    // One cell at XFD1048576 beside A1: streamed, so it loads (the far cell is a blank row).
    let far = rezip(
        &fixture("books.xlsx"),
        |name, bytes| {
            if name != "xl/worksheets/sheet1.xml" {
                return bytes;
            }
            String::from_utf8(bytes)
                .expect("xml")
                .replace(
                    "</sheetData>",
                    r#"<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>"#,
                )
                .replace("<dimension ref=\"A1:D13\"/>", "<dimension ref=\"A1:XFD1048576\"/>")
                .into_bytes()
        },
        &[],
    );
    let far = s.file("far.xlsx", &far);
    let (code, out) = load(&far);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("far.xlsx: 14 lines read: 12 new"), "{out}");

    // A one-field change to a valid .xls: its DIMENSIONS record claims 4 billion rows.
    let mut xls = fixture("books.xls");
    let at = xls
        .windows(4)
        .position(|w| w == [0x00, 0x02, 0x0e, 0x00])
        .expect("a DIMENSIONS record");
    xls[at + 8..at + 12].copy_from_slice(&[0xff; 4]);
    let xls = s.file("dims.xls", &xls);
    let (code, out) = load(&xls);
    assert_eq!(code, Some(ExitCode::NoInput.code().into()), "{out}");
    assert!(out.contains("(limit 2000000)"), "{out}");
    assert!(
        out.contains("spreadsheet over its limits: sheet 2's declared size"),
        "{out}"
    );
    assert!(out.contains("good.txt: 1 lines read"), "{out}");

    // A zip bomb: a part of zeros that inflates a thousandfold.
    let bomb = rezip(
        &fixture("books.xlsx"),
        |_, b| b,
        &[("xl/media/zeros.bin", vec![0u8; 4 << 20])],
    );
    let bomb = s.file("bomb.xlsx", &bomb);
    let (code, out) = load(&bomb);
    assert_eq!(code, Some(ExitCode::NoInput.code().into()), "{out}");
    assert!(out.contains("-fold (limit 100)"), "{out}");

    // An .ods whose one valued row is repeated a million times, 100 cells wide.
    let ods = rezip(
        &fixture("books.ods"),
        |name, bytes| {
            if name != "content.xml" {
                return bytes;
            }
            String::from_utf8(bytes)
                .expect("xml")
                .replacen(
                    "<table:table-row",
                    r#"<table:table-row table:number-rows-repeated="1000000"><table:table-cell table:number-columns-repeated="100" office:value-type="float" office:value="1"/></table:table-row><table:table-row"#,
                    1,
                )
                .into_bytes()
        },
        &[],
    );
    let ods = s.file("repeat.ods", &ods);
    let (code, out) = load(&ods);
    assert_eq!(code, Some(ExitCode::NoInput.code().into()), "{out}");
    assert!(out.contains("over its limits: table 1 spans 1000"), "{out}");
}
