/*!
Whether a catalogue record is the book asked for, and which one to keep when several are.

A catalogue's search is no proof: its ISBN index matches cancelled ISBNs (`020 $z`), other
formats' ISBNs (`776 $z`), and hyphenated parts read as words (`(fasc. 123)`). A record counts
for ISBN X only when X (in either form) is in one of its own ISBN fields once the qualifier,
hyphens and spaces are gone: MARC 21 `020 $a`, UNIMARC `010 $a` and `073 $a`, never a `$z`.
And it must be a book (leader/06 `a`, leader/07 `m`), not a component part or a serial.
*/

use super::envelope::MarcRecord;
use super::profile::RecordFormat;
use crate::isbn::{self, Isbn13};

/// The ISBNs a record names as its own, as ISBN-13s, in field order.
pub fn own_isbns(record: &MarcRecord, format: RecordFormat) -> Vec<Isbn13> {
    let fields: &[(&str, &str)] = match format {
        RecordFormat::Marc21 => &[("020", "a")],
        RecordFormat::Unimarc => &[("010", "a"), ("073", "a")],
    };
    let mut out: Vec<Isbn13> = Vec::new();
    for (tag, code) in fields {
        for value in record.subfields(tag, code) {
            if let Some(isbn) = candidate(value).filter(|i| !out.contains(i)) {
                out.push(isbn);
            }
        }
    }
    out
}

/// The ISBN in one field value: the number before any qualifier (`9780674033801 (alk.
/// paper)`, `978... : EUR 9.90`), hyphens and spaces inside it removed, check digit valid; else
/// its leading token (`9780674033801 Pp.`).
fn candidate(value: &str) -> Option<Isbn13> {
    let head = value.split(['(', ':', ';']).next()?.trim();
    isbn::parse(head).ok().or_else(|| {
        head.split_whitespace()
            .next()
            .and_then(|t| isbn::parse(t).ok())
    })
}

/// Whether a record describes a book: leader/06 `a` (language material), leader/07 `m`
/// (monograph), in MARC 21 and UNIMARC alike.
pub fn is_book(record: &MarcRecord) -> bool {
    let leader = record.leader.as_bytes();
    leader.get(6) == Some(&b'a') && leader.get(7) == Some(&b'm')
}

/// The record's year of publication: the first four-digit run of its publication date field,
/// else of its coded date (MARC 21 008/07-10, UNIMARC 100 $a/09-12).
pub fn year(record: &MarcRecord, format: RecordFormat) -> Option<u32> {
    let dated: &[(&str, &str)] = match format {
        RecordFormat::Marc21 => &[("264", "c"), ("260", "c")],
        RecordFormat::Unimarc => &[("214", "d"), ("210", "d")],
    };
    let from_field = dated
        .iter()
        .flat_map(|(tag, code)| record.subfields(tag, code))
        .find_map(four_digits);
    let coded = match format {
        RecordFormat::Marc21 => record.control("008").and_then(|f| f.get(7..11)),
        RecordFormat::Unimarc => record
            .subfields("100", "a")
            .next()
            .and_then(|f| f.get(9..13)),
    };
    from_field.or_else(|| coded.and_then(four_digits))
}

fn four_digits(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(3))
        .find(|&i| b[i..i + 4].iter().all(u8::is_ascii_digit))
        .and_then(|i| s[i..i + 4].parse().ok())
}

