/*!
Which columns of a table (CSV, TSV, spreadsheet) hold ISBNs.

In order: `--column NAME`; the header names of common exports (matched without regard to
case, spaces, `-`, `_` or `/`), ISBN-13 names before ISBN-10 names; and where no header name
matches, or there is no header, the columns whose sampled values are mostly valid ISBNs. The
choice comes with a sentence saying which and why, for the load report.
*/

use super::Error;
use super::cell::isbns_in_cell;

/// Header names that hold an ISBN-13 (or an EAN, which for books is one), normalised.
/// Goodreads `ISBN13`, Libib `ean_isbn13`, BookWyrm `isbn_13`, Hardcover `ISBN 13`, shops'
/// `EAN`, `EAN-13`, `GTIN`.
const ISBN13_NAMES: [&str; 8] = [
    "isbn13",
    "ean",
    "ean13",
    "isbn13ean",
    "eanisbn13",
    "gtin",
    "gtin13",
    "isbn13s",
];
/// Header names that hold an ISBN-10 or any ISBN, normalised. Goodreads, Zotero, BookBuddy,
/// Book Catalogue and calibre `ISBN`; StoryGraph `ISBN/UID`; LibraryThing `ISBNs`; Libib
/// `upc_isbn10`; BookWyrm `isbn_10`; calibre's `identifiers` (`isbn:...,goodreads:...`).
const ISBN10_NAMES: [&str; 7] = [
    "isbn",
    "isbn10",
    "isbns",
    "isbnuid",
    "upcisbn10",
    "isbn10s",
    "identifiers",
];

/// A content column is chosen when at least this share of its non-empty sampled values holds
/// a valid ISBN.
const MOSTLY: f64 = 0.5;

/// A header name reduced to what matters: `ISBN-13`, `isbn_13` and `Isbn 13` are all `isbn13`.
pub fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A known ISBN column name (a one-column list often starts with one).
pub fn is_isbn_column_name(name: &str) -> bool {
    let n = normalise_name(name);
    ISBN13_NAMES.contains(&n.as_str()) || ISBN10_NAMES.contains(&n.as_str())
}

/// The columns to try on each row, best first, and why they were chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub columns: Vec<usize>,
    pub why: String,
}

fn label(header: Option<&[String]>, i: usize) -> String {
    match header.and_then(|h| h.get(i)) {
        Some(name) if !name.is_empty() => format!("{name:?}"),
        _ => format!("column {}", i + 1),
    }
}

