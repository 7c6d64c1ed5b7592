//! `show`, `export`, `rejects`, `requeue` and the README's sqlite3 recipes, after a real crawl
//! against the in-process fake.

use crate::common;

use std::collections::BTreeMap;

use common::{Scratch, binary, crawl, isbns, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeApi, FakeConfig, Fault, title_for};

/// 40 ISBNs crawled: 36 done, 2 not found, 2 failed; plus 3 rejected input lines.
async fn crawled() -> (Scratch, Vec<String>, FakeApi) {
    let s = Scratch::new();
    let list = isbns(40);
    let mut lines = list.clone();
    lines.extend([
        "9.78044E+12".into(),
        "0306406153".into(),
        "not an isbn".into(),
    ]);
    assert_eq!(s.load_lines(&lines).await, ExitCode::Success);
    let mut config = FakeConfig::default();
    config.unknown.insert(list[3].clone());
    config.wrong_book.insert(list[4].clone());
    for isbn in &list[5..7] {
        config.scripted.insert(
            isbn.clone(),
            [Fault::Unavailable, Fault::Unavailable].into(),
        );
    }
    let api = start_fake(config).await;
    let code = crawl(
        &s,
        &api,
        &[
            "--rate",
            "unlimited",
            "--max-attempts",
            "2",
            "--backoff-base",
            "1ms",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::JobsFailed);
    (s, list, api)
}

fn run(s: &Scratch, args: &[&str]) -> (Option<i32>, String, String) {
    let out = binary()
        .arg("--db")
        .arg(s.db())
        .args(args)
        .output()
        .expect("run");
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_has_one_row_per_done_job_and_parses_back() {
    let (s, list, _api) = crawled().await;
    let (code, out, err) = run(&s, &["export", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let header = rdr.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 36);
    let done: Vec<&String> = list
        .iter()
        .enumerate()
        .filter(|(i, _)| !(3..7).contains(i))
        .map(|(_, isbn)| isbn)
        .collect();
    for (row, isbn) in rows.iter().zip(&done) {
        assert_eq!(&row[col("isbn13")], *isbn);
        assert_eq!(row[col("state")], *"done");
        // Commas, quotes and non-ASCII survive.
        assert_eq!(row[col("title")], title_for(isbn));
        assert_eq!(
            row[col("description")],
            *"<p>A line,\nanother \"quoted\" line, and ünïcödé.</p>"
        );
        assert!(row[col("authors")].ends_with("; Second, Author"));
    }
    assert!(
        !header.iter().any(|h| h == "raw_json"),
        "raw_json only on request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_and_json_round_trip_with_arrays_and_numbers_intact() {
    let (s, _, _api) = crawled().await;
    let (code, out, err) = run(&s, &["export", "--format", "jsonl"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 36);
    for row in &rows {
        let authors = row["authors"].as_array().expect("authors is an array");
        assert_eq!(authors.len(), 2);
        assert_eq!(authors[1], "Second, Author");
        assert!(row["page_count"].is_i64());
        assert!(row["average_rating"].is_f64());
        assert_eq!(
            row["title"],
            title_for(row["isbn13"].as_str().expect("isbn13"))
        );
    }
    let (_, json, _) = run(
        &s,
        &["export", "--format", "json", "--columns", "isbn13,raw_json"],
    );
    let array: Vec<serde_json::Value> = serde_json::from_str(&json).expect("a JSON array");
    assert_eq!(array.len(), 36);
    assert!(array[0]["raw_json"]["volumeInfo"]["title"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_columns_and_output_do_what_they_say() {
    let (s, list, _api) = crawled().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("problems.csv");
    let (code, _, err) = run(
        &s,
        &[
            "export",
            "--state",
            "not_found,failed",
            "--columns",
            "isbn13,state,last_error",
            "--output",
            &path.display().to_string(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let body = std::fs::read_to_string(&path).expect("written");
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        rdr.headers().expect("header").iter().collect::<Vec<_>>(),
        ["isbn13", "state", "last_error"]
    );
    let rows: BTreeMap<String, (String, String)> = rdr
        .records()
        .map(|r| {
            let r = r.expect("row");
            (r[0].to_string(), (r[1].to_string(), r[2].to_string()))
        })
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[&list[3]].0, "not_found");
    assert_eq!(rows[&list[4]].1, "1 item(s) returned, none with this ISBN");
    assert_eq!(rows[&list[5]].0, "failed");
    assert!(rows[&list[5]].1.contains("HTTP 503"));

    // An unknown column fails before anything is written: no file, no temporary file.
    let bad = dir.path().join("bad.csv");
    let (code, _, err) = run(
        &s,
        &[
            "export",
            "--columns",
            "isbn13,colour",
            "--output",
            &bad.display().to_string(),
        ],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown column \"colour\""), "{err}");
    let (code, _, err) = run(&s, &["export", "--state", "finished"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown state \"finished\""), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["problems.csv"]);

    // An unwritable path: one clear line, exit 1, nothing left behind.
    let (code, _, err) = run(&s, &["export", "--output", "/no/such/dir/x.csv"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "isbn-crawler: cannot write /no/such/dir/x.csv: No such file or directory (os error 2)"
    );
    // A database that does not exist.
    let (code, _, err) = binary()
        .args(["--db", "/no/such/books.db", "export"])
        .output()
        .map(|o| (o.status.code(), String::new(), text(&o).1))
        .expect("run");
    assert_eq!(code, Some(2));
    assert!(err.contains("no database at /no/such/books.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_the_same_book_for_every_form_of_its_isbn() {
    let (s, _, _api) = crawled().await;
    // isbns(40)[0] is 978-0-00-100000-?; find its forms.
    let isbn13 = isbns(1).remove(0);
    let isbn: isbn_crawler::isbn::Isbn13 = isbn13.parse().expect("valid");
    let ten = isbn.isbn10().expect("978 has an ISBN-10");
    let hyphenated = format!(
        "{}-{}-{}-{}-{}",
        &isbn13[..3],
        &isbn13[3..4],
        &isbn13[4..7],
        &isbn13[7..12],
        &isbn13[12..]
    );
    let label = format!("ISBN: {isbn13}");
    let outputs: Vec<String> = [ten.as_str(), hyphenated.as_str(), label.as_str()]
        .iter()
        .map(|form| {
            let (code, out, err) = run(&s, &["show", form]);
            assert_eq!(code, Some(0), "{form}: {err}");
            out
        })
        .collect();
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[1], outputs[2]);
    assert!(outputs[0].contains(&title_for(&isbn13)), "{}", outputs[0]);
    assert!(outputs[0].contains("job          done after 1 attempt(s)"));

    let (code, json, _) = run(&s, &["show", &ten, "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["raw_json"]["volumeInfo"]["title"], title_for(&isbn13));

    let (code, _, err) = run(&s, &["show", "9780306406157"]);
    assert_eq!(code, Some(i32::from(ExitCode::NotLoaded.code())));
    assert!(err.contains("was never loaded"), "{err}");
    let (code, _, err) = run(&s, &["show", "0306406153"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a valid ISBN (bad-check-digit)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_failed_then_crawl_finishes_them() {
    let (s, list, api) = crawled().await;
    let (code, out, _) = run(&s, &["requeue", "--state", "failed", "--older-than", "30d"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("requeued 0 lookups"),
        "nothing is 30 days old: {out}"
    );
    let (code, out, _) = run(
        &s,
        &["requeue", "--state", "failed", "--error", "backendFailed"],
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("requeued 2 lookups (failed)"), "{out}");
    let states = s.states().await;
    assert_eq!(states.get("failed"), None);
    assert_eq!(states.get("pending"), Some(&2));
    assert_eq!(
        s.scalar("SELECT max(attempts) FROM jobs WHERE state = 'pending'")
            .await,
        0
    );
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    let states = s.states().await;
    assert_eq!(states.get("done"), Some(&38));
    assert_eq!(
        s.strings(&format!(
            "SELECT title FROM books WHERE isbn13 = '{}'",
            list[5]
        ))
        .await,
        [title_for(&list[5])]
    );
    let (code, _, err) = run(&s, &["requeue", "--state", "in_progress"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot be requeued"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_csv_lists_exactly_the_rejected_lines() {
    let (s, _, _api) = crawled().await;
    let (code, out, _) = run(&s, &["rejects", "--format", "csv"]);
    assert_eq!(code, Some(0));
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(
        rdr.headers().expect("header").iter().collect::<Vec<_>>(),
        ["source", "line", "raw", "reason"]
    );
    let rows: Vec<(String, String, String)> = rdr
        .records()
        .map(|r| {
            let r = r.expect("row");
            (r[1].to_string(), r[2].to_string(), r[3].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "41".into(),
                "9.78044E+12".into(),
                "scientific-notation".into()
            ),
            ("42".into(), "0306406153".into(), "bad-check-digit".into()),
            ("43".into(), "not an isbn".into(), "bad-characters".into()),
        ]
    );
    let (code, table, _) = run(&s, &["rejects"]);
    assert_eq!(code, Some(0));
    assert!(table.starts_with("rejected input lines: 3\n"), "{table}");
    assert!(table.contains("scientific-notation"), "{table}");
}

/// Every `sqlite3 data/books.db "..."` recipe in the README runs on a crawled database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_sqlite3_recipes_run_as_written() {
    let (s, _, _api) = crawled().await;
    let readme = include_str!("../../README.md");
    let recipes: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sqlite3 data/books.db \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(recipes.len() >= 6, "{recipes:?}");
    let store = s.store().await;
    for sql in recipes {
        sqlx::query(sql)
            .fetch_all(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// `-o` and `--report` never replace what the command reads, nor a directory, a device, a FIFO
/// or a link; `--force` writes through a link to its file; `-o -` is stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_never_destroys_input() {
    let s = Scratch::new();
    assert_eq!(s.load_lines(&isbns(3)).await, ExitCode::Success);
    let db = s.db().display().to_string();
    let before = std::fs::read(s.db()).expect("db");
    let dir = s.dir.path();
    let wal = format!("{db}-wal");
    let hard = dir.join("hard.db");
    std::fs::hard_link(s.db(), &hard).expect("hard link");
    let hard = hard.display().to_string();
    let dotted = format!(
        "{}/../{}/books.db",
        dir.display(),
        dir.file_name().and_then(|n| n.to_str()).expect("name")
    );
    let subdir = dir.join("sub");
    std::fs::create_dir(&subdir).expect("dir");
    let subdir = subdir.display().to_string();
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let fifo = fifo.display().to_string();
    let list = s.file("list2.txt", b"9780306406157\n");
    for args in [
        vec!["export", "-o", &db],
        vec!["export", "-o", &wal],
        vec!["export", "-o", &hard],
        vec!["export", "-o", &dotted],
        vec!["export", "-o", &subdir],
        vec!["export", "-o", "/dev/null"],
        vec!["export", "-o", &fifo],
        vec!["rejects", "-o", &db],
        vec!["report", "-o", &db],
        vec!["crawl", "--report", &db],
        vec!["run", &list, "--report", &list],
    ] {
        assert_eq!(s.run(&args).await, ExitCode::Usage, "{args:?}");
    }
    assert_eq!(
        std::fs::read(s.db()).expect("db"),
        before,
        "the database changed"
    );
    assert_eq!(std::fs::read(&list).expect("list"), b"9780306406157\n");
    assert!(
        !std::fs::metadata(&fifo)
            .expect("fifo")
            .file_type()
            .is_file()
    );

    // A link: refused, then with --force its file is replaced and the link stays a link.
    let real = dir.join("real.csv");
    std::fs::write(&real, "old").expect("write");
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let link_s = link.display().to_string();
    assert_eq!(s.run(&["export", "-o", &link_s]).await, ExitCode::Usage);
    assert_eq!(std::fs::read_to_string(&real).expect("real"), "old");
    assert_eq!(
        s.run(&["--force", "export", "--state", "pending", "-o", &link_s])
            .await,
        ExitCode::Success
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .expect("real")
            .starts_with("isbn13,")
    );
    // A link to the database is refused even with --force.
    let to_db = dir.join("to-db");
    std::os::unix::fs::symlink(s.db(), &to_db).expect("symlink");
    let to_db = to_db.display().to_string();
    assert_eq!(
        s.run(&["--force", "export", "-o", &to_db]).await,
        ExitCode::Usage
    );
    assert_eq!(std::fs::read(s.db()).expect("db"), before);

    // `-o -` is standard output.
    let out = binary()
        .args(["--db", &db, "export", "--state", "pending", "-o", "-"])
        .output()
        .expect("runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(!dir.join("-").exists());
}

/// A hostile title must not reach a spreadsheet as a live formula: CSV text cells starting
/// with `=`, `+`, `-`, `@`, a tab or CR get a leading `'` (unless `--raw-cells`); numbers,
/// ISBNs and JSON are never altered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_like_text_reaches_a_spreadsheet_as_text() {
    let s = Scratch::new();
    let isbn = isbns(1).remove(0);
    let hostile = r#"=HYPERLINK("http://evil.example","open")"#;
    let list = s.file("l.txt", format!("{isbn}\n=1+2 not an isbn\n").as_bytes());
    assert_eq!(s.run(&["load", &list]).await, ExitCode::Success);
    let api = start_fake(FakeConfig {
        catalogue: [(
            isbn.clone(),
            (hostile.to_string(), vec!["@evil".to_string()]),
        )]
        .into(),
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    let cells = |args: &[&str]| -> Vec<String> {
        let (code, out, err) = run(&s, args);
        assert_eq!(code, Some(0), "{err}");
        let mut rdr = csv::Reader::from_reader(out.as_bytes());
        rdr.records()
            .next()
            .expect("a row")
            .expect("row")
            .iter()
            .map(str::to_string)
            .collect()
    };
    let columns = ["export", "--columns", "isbn13,title,authors,page_count"];
    let safe = cells(&columns);
    assert_eq!(safe[0], isbn, "an ISBN is never altered");
    assert_eq!(safe[1], format!("'{hostile}"));
    assert_eq!(safe[2], "'@evil");
    let raw = cells(&[&columns[..], &["--raw-cells"]].concat());
    assert_eq!((raw[1].as_str(), raw[2].as_str()), (hostile, "@evil"));
    // JSON keeps the text as received.
    let (_, json, _) = run(&s, &["export", "--format", "jsonl", "--columns", "title"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert_eq!(v["title"], hostile);
    // A rejected line is written back the same way.
    let rejected = cells(&["rejects", "--format", "csv"]);
    assert_eq!(rejected[2], "'=1+2 not an isbn");
    assert_eq!(
        cells(&["rejects", "--format", "csv", "--raw-cells"])[2],
        "=1+2 not an isbn"
    );
}

/// Debian's python3 with bibtexparser (installed by `.ci/run`); `None` where it is missing,
/// which fails under `CI=true`.
fn bibtexparser() -> Option<std::process::Command> {
    let ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import bibtexparser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs python3-bibtexparser (apt-get install python3-bibtexparser)"
        );
        eprintln!("skipped: /usr/bin/python3 has no bibtexparser");
        return None;
    }
    Some(std::process::Command::new("/usr/bin/python3"))
}

/// Three ISBNs crawled: the first found as a book titled `hostile` by Ludwig van Beethoven, the
/// second as Gilead, the third by nobody.
async fn two_found(hostile: &str) -> (Scratch, Vec<String>, FakeApi) {
    let s = Scratch::new();
    let list = isbns(3);
    assert_eq!(s.load_lines(&list).await, ExitCode::Success);
    let book = |title: &str, author: &str| (title.to_string(), vec![author.to_string()]);
    let api = start_fake(FakeConfig {
        catalogue: [
            (list[0].clone(), book(hostile, "Ludwig van Beethoven")),
            (list[1].clone(), book("Gilead", "Marilynne Robinson")),
        ]
        .into(),
        unknown: [list[2].clone()].into(),
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(crawl(&s, &api, &[]).await, ExitCode::Success);
    (s, list, api)
}

/// CSL-JSON, RIS and BibTeX of found books, hostile text included, read back by parsers that
/// are not ours: Python's json and bibtexparser, and RIS's own line rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citation_formats_read_back_with_an_independent_parser() {
    let hostile = "}@misc{x, 50% off {a} \"quoted\"\nnext line \u{5e9}\u{5dc}\u{5d5}\u{5dd} \\end";
    let (s, list, _api) = two_found(hostile).await;
    let export = |format: &str| -> String {
        let (code, out, err) = run(&s, &["export", "--format", format]);
        assert_eq!(code, Some(0), "{err}");
        out
    };
    // CSL-JSON: an array of book items, the hostile title intact.
    let csl: serde_json::Value = serde_json::from_str(&export("csl-json")).expect("CSL-JSON");
    let items = csl.as_array().expect("an array");
    assert_eq!(items.len(), 2, "found books only");
    let first = items.iter().find(|i| i["ISBN"] == list[0]).expect("item");
    assert_eq!(first["type"], "book");
    assert!(first["title"].as_str().expect("title").starts_with(hostile));
    assert_eq!(first["author"][0]["family"], "van Beethoven");
    // RIS: every line a tag, two spaces, a dash; one record per book.
    let ris = export("ris");
    let tag = regex_free_ris_check(&ris);
    assert_eq!(tag, 2, "{ris}");
    // BibTeX, through bibtexparser.
    let Some(mut python) = bibtexparser() else {
        return;
    };
    let bib = s.file("books.bib", export("bibtex").as_bytes());
    let script = "import bibtexparser, json, sys\n\
                  db = bibtexparser.load(open(sys.argv[1], encoding='utf-8'))\n\
                  print(json.dumps([[e['ID'], e.get('isbn'), e.get('title'), e.get('author')] for e in db.entries]))";
    let out = python.args(["-c", script, &bib]).output().expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<(String, String, String, String)> =
        serde_json::from_slice(&out.stdout).expect("entries");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_ne!(entries[0].0, entries[1].0, "unique keys");
    let hostile_entry = entries.iter().find(|e| e.1 == list[0]).expect("entry");
    assert!(
        hostile_entry.2.contains("\\%") && hostile_entry.2.contains("\u{5e9}"),
        "{hostile_entry:?}"
    );
    assert!(
        !hostile_entry.2.contains('\n'),
        "no line break inside a field"
    );
    assert_eq!(hostile_entry.3, "van Beethoven, Ludwig");
}

/// RIS's structure checked line by line (`TAG  - value`, `TY` opening and `ER` closing each
/// record); returns the number of records.
fn regex_free_ris_check(ris: &str) -> usize {
    let mut records = 0;
    let mut open = false;
    for line in ris.split("\r\n").filter(|l| !l.is_empty()) {
        let (tag, rest) = line.split_at(2);
        assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric()), "{line:?}");
        assert!(rest.starts_with("  - "), "{line:?}");
        match tag {
            "TY" => {
                assert!(!open, "{line:?}");
                open = true;
            }
            "ER" => {
                assert!(open, "{line:?}");
                open = false;
                records += 1;
            }
            _ => assert!(open, "{line:?}"),
        }
    }
    assert!(!open);
    records
}

/// `yaz-marcdump` (Debian's `yaz`, installed by `.ci/run`); `None` where it is missing, which
/// fails under `CI=true`.
fn yaz_marcdump() -> Option<()> {
    let ok = std::process::Command::new("yaz-marcdump")
        .arg("-V")
        .output()
        .is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs yaz-marcdump (apt-get install yaz)"
        );
        eprintln!("skipped: no yaz-marcdump");
        return None;
    }
    Some(())
}

/// MARC 21 (ISO 2709 and MARCXML) of found books, a hostile title among them (a subfield
/// delimiter, markup, RTL text), read back by YAZ, which is not ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marc_exports_read_back_with_yaz() {
    let hostile = "The <b>&</b> \u{1f}a fake subfield \u{1d} \u{5e9}\u{5dc}\u{5d5}\u{5dd}";
    let (s, list, _api) = two_found(hostile).await;
    let iso = s.dir.path().join("b.mrc").display().to_string();
    let xml = s.dir.path().join("b.xml").display().to_string();
    for (format, path) in [("marc", &iso), ("marcxml", &xml)] {
        let (code, _, err) = run(&s, &["export", "--format", format, "-o", path]);
        assert_eq!(code, Some(0), "{err}");
    }
    if yaz_marcdump().is_none() {
        return;
    }
    // Each read as YAZ reads it, then written as MARCXML: both give the same two records.
    let dump = |input: &str, path: &str| -> String {
        let out = std::process::Command::new("yaz-marcdump")
            .args(["-i", input, "-o", "marcxml", path])
            .output()
            .expect("yaz-marcdump");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{input}: {stderr}"
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    for (input, path) in [("marc", &iso), ("marcxml", &xml)] {
        let text = dump(input, path);
        assert_eq!(text.matches("<record").count(), 2, "{input}: {text}");
        for isbn in &list[..2] {
            assert!(
                text.contains(&format!("<controlfield tag=\"001\">{isbn}</controlfield>")),
                "{input}: {text}"
            );
        }
        assert!(
            text.contains("\u{5e9}\u{5dc}\u{5d5}\u{5dd}"),
            "{input}: RTL text kept"
        );
        assert!(text.contains("van Beethoven, Ludwig"), "{input}: {text}");
        // The hostile title stays one subfield: its delimiter made a space, not a subfield.
        assert!(
            !text.contains("<subfield code=\"a\">a fake subfield"),
            "{input}: {text}"
        );
        assert!(text.contains("ind2=\"4\""), "{input}: The is not filed");
    }
}
