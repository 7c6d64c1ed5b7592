//! Fuzzing every input format (proptest, a bounded number of cases so `cargo test` stays
//! quick and deterministic): each reader gets a real file of its format with random bytes
//! changed, inserted or cut, and must return (items or a file error) without a panic or an
//! abort. A failing case is kept by proptest in `proptest-regressions/fuzz.txt` and replayed
//! first on every run. Set PROPTEST_CASES for a longer hunt. The SRU envelope reader is fuzzed
//! the same way, from a captured-shape answer (`tests/fixtures/sru/`).

use isbn_crawler::input::{Format, InputOptions, Item, read_items};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/formats/{name}")).expect("fixture")
}

/// What can happen to a file: bytes overwritten, a run inserted, the tail cut.
#[derive(Debug, Clone)]
enum Change {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Change::Set(i, b)),
        // Bytes that mean something to some reader: quotes, line ends, delimiters, digits.
        2 => (any::<usize>(), proptest::collection::vec(
                prop::sample::select(vec![b'"', b'\r', b'\n', b',', b';', b'\t', b'9', b'<', b'>', 0, 0xff, 0x1d, 0x1e]),
                1..8,
            )).prop_map(|(i, b)| Change::Insert(i, b)),
        1 => any::<usize>().prop_map(Change::Cut),
    ]
}

fn apply(mut bytes: Vec<u8>, changes: &[Change]) -> Vec<u8> {
    for c in changes {
        let n = bytes.len().max(1);
        match c {
            Change::Set(i, b) if !bytes.is_empty() => bytes[i % n] = *b,
            Change::Set(..) => {}
            Change::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Change::Cut(i) => bytes.truncate(i % n),
        }
    }
    bytes
}

/// Reads `bytes`; every item must come from it (no more items than bytes).
fn survives(bytes: &[u8], format: Format) -> Result<(), TestCaseError> {
    let opts = InputOptions {
        format,
        ..InputOptions::default()
    };
    let mut items = 0usize;
    let _ = read_items(bytes, &opts, &mut |item| {
        items += 1;
        if let Item::Rejected(r) = item {
            assert!(r.raw.chars().count() <= isbn_crawler::input::MAX_RAW);
        }
    });
    prop_assert!(
        items <= bytes.len() + 1,
        "{items} items from {} bytes",
        bytes.len()
    );
    Ok(())
}

/// The cases of a run: `default`, or PROPTEST_CASES for a longer hunt.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

macro_rules! fuzz_format {
    ($name:ident, $file:expr, $format:expr, $cases:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig {
                cases: cases($cases),
                failure_persistence: Some(Box::new(
                    proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/fuzz.txt"),
                )),
                ..ProptestConfig::default()
            })]
            #[test]
            fn $name(changes in proptest::collection::vec(change(), 1..6)) {
                let bytes = apply(fixture($file), &changes);
                survives(&bytes, Format::Auto)?;
                survives(&bytes, $format)?;
            }
        }
    };
}

fuzz_format!(list, "plain.txt", Format::Text, 1000);
fuzz_format!(csv, "goodreads-export.csv", Format::Csv, 500);
fuzz_format!(
    semicolon_cp1252,
    "excel-semicolon-cp1252.csv",
    Format::Semicolon,
    500
);
fuzz_format!(tsv, "librarything.tsv", Format::Tsv, 500);
fuzz_format!(utf16, "utf16be.csv", Format::Csv, 500);
fuzz_format!(scan, "bibliography.txt", Format::Scan, 500);
fuzz_format!(marc, "books.mrc", Format::Marc, 1000);
fuzz_format!(marcxml, "books.marcxml", Format::Marcxml, 1000);
fuzz_format!(xlsx, "books.xlsx", Format::Spreadsheet, 300);
fuzz_format!(xls, "books.xls", Format::Spreadsheet, 1000);
fuzz_format!(ods, "books.ods", Format::Spreadsheet, 300);

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(1000),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/fuzz.txt"),
        )),
        ..ProptestConfig::default()
    })]
    /// An SRU answer with random bytes changed: parsed or refused, never a panic, and never
    /// more records than the answer could hold.
    #[test]
    fn sru_envelope(changes in proptest::collection::vec(change(), 1..6)) {
        let bytes = apply(
            std::fs::read("tests/fixtures/sru/loc-two-records.xml").expect("fixture"),
            &changes,
        );
        if let Ok(answer) = isbn_crawler::providers::sru::envelope::parse(&bytes) {
            prop_assert!(answer.records.len() <= bytes.len() / 8 + 1);
            let _ = answer.reading(1);
        }
    }
}