fn labels(header: Option<&[String]>, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&i| label(header, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Chooses the ISBN columns from the header (if the table has one) and a sample of rows.
pub fn choose(
    header: Option<&[String]>,
    sample: &[Vec<String>],
    wanted: Option<&str>,
) -> Result<Choice, Error> {
    let shown_header = || header.map(<[String]>::to_vec).unwrap_or_default();
    if let Some(wanted) = wanted {
        let by_name = header.and_then(|h| {
            h.iter().position(|n| n.trim() == wanted).or_else(|| {
                h.iter()
                    .position(|n| normalise_name(n) == normalise_name(wanted))
            })
        });
        // Without a header, `--column 3` names the third column.
        let by_number = || {
            wanted
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1 && header.is_none())
                .map(|n| n - 1)
        };
        return match by_name.or_else(by_number) {
            Some(i) => Ok(Choice {
                columns: vec![i],
                why: format!("ISBNs from {} (--column)", label(header, i)),
            }),
            None => Err(Error::ColumnNotFound {
                wanted: wanted.to_string(),
                header: shown_header(),
            }),
        };
    }
    if let Some(h) = header {
        let names: Vec<String> = h.iter().map(|n| normalise_name(n)).collect();
        let mut columns = Vec::new();
        for group in [&ISBN13_NAMES[..], &ISBN10_NAMES[..]] {
            for known in group {
                for (i, name) in names.iter().enumerate() {
                    if name == known && !columns.contains(&i) {
                        columns.push(i);
                    }
                }
            }
        }
        if !columns.is_empty() {
            return Ok(Choice {
                why: format!("ISBNs from {} (header names)", labels(header, &columns)),
                columns,
            });
        }
    }
    let width = sample.iter().map(Vec::len).max().unwrap_or(0);
    let mut scored: Vec<(usize, usize, usize)> = (0..width)
        .map(|c| {
            let (mut filled, mut valid) = (0, 0);
            for row in sample {
                let Some(v) = row.get(c).filter(|v| !v.trim().is_empty()) else {
                    continue;
                };
                filled += 1;
                valid += usize::from(isbns_in_cell(v, &mut Vec::new()).is_ok());
            }
            (c, filled, valid)
        })
        .filter(|&(_, filled, valid)| valid > 0 && valid as f64 >= MOSTLY * filled as f64)
        .collect();
    // Best share first; the leftmost among equals.
    scored.sort_by(|a, b| (b.2 * a.1).cmp(&(a.2 * b.1)).then(a.0.cmp(&b.0)));
    if scored.is_empty() {
        if width == 1 {
            return Ok(Choice {
                columns: vec![0],
                why: "ISBNs from the only column".into(),
            });
        }
        return Err(Error::NoIsbnColumn {
            header: shown_header(),
        });
    }
    let columns: Vec<usize> = scored.iter().map(|s| s.0).collect();
    let shares: Vec<String> = scored
        .iter()
        .map(|&(c, filled, valid)| format!("{} {valid} of {filled}", label(header, c)))
        .collect();
    let because = if header.is_some() {
        "no known ISBN header"
    } else {
        "no header"
    };
    Ok(Choice {
        why: format!(
            "ISBNs from {} ({because}; sampled values that are ISBNs: {})",
            labels(header, &columns),
            shares.join(", ")
        ),
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn header_names_of_common_exports() {
        for (header, want) in [
            (&["Title", "ISBN", "ISBN13"][..], vec![2, 1]),
            (&["title", "ISBN/UID"][..], vec![1]),
            (&["ean_isbn13", "upc_isbn10", "title"][..], vec![0, 1]),
            (&["Title", "ISBN 13", "ISBN 10"][..], vec![1, 2]),
            (&["isbn_10", "isbn_13"][..], vec![1, 0]),
            (&["Titel", "EAN"][..], vec![1]),
            (&["title", "isbn", "identifiers"][..], vec![1, 2]),
            (&["Key", "ISBNs"][..], vec![1]),
        ] {
            let h = strings(header);
            let got = choose(Some(&h), &[], None).expect("a known header");
            assert_eq!(got.columns, want, "{header:?}");
            assert!(got.why.contains("header names"), "{}", got.why);
        }
    }

    #[test]
    fn content_decides_without_a_header_and_says_why() {
        let sample = vec![
            strings(&["The Hobbit", "9780261103344", "12,50"]),
            strings(&["Dune", "0441013597", "9,99"]),
            strings(&["A note", "", "1"]),
        ];
        let got = choose(None, &sample, None).expect("chosen");
        assert_eq!(got.columns, vec![1]);
        assert_eq!(
            got.why,
            "ISBNs from column 2 (no header; sampled values that are ISBNs: column 2 2 of 2)"
        );
        let h = strings(&["Name", "Code", "Price"]);
        let got = choose(Some(&h), &sample, None).expect("chosen");
        assert!(got.why.contains("\"Code\""), "{}", got.why);
        let none = vec![strings(&["a", "b"]), strings(&["c", "d"])];
        assert!(matches!(
            choose(None, &none, None),
            Err(Error::NoIsbnColumn { .. })
        ));
    }

    #[test]
    fn column_option_wins_by_name_or_number() {
        let h = strings(&["isbn", "My Code"]);
        assert_eq!(
            choose(Some(&h), &[], Some("my_code"))
                .expect("found")
                .columns,
            [1]
        );
        assert_eq!(choose(None, &[], Some("2")).expect("found").columns, [1]);
        assert!(matches!(
            choose(Some(&h), &[], Some("nope")),
            Err(Error::ColumnNotFound { .. })
        ));
    }
}
