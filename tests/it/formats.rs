//! Every list people hold: one list of twelve books in every container and app export layout
//! (`tests/fixtures/formats/`, written by its `make.py`), loaded by the real binary.

use crate::common;

use std::collections::BTreeSet;

use common::{Scratch, binary, text};

/// The twelve books of `make.py`, by ISBN-13.
const BOOKS: [&str; 12] = [
    "9780261103344",
    "9780441013593",
    "9780439023481",
    "9780439785969",
    "9780141439518",
    "9780451524935",
    "9780061120084",
    "9780743273565",
    "9783608938289",
    "9791090636071",
    "9781451626650",
    "9780060850524",
];

struct Case {
    file: &'static str,
    args: &'static [&'static str],
    /// What the report must say the file was read as.
    read_as: &'static str,
    /// Every rejected line: (line, reason).
    rejects: &'static [(i64, &'static str)],
}

const CASES: [Case; 25] = [
    Case {
        file: "plain.txt",
        args: &[],
        read_as: "a list, one value per line, UTF-8",
        rejects: &[(16, "bad-characters"), (17, "bad-check-digit")],
    },
    Case {
        file: "comma.csv",
        args: &[],
        read_as: "comma-separated, with a header, UTF-8; ISBNs from \"ISBN13\", \"ISBN\" (header names)",
        rejects: &[(14, "scientific-notation")],
    },
    Case {
        file: "excel-semicolon-cp1252.csv",
        args: &[],
        read_as: "semicolon-separated, with a header, windows-1252; ISBNs from \"EAN\" (header names)",
        rejects: &[(14, "bad-check-digit")],
    },
    Case {
        file: "excel-unicode-text.txt",
        args: &[],
        read_as: "tab-separated, with a header, UTF-16LE",
        rejects: &[(14, "scientific-notation")],
    },
    Case {
        file: "utf16be.csv",
        args: &[],
        read_as: "comma-separated, with a header, UTF-16BE",
        rejects: &[(14, "scientific-notation")],
    },
    Case {
        file: "pipe.txt",
        args: &[],
        read_as: "pipe-separated, with a header, UTF-8; ISBNs from \"isbn\"",
        rejects: &[],
    },
    Case {
        file: "no-header.csv",
        args: &[],
        read_as: "semicolon-separated, no header, UTF-8; ISBNs from column 2 (no header; sampled values that are ISBNs: column 2 12 of 12)",
        rejects: &[],
    },
    Case {
        file: "bibliography.txt",
        args: &["--format", "scan"],
        read_as: "free text, scanned for ISBNs, UTF-8",
        rejects: &[],
    },
    Case {
        file: "books.xlsx",
        args: &[],
        read_as: "xlsx spreadsheet, sheet \"Books\", with a header; ISBNs from \"ISBN13\", \"ISBN\"",
        rejects: &[(14, "bad-check-digit")],
    },
    Case {
        file: "books.xls",
        args: &[],
        read_as: "xls spreadsheet, sheet \"Books\"",
        rejects: &[],
    },
    Case {
        file: "books.ods",
        args: &[],
        read_as: "ods spreadsheet, sheet \"Books\" (read whole), with a header; ISBNs from \"EAN\"",
        rejects: &[],
    },
    Case {
        file: "books.mrc",
        args: &[],
        read_as: "MARC 21 records (ISO 2709)",
        rejects: &[(13, "empty")],
    },
    Case {
        file: "books.marcxml",
        args: &[],
        read_as: "MARCXML records, UTF-8",
        rejects: &[(13, "empty")],
    },
    Case {
        file: "goodreads-export.csv",
        args: &[],
        read_as: "ISBNs from \"ISBN13\", \"ISBN\" (header names)",
        rejects: &[(14, "empty")],
    },
    Case {
        file: "storygraph.csv",
        args: &[],
        read_as: "ISBNs from \"ISBN/UID\" (header names)",
        rejects: &[(14, "bad-characters")],
    },
    Case {
        file: "librarything.tsv",
        args: &[],
        read_as: "tab-separated, with a header, UTF-8; ISBNs from \"ISBN\", \"ISBNs\" (header names)",
        rejects: &[],
    },
    Case {
        file: "libib.csv",
        args: &[],
        read_as: "ISBNs from \"ean_isbn13\", \"upc_isbn10\" (header names)",
        rejects: &[],
    },
    Case {
        file: "calibre.csv",
        args: &[],
        read_as: "ISBNs from \"isbn\", \"identifiers\" (header names)",
        rejects: &[(14, "other-identifier")],
    },
    Case {
        file: "zotero.csv",
        args: &[],
        read_as: "ISBNs from \"ISBN\" (header names)",
        rejects: &[],
    },
    Case {
        file: "bookbuddy.csv",
        args: &[],
        read_as: "ISBNs from \"ISBN\" (header names)",
        rejects: &[],
    },
    Case {
        file: "hardcover.csv",
        args: &[],
        read_as: "ISBNs from \"ISBN 13\", \"ISBN 10\" (header names)",
        rejects: &[],
    },
    Case {
        file: "bookwyrm.csv",
        args: &[],
        read_as: "ISBNs from \"isbn_13\", \"isbn_10\" (header names)",
        rejects: &[],
    },
    Case {
        file: "book-catalogue.csv",
        args: &[],
        read_as: "ISBNs from \"isbn\" (header names)",
        rejects: &[],
    },
    Case {
        file: "shop-ean.csv",
        args: &[],
        read_as: "semicolon-separated, with a header, UTF-8; ISBNs from \"EAN\" (header names)",
        rejects: &[],
    },
    Case {
        file: "distributor-gtin.csv",
        args: &[],
        read_as: "ISBNs from \"GTIN\" (header names)",
        rejects: &[],
    },
];

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/formats/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn load(s: &Scratch, file: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = fixture(file);
    let out = binary()
        .args(["--db", &s.db_str(), "load", &path])
        .args(args)
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_list_in_every_container_gives_the_same_jobs() {
    let want: BTreeSet<String> = BOOKS.iter().map(|s| s.to_string()).collect();
    let all = Scratch::new();
    for case in &CASES {
        let s = Scratch::new();
        let (code, out) = load(&s, case.file, case.args);
        assert_eq!(code, Some(0), "{}: {out}", case.file);
        assert!(
            out.contains(case.read_as),
            "{}: wanted {:?} in\n{out}",
            case.file,
            case.read_as
        );
        let jobs: BTreeSet<String> = s
            .strings("SELECT isbn13 FROM jobs")
            .await
            .into_iter()
            .collect();
        assert_eq!(jobs, want, "{}: {out}", case.file);
        let store = s.store().await;
        let rejects: Vec<(i64, String)> =
            sqlx::query_as("SELECT line, reason FROM rejected_lines ORDER BY line")
                .fetch_all(store.pool())
                .await
                .expect("rejects");
        let wanted: Vec<(i64, String)> = case
            .rejects
            .iter()
            .map(|(l, r)| (*l, r.to_string()))
            .collect();
        assert_eq!(rejects, wanted, "{}: {out}", case.file);
        // The same books in another container are the same jobs.
        let (code, out) = load(&all, case.file, case.args);
        assert_eq!(code, Some(0), "{}: {out}", case.file);
    }
    assert_eq!(all.scalar("SELECT count(*) FROM jobs").await, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marc_records_keep_their_control_number() {
    for file in ["books.mrc", "books.marcxml"] {
        let s = Scratch::new();
        let (code, out) = load(&s, file, &[]);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(
            s.strings(
                "SELECT source_line || ' ' || source_ref FROM jobs WHERE isbn13 = '9780441013593'"
            )
            .await,
            ["2 ocm10000001"],
            "{file}"
        );
        // 020 $z (a cancelled ISBN) is not the book's.
        assert_eq!(
            s.scalar("SELECT count(*) FROM jobs WHERE isbn13 = '9780306406157'")
                .await,
            0
        );
        assert_eq!(
            s.strings("SELECT raw FROM rejected_lines").await,
            ["001 ocm99999999: no 020 $a"]
        );
        let out = binary()
            .args(["--db", &s.db_str(), "show", "0441013597"])
            .output()
            .expect("show");
        assert!(
            text(&out)
                .0
                .contains("record 2 (control number ocm10000001)"),
            "{}",
            text(&out).0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marcxml_file_cut_short_keeps_its_whole_records_and_says_so() {
    let s = Scratch::new();
    let whole = std::fs::read_to_string(fixture("books.marcxml")).expect("fixture");
    // Cut inside the third record.
    let third = whole
        .match_indices("<record>")
        .nth(2)
        .expect("a third record")
        .0;
    let cut = s.file("cut.xml", &whole.as_bytes()[..third + 40]);
    let out = binary()
        .args(["--db", &s.db_str(), "load", &cut])
        .output()
        .expect("run");
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(3), "partial-load code: {o}{e}");
    assert!(
        format!("{o}{e}").contains("after 2 whole records"),
        "{o}{e}"
    );
    assert_eq!(s.scalar("SELECT count(*) FROM jobs").await, 2, "{o}{e}");
}

#[test]
fn sheets_are_chosen_by_name_and_a_missing_one_is_named() {
    let s = Scratch::new();
    let (code, out) = load(&s, "books.xlsx", &["--sheet", "Nope"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("no sheet named \"Nope\"; the workbook has: Books, Notes"),
        "{out}"
    );
    // The other sheet, named in any case, is read: it holds no ISBNs.
    let (code, out) = load(&s, "books.xlsx", &["--sheet", "notes"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("no ISBN column"), "{out}");
}

#[test]
fn a_forced_encoding_and_format_win_over_detection() {
    let s = Scratch::new();
    let (code, out) = load(
        &s,
        "excel-semicolon-cp1252.csv",
        &["--encoding", "latin2", "--format", "semicolon"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("semicolon-separated, with a header, ISO-8859-2"),
        "{out}"
    );
    let (code, out) = load(&s, "plain.txt", &["--encoding", "klingon"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unknown encoding \"klingon\""), "{out}");
}
