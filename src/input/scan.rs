/*!
`--format scan`: every ISBN in free text (a bibliography, a pasted e-mail, text extracted from
a PDF), found by shape and check digit.

Digit groups joined by a single hyphen or space form a chain (`978-0-306-40615-7`,
`0 306 40615 2`); within a chain, runs of whole groups that add up to 10 or 13 characters and
carry a valid check digit are ISBNs. Nothing else is: a 7-9 digit number in prose is a number,
not an ISBN-10 that lost its zeros (that repair is for spreadsheet cells), and digit runs that
do not validate are ignored, never rejected. Digits labelled with another scheme
(`amazon:0879975180`, `OCLC: 123`) are that scheme's.
*/

use crate::isbn::{self, Isbn13};

/// Appends every distinct ISBN in `text` to `out`, in order of appearance.
pub fn isbns_in_text(text: &str, out: &mut Vec<Isbn13>) {
    let b = text.as_bytes();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // An X check character ends a group only where a word does not go on.
        if i < b.len()
            && matches!(b[i], b'X' | b'x')
            && !b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            i += 1;
        }
        let joined = groups.last().is_some_and(|&(_, end)| {
            start == end + 1 && matches!(b[end], b'-' | b' ') && !b[end - 1].is_ascii_alphabetic()
        });
        if !joined {
            find_in_chain(b, &groups, out);
            groups.clear();
        }
        groups.push((start, i));
    }
    find_in_chain(b, &groups, out);
}

fn find_in_chain(b: &[u8], groups: &[(usize, usize)], out: &mut Vec<Isbn13>) {
    // `amazon:0879975180`: another scheme's id, whatever its check digit says.
    if groups
        .first()
        .is_some_and(|&(start, _)| super::label::other_scheme_before(b, start))
    {
        return;
    }
    let mut first = 0;
    'outer: while first < groups.len() {
        let mut chars = Vec::with_capacity(13);
        for &(start, end) in &groups[first..] {
            chars.extend_from_slice(&b[start..end]);
            if chars.len() > 13 {
                break;
            }
            if matches!(chars.len(), 10 | 13)
                && let Ok(isbn) = isbn::parse(std::str::from_utf8(&chars).unwrap_or_default())
            {
                if !out.contains(&isbn) {
                    out.push(isbn);
                }
                first += groups[first..]
                    .iter()
                    .position(|&(_, e)| e == end)
                    .map_or(1, |p| p + 1);
                continue 'outer;
            }
        }
        first += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        isbns_in_text(s, &mut out);
        out.iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn a_bibliography() {
        let text = "Tolkien, J.R.R. The Hobbit. London: Allen & Unwin, 1937. ISBN 978-0-261-10334-4, \
            pp. 12-310.\nSee also 0 306 40615 2 and ISBN:080442957X; call 0171 555 1234. \
            Order no. 9780306406158 (a typo) and 9790306406157.";
        assert_eq!(
            scan(text),
            ["9780261103344", "9780306406157", "9780804429573"]
        );
    }

    #[test]
    fn neighbours_in_one_chain_are_separated() {
        assert_eq!(
            scan("1 9780306406157 0261103342 7"),
            ["9780306406157", "9780261103344"]
        );
        // The same book twice is one.
        assert_eq!(scan("9780306406157 0306406152"), ["9780306406157"]);
        // Glued digits are not split: 26 digits are not two ISBNs by shape.
        assert!(scan("97803064061579780261103344").is_empty());
        // Short numbers are never padded in free text.
        assert!(scan("page 60005637").is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn an_isbn_in_prose_is_found(
            n in 0u64..1_000_000_000,
            before in "[a-z .,;:()]{0,20}",
            after in "[a-z .,;:()]{0,20}",
            hyphens in any::<bool>(),
        ) {
            let isbn = isbn::synthetic(n);
            let s = isbn.to_string();
            let form = if hyphens { format!("{}-{}-{}", &s[..3], &s[3..8], &s[8..]) } else { s };
            // A word right before would glue to it only without a space; keep one.
            let text = format!("{before} {form} {after}");
            prop_assert_eq!(scan(&text), vec![isbn.to_string()], "{}", text);
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = scan(&s);
        }
    }
}
