/*!
One cell (or one line of a plain list) to the ISBNs it names.

Apps put several identifiers in one cell: Zotero `9780261103344 0261103342`, LibraryThing
`[0261103342, 9780261103344]`, calibre `goodreads:123,isbn:9780261103344`, a MARC 020 $a
`9780261103344 (pbk.)`. The cell as a whole is tried first (every form `isbn::parse` accepts,
at today's speed); only when that fails is it split into tokens.

A token labelled with another scheme (`goodreads:12345678`, `amazon:B00...`, `oclc:`) is
never an ISBN: zero-padding a Goodreads id into a "valid" ISBN-10 would queue a stranger's
book. A token without a digit (`pbk.`, `ISBN`) is not a candidate at all.
*/

use super::label;
use crate::isbn::{self, Isbn13, RejectReason};

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '[' | ']' | '(' | ')' | '{' | '}' | '|' | '/')
}

/// Appends every distinct ISBN `cell` names to `out` (which may already hold ISBNs of other
/// cells of the same row; they are not repeated). When it names none, says why: the reason of
/// its first candidate token, unless a later one says more; `other-identifier` when every
/// candidate was labelled with another scheme.
pub fn isbns_in_cell(cell: &str, out: &mut Vec<Isbn13>) -> Result<(), RejectReason> {
    let whole = match isbn::parse(cell) {
        Ok(isbn) => {
            push_distinct(out, isbn);
            return Ok(());
        }
        Err(reason) => reason,
    };
    if !cell.contains(is_separator) && !cell.contains(':') {
        return Err(whole);
    }
    let before = out.len();
    // Whether a token named an ISBN, new or already found in another cell of the row.
    let mut named = false;
    // The bytes of tokens labelled with another scheme, blanked before the free-text fallback.
    let mut masked: Option<Vec<u8>> = None;
    let mut reason: Option<RejectReason> = None;
    let mut note = |r: RejectReason| reason = Some(reason.map_or(r, |prev| prev.or_better(r)));
    // What the previous token was: a bare label whose value is the next token.
    let mut pending: Option<bool> = None; // Some(true): an ISBN label, Some(false): another scheme
    for token in cell.split(is_separator).filter(|t| !t.is_empty()) {
        let (value, label) = split_label(token);
        let is_isbn = match (label.as_deref(), pending.take()) {
            (Some(l), _) => label::is_isbn_label(l),
            (None, Some(labelled)) => labelled,
            (None, None) => true,
        };
        if value.is_empty() {
            if label.is_some() {
                pending = Some(is_isbn);
            }
            continue;
        }
        if !value.bytes().any(|b| b.is_ascii_digit()) {
            continue;
        }
        if !is_isbn {
            note(RejectReason::OtherIdentifier);
            let at = token.as_ptr() as usize - cell.as_ptr() as usize;
            let m = masked.get_or_insert_with(|| cell.as_bytes().to_vec());
            m[at..at + token.len()].fill(b' ');
            continue;
        }
        match isbn::parse(value) {
            Ok(isbn) => {
                named = true;
                push_distinct(out, isbn);
            }
            Err(r) => note(r),
        }
    }
    if named || out.len() > before {
        return Ok(());
    }
    // `978 0 306 40615 7 (pbk.)`: an ISBN split by spaces, beside words; never in a token of
    // another scheme.
    match &masked {
        // Only ASCII spaces replaced whole tokens, so the text is still UTF-8.
        Some(m) => super::scan::isbns_in_text(std::str::from_utf8(m).unwrap_or_default(), out),
        None => super::scan::isbns_in_text(cell, out),
    }
    if out.len() > before {
        return Ok(());
    }
    Err(reason.unwrap_or(whole))
}

/// `isbn:978...` → (`978...`, Some("isbn")); `urn:isbn:978...` → (`978...`, Some("urnisbn"));
/// a token without a colon has no label. A label is letters (and digits) only: `="0306..."` and
/// `12:30` are not labelled.
fn split_label(token: &str) -> (&str, Option<String>) {
    let Some(colon) = token.rfind(':') else {
        return (token, None);
    };
    let (label, value) = (&token[..colon], &token[colon + 1..]);
    let starts_alpha = label
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_alpha
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_: ".contains(c))
    {
        return (token, None);
    }
    (value, Some(label::normalise(label)))
}