/// For each of `isbns`, the record of `records` to keep as it: among those that are the
/// book, the newest, then the one with the most fields (the fullest description); `None` when
/// none is. Each record's own ISBNs, kind and date are read once, whatever the batch size.
pub fn choose(
    records: &[MarcRecord],
    format: RecordFormat,
    isbns: &[Isbn13],
) -> Vec<Option<usize>> {
    let books: Vec<(usize, Vec<Isbn13>, (u32, usize))> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| is_book(r))
        .map(|(i, r)| {
            let key = (year(r, format).unwrap_or(0), r.fields.len());
            (i, own_isbns(r, format), key)
        })
        .collect();
    isbns
        .iter()
        .map(|isbn| {
            books
                .iter()
                .filter(|(_, own, _)| own.contains(isbn))
                // Ties keep the first the catalogue sent (max_by_key would take the last).
                .fold(
                    None,
                    |best: Option<(usize, (u32, usize))>, (i, _, key)| match best {
                        Some((_, k)) if k >= *key => best,
                        _ => Some((*i, *key)),
                    },
                )
                .map(|(i, _)| i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::envelope::DataField;
    use super::*;

    fn field(tag: &str, subfields: &[(&str, &str)]) -> DataField {
        DataField::of(tag, subfields)
    }

    fn book(fields: Vec<DataField>) -> MarcRecord {
        MarcRecord {
            leader: "00000nam a2200000 c 4500".into(),
            fields,
            ..MarcRecord::default()
        }
    }

    fn isbn(s: &str) -> Isbn13 {
        isbn::parse(s).expect("valid")
    }

    /// Whether `record` may be stored as `isbn`, as `choose` decides it.
    fn is_the_book(record: &MarcRecord, format: RecordFormat, isbn: &Isbn13) -> bool {
        choose(std::slice::from_ref(record), format, &[*isbn])[0].is_some()
    }

    #[test]
    fn a_qualifier_inside_020a_is_not_part_of_the_number() {
        for value in [
            "9780674033801 (alk. paper)",
            "9780674033801 (hardback : alk. paper)",
            "978-0-674-03380-1 : EUR 12.95",
            "0674033809 (pbk.)",
            " 9780674033801",
            "978 0 674 03380 1",
            "9780674033801 Pp.",
        ] {
            let r = book(vec![field("020", &[("a", value)])]);
            assert!(
                is_the_book(&r, RecordFormat::Marc21, &isbn("9780674033801")),
                "{value}"
            );
        }
    }

    #[test]
    fn cancelled_other_format_and_word_index_isbns_never_count() {
        let asked = isbn("9783406568466");
        let cancelled = book(vec![
            field("020", &[("a", "9783406568442")]),
            field("020", &[("z", "9783406568466")]),
        ]);
        assert!(!is_the_book(&cancelled, RecordFormat::Marc21, &asked));
        let ebook = book(vec![
            field("020", &[("a", "9783406703409")]),
            field("776", &[("z", "9783406568466")]),
        ]);
        assert!(!is_the_book(&ebook, RecordFormat::Marc21, &asked));
        // Found by `(fasc. 123)`: its own ISBN is another.
        let fasc = book(vec![field("020", &[("a", "9782706302886 (fasc. 123)")])]);
        assert!(!is_the_book(&fasc, RecordFormat::Marc21, &asked));
        // DNB's hyphenated display copy in $9 is not matched on; $a is.
        let dnb = book(vec![field(
            "020",
            &[("a", "9783406568442"), ("9", "978-3-406-56846-6")],
        )]);
        assert!(!is_the_book(&dnb, RecordFormat::Marc21, &asked));
    }

    #[test]
    fn bnf_010_holds_an_isbn10_and_073_a_hyphenated_ean() {
        let old = book(vec![field("010", &[("a", "2-7073-0275-9"), ("b", "br.")])]);
        assert!(is_the_book(
            &old,
            RecordFormat::Unimarc,
            &isbn("9782707302755")
        ));
        let ean = book(vec![field("073", &[("a", "978-2-37883-123-3")])]);
        assert!(is_the_book(
            &ean,
            RecordFormat::Unimarc,
            &isbn("9782378831233")
        ));
        let erroneous = book(vec![field("010", &[("z", "2-7073-0275-9")])]);
        assert!(!is_the_book(
            &erroneous,
            RecordFormat::Unimarc,
            &isbn("2707302759")
        ));
        // MARC 21's ISBN field means nothing in UNIMARC (020 is a national bibliography number).
        let marc21 = book(vec![field("020", &[("a", "2707302759")])]);
        assert!(!is_the_book(
            &marc21,
            RecordFormat::Unimarc,
            &isbn("2707302759")
        ));
    }

    #[test]
    fn component_parts_and_serials_are_not_books() {
        let mut part = book(vec![field("020", &[("a", "9783406568442")])]);
        part.leader = "00000naa a2200000 c 4500".into();
        assert!(!is_the_book(
            &part,
            RecordFormat::Marc21,
            &isbn("9783406568442")
        ));
        part.leader = "00000nas a2200000 c 4500".into();
        assert!(!is_the_book(
            &part,
            RecordFormat::Marc21,
            &isbn("9783406568442")
        ));
        part.leader = "short".into();
        assert!(!is_book(&part));
    }

    #[test]
    fn of_several_editions_the_newest_then_the_fullest_is_kept() {
        let asked = isbn("9783406568442");
        let edition = |year: &str, extra: usize| {
            let mut fields = vec![
                field("020", &[("a", "9783406568442")]),
                field("264", &[("c", year)]),
            ];
            fields.extend((0..extra).map(|_| field("650", &[("a", "x")])));
            book(fields)
        };
        let records = vec![
            edition("2007", 5),
            edition("[2013]", 0),
            edition("©2013", 2),
            book(vec![field("020", &[("a", "9780674033801")])]),
        ];
        let other = isbn("9780674033801");
        assert_eq!(
            choose(&records, RecordFormat::Marc21, &[asked, other]),
            [Some(2), Some(3)]
        );
        assert_eq!(
            choose(&records[..3], RecordFormat::Marc21, &[other]),
            [None],
            "no record is the book"
        );
        // No date field: the coded date of 008.
        let mut coded = book(vec![field("020", &[("a", "9783406568442")])]);
        coded.controls = vec![(
            "008".into(),
            "080812s2009    mau      b    001 0 eng  ".into(),
        )];
        assert_eq!(year(&coded, RecordFormat::Marc21), Some(2009));
    }
}
