/*!
Labels before an identifier (`isbn:`, `amazon:`, `goodreads:`): which introduce an ISBN and
which another scheme, whose values are never ISBNs (an Amazon ASIN of a paper book is a valid
ISBN-10 of *another* edition; a zero-padded Goodreads id can pass a check digit).
*/

/// Labels that introduce an ISBN (after [`normalise`]).
pub const ISBN_LABELS: [&str; 8] = [
    "isbn", "isbn10", "isbn13", "ean", "ean13", "gtin", "gtin13", "urnisbn",
];

/// Schemes whose ids free text labels (calibre, Goodreads, LibraryThing, Zotero exports):
/// in prose any other word before a colon (`See: 978...`) is just a word.
const OTHER_SCHEMES: [&str; 16] = [
    "amazon",
    "asin",
    "mobiasin",
    "goodreads",
    "google",
    "oclc",
    "lccn",
    "olid",
    "openlibrary",
    "librarything",
    "isfdb",
    "doi",
    "issn",
    "kobo",
    "barnesnoble",
    "uri",
];

/// Lowercase, letters and digits only: `ISBN-13` → `isbn13`.
pub fn normalise(label: &str) -> String {
    label
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn is_isbn_label(normalised: &str) -> bool {
    ISBN_LABELS.contains(&normalised)
}

/// Whether the text before byte `start` ends in a label of another known scheme
/// (`amazon:`, `OCLC: `): the digits at `start` are that scheme's.
pub fn other_scheme_before(text: &[u8], start: usize) -> bool {
    let mut end = start;
    if end > 0 && text[end - 1] == b' ' {
        end -= 1;
    }
    if end == 0 || text[end - 1] != b':' {
        return false;
    }
    let colon = end - 1;
    let mut begin = colon;
    while begin > 0 && (text[begin - 1].is_ascii_alphanumeric() || b"-_".contains(&text[begin - 1]))
    {
        begin -= 1;
    }
    let label = String::from_utf8_lossy(&text[begin..colon]);
    OTHER_SCHEMES.contains(&normalise(&label).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_before_digits() {
        let t = b"amazon:0879975180 isbn:9780887331596 OCLC: 123 See: 9";
        assert!(other_scheme_before(t, 7));
        assert!(!other_scheme_before(t, 23));
        assert!(other_scheme_before(t, 43));
        assert!(!other_scheme_before(t, t.len() - 1));
        assert!(!other_scheme_before(b"0306406152", 0));
        assert!(is_isbn_label(&normalise("ISBN-13")));
    }
}