fn push_distinct(out: &mut Vec<Isbn13>, isbn: Isbn13) {
    if !out.contains(&isbn) {
        out.push(isbn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cell(s: &str) -> Result<Vec<String>, RejectReason> {
        let mut out = Vec::new();
        isbns_in_cell(s, &mut out).map(|()| out.iter().map(|i| i.to_string()).collect())
    }

    /// A real calibre row: its `isbn` column read first, then `identifiers` naming the same
    /// book and an Amazon ASIN that is a valid ISBN-10 of another edition.
    #[test]
    fn a_known_isbn_and_an_asin_give_only_the_isbn() {
        let calibre = "google:b2xYAAAAMAAJ,amazon:0879975180,goodreads:1234567,isbn:9780887331596";
        let mut out = vec!["9780887331596".parse().expect("valid")];
        assert_eq!(isbns_in_cell(calibre, &mut out), Ok(()));
        assert_eq!(out.len(), 1, "{out:?}");
        let mut out = Vec::new();
        assert_eq!(
            isbns_in_cell("amazon:0879975180 (paperback)", &mut out),
            Err(RejectReason::OtherIdentifier)
        );
        assert_eq!(
            isbns_in_cell("amazon: 0879975180, goodreads: 123", &mut out),
            Err(RejectReason::OtherIdentifier)
        );
        assert!(out.is_empty(), "{out:?}");
        let mut text = Vec::new();
        crate::input::scan::isbns_in_text(
            "ids amazon:0879975180 and ISBN 9780887331596",
            &mut text,
        );
        assert_eq!(text, ["9780887331596".parse::<Isbn13>().expect("valid")]);
    }

    #[test]
    fn the_cells_apps_write() {
        let hobbit = Ok(vec!["9780261103344".to_string()]);
        for form in [
            "9780261103344",
            "=\"0261103342\"",
            "9780261103344 0261103342",           // Zotero
            "[0261103342, 9780261103344]",        // LibraryThing
            "0261103342, 9780261103344",          // LibraryThing's ISBNs
            "goodreads:123,isbn:9780261103344",   // calibre identifiers
            "isbn:0261103342,amazon:B00ABC1234",  // calibre
            "9780261103344 (pbk.)",               // MARC 020 $a
            "ISBN: 978-0-261-10334-4",            // a label with a space
            "ISBN 978 0 261 10334 4 (paperback)", // split by spaces, beside words
            "urn:isbn:9780261103344",
        ] {
            assert_eq!(cell(form), hobbit, "{form:?}");
        }
        assert_eq!(
            cell("9780261103344; 9780306406157"),
            Ok(vec!["9780261103344".into(), "9780306406157".into()])
        );
    }

    #[test]
    fn other_schemes_are_never_isbns() {
        // 12345678 would zero-pad into a valid-looking ISBN-10? Whatever it pads to, a
        // goodreads id is not an ISBN.
        assert_eq!(
            cell("goodreads:60005637"),
            Err(RejectReason::OtherIdentifier)
        );
        assert_eq!(
            cell("goodreads: 60005637"),
            Err(RejectReason::OtherIdentifier)
        );
        assert_eq!(
            cell("goodreads:60005637,oclc:12345"),
            Err(RejectReason::OtherIdentifier)
        );
        // Bare, the same digits are an ISBN-10 that lost its zeros.
        assert_eq!(cell("60005637"), Ok(vec!["9780060005634".into()]));
        assert_eq!(
            cell("goodreads:60005637,isbn:9780261103344"),
            Ok(vec!["9780261103344".into()])
        );
    }

    #[test]
    fn reasons_name_the_real_problem() {
        assert_eq!(cell(""), Err(RejectReason::Empty));
        assert_eq!(cell("n/a"), Err(RejectReason::BadCharacters));
        assert_eq!(cell("9.78044E+12"), Err(RejectReason::ScientificNotation));
        assert_eq!(cell("0306406153"), Err(RejectReason::BadCheckDigit));
        assert_eq!(
            cell("0306406153, 9780306406158"),
            Err(RejectReason::BadCheckDigit)
        );
        assert_eq!(cell("(pbk.)"), Err(RejectReason::BadCharacters));
    }

    fn isbn13() -> impl Strategy<Value = Isbn13> {
        (0u64..1_000_000_000, prop_oneof![Just("978"), Just("979")])
            .prop_map(|(n, p)| isbn::synthetic_in(p, n))
    }

    fn separator() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(" "),
            Just(", "),
            Just(";"),
            Just("] ["),
            Just(" | "),
            Just(",isbn:"),
            Just(" (pbk.) "),
            Just(" goodreads:60005637 "),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_listed_isbn_is_found_once(
            isbns in proptest::collection::vec(isbn13(), 1..6),
            seps in proptest::collection::vec(separator(), 6),
            ten in any::<bool>(),
        ) {
            let mut text = String::new();
            for (i, isbn) in isbns.iter().enumerate() {
                let form = match (ten, isbn.isbn10()) {
                    (true, Some(t)) => t,
                    _ => isbn.to_string(),
                };
                text.push_str(&form);
                text.push_str(seps[i]);
            }
            let mut want: Vec<Isbn13> = Vec::new();
            for i in &isbns { if !want.contains(i) { want.push(*i); } }
            let mut got = Vec::new();
            prop_assert!(isbns_in_cell(&text, &mut got).is_ok(), "{}", text);
            prop_assert_eq!(got, want, "{}", text);
        }

        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = isbns_in_cell(&s, &mut Vec::new());
        }
    }
}
