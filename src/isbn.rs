/*!
ISBN rules: what a valid ISBN is, how the messy forms users have are normalised, and why a
value is refused.

Everything here is pure (no I/O) because the job table trusts it: a job's key is the
canonical ISBN-13 this module produces, so a book reached through its ISBN-10, a hyphenated
ISBN-13 or an `ISBN:` label is always the same job.

Three repairs are made, and only these three, because each is provably lossless:
- Excel's `="0306406152"` wrapping and surrounding quotes are removed.
- A 7 to 9 digit value is taken to be an ISBN-10 whose leading zeros a spreadsheet dropped,
  but only if the zero-padded value has a valid check digit.
- A 14-digit GTIN whose indicator digit is 0 (`09780306406157`, as distributors' lists write
  it) is the EAN-13 after that zero, check digit and all.

Scientific notation (`9.78044E+12`) is never repaired: the digits it lost cannot be known.
*/

use std::fmt;

/// Why a value is not a usable ISBN. The codes (`as_str`) are stable: they are stored in the
/// `rejected_lines` table and documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Nothing left after trimming white space, quotes and labels.
    Empty,
    /// Not 10 or 13 characters (nor 7 to 9, which would be a recoverable ISBN-10).
    WrongLength,
    /// The check digit does not match the other digits.
    BadCheckDigit,
    /// A 13-digit value that does not start with 978 or 979.
    BadPrefix,
    /// Something other than digits, `X`, hyphens and spaces.
    BadCharacters,
    /// An `X` anywhere but the last place of an ISBN-10.
    MisplacedX,
    /// A spreadsheet turned the number into `9.78044E+12`: digits are lost for good.
    ScientificNotation,
    /// (Input level) the line is not valid UTF-8.
    NotUtf8,
    /// (Input level) a CSV row with a different number of fields than its header.
    RaggedRow,
    /// (Input level) a line longer than the reader accepts.
    LineTooLong,
    /// (Input level) the file holds NUL bytes: it is not a text list.
    BinaryFile,
    /// Only identifiers of other schemes (`goodreads:123`, `amazon:B00...`, `oclc:...`).
    OtherIdentifier,
    /// (Input level) a MARC record whose leader or directory cannot be read.
    BadRecord,
    /// (Input level) a CSV row opens a quote that does not close before the end of the file,
    /// or within a bounded number of lines or bytes; reading resumes at the next line.
    UnterminatedQuote,
}

impl RejectReason {
    pub const ALL: [RejectReason; 14] = [
        RejectReason::Empty,
        RejectReason::WrongLength,
        RejectReason::BadCheckDigit,
        RejectReason::BadPrefix,
        RejectReason::BadCharacters,
        RejectReason::MisplacedX,
        RejectReason::ScientificNotation,
        RejectReason::NotUtf8,
        RejectReason::RaggedRow,
        RejectReason::LineTooLong,
        RejectReason::BinaryFile,
        RejectReason::OtherIdentifier,
        RejectReason::BadRecord,
        RejectReason::UnterminatedQuote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::WrongLength => "wrong-length",
            RejectReason::BadCheckDigit => "bad-check-digit",
            RejectReason::BadPrefix => "bad-prefix",
            RejectReason::BadCharacters => "bad-characters",
            RejectReason::MisplacedX => "misplaced-x",
            RejectReason::ScientificNotation => "scientific-notation",
            RejectReason::NotUtf8 => "not-utf8",
            RejectReason::RaggedRow => "ragged-row",
            RejectReason::LineTooLong => "line-too-long",
            RejectReason::BinaryFile => "binary-file",
            RejectReason::OtherIdentifier => "other-identifier",
            RejectReason::BadRecord => "bad-record",
            RejectReason::UnterminatedQuote => "unterminated-quote",
        }
    }

    pub fn parse(code: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// A reason that says little about the value (it was blank or mangled beyond repair), so
    /// when a CSV row offers another candidate column, that column's reason is the better one.
    pub fn is_uninformative(self) -> bool {
        matches!(self, RejectReason::Empty | RejectReason::ScientificNotation)
    }

    /// Of two reasons for one row (first `self`, then `later`), the one to report: the first,
    /// unless it says little and the later one says more.
    pub fn or_better(self, later: RejectReason) -> RejectReason {
        if self.is_uninformative() && !later.is_uninformative() {
            later
        } else {
            self
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid ISBN-13, the canonical key of a book. Its ISBN-10 is derived when the prefix is 978.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Isbn13([u8; 13]);

impl Isbn13 {
    /// The 13 ASCII digits.
    pub fn as_str(&self) -> &str {
        // The array only ever holds ASCII digits (constructors check), so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The ISBN-10 of a 978 book; 979 books have none.
    pub fn isbn10(&self) -> Option<String> {
        self.isbn10_ascii()
            .map(|ten| String::from_utf8_lossy(&ten).into_owned())
    }

    /// The ISBN-10 as ASCII bytes, without allocating (bulk inserts).
    pub fn isbn10_ascii(&self) -> Option<[u8; 10]> {
        if &self.0[..3] != b"978" {
            return None;
        }
        let mut ten = [0u8; 10];
        ten[..9].copy_from_slice(&self.0[3..12]);
        ten[9] = isbn10_check_char(&ten[..9]);
        Some(ten)
    }

    fn from_isbn10_digits(ten: &[u8]) -> Isbn13 {
        let mut d = [0u8; 13];
        d[..3].copy_from_slice(b"978");
        d[3..12].copy_from_slice(&ten[..9]);
        d[12] = isbn13_check_char(&d[..12]);
        Isbn13(d)
    }
}

impl fmt::Display for Isbn13 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Isbn13 {
    type Err = RejectReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The ISBN-13 whose first twelve digits are `twelve`, with its check digit computed (test
/// data and benchmarks make valid ISBNs with it). `None` unless `twelve` is 12 ASCII digits
/// starting 978 or 979.
pub fn with_check_digit(twelve: &str) -> Option<Isbn13> {
    let b = twelve.as_bytes();
    if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut d = [0u8; 13];
    d[..12].copy_from_slice(b);
    d[12] = isbn13_check_char(b);
    parse(std::str::from_utf8(&d).ok()?).ok()
}

/// The ISBN-13 `978` + `n`'s last nine digits + its check digit: the one generator of the
/// synthetic books that tests and benchmarks load (every `n` gives a valid ISBN, and
/// `n` below 10^9 a distinct one).
pub fn synthetic(n: u64) -> Isbn13 {
    synthetic_in("978", n)
}

/// The ISBN-13 of `prefix` (978 or 979 and up to nine more digits) + `n`'s last digits to
/// twelve + its check digit: [`synthetic`] in another range (the fake's unrequested books,
/// the 979 range of a property test).
pub fn synthetic_in(prefix: &str, n: u64) -> Isbn13 {
    let width = 12usize.saturating_sub(prefix.len());
    let modulus = 10u64.saturating_pow(width as u32).max(1);
    let body = format!("{prefix}{:0width$}", n % modulus);
    // Twelve digits always have a check digit; a 978 or 979 prefix always parses.
    with_check_digit(&body)
        .unwrap_or_else(|| unreachable!("{body} is not 978/979 and twelve digits"))
}

fn digit(c: u8) -> u32 {
    u32::from(c - b'0')
}

/// The check character of the first nine digits of an ISBN-10 (`0`-`9` or `X`).
fn isbn10_check_char(nine: &[u8]) -> u8 {
    let sum: u32 = nine
        .iter()
        .enumerate()
        .map(|(i, &c)| (10 - i as u32) * digit(c))
        .sum();
    match (11 - sum % 11) % 11 {
        10 => b'X',
        n => b'0' + n as u8,
    }
}

/// The check digit of the first twelve digits of an ISBN-13 (weights 1, 3, 1, 3, ...).
fn isbn13_check_char(twelve: &[u8]) -> u8 {
    let sum: u32 = twelve
        .iter()
        .enumerate()
        .map(|(i, &c)| if i % 2 == 0 { digit(c) } else { 3 * digit(c) })
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// Strips what surrounds the number: white space, quotes, Excel's `="..."` and an ISBN label.
fn strip_decorations(raw: &str) -> &str {
    let mut s = raw.trim();
    loop {
        let before = s;
        if let Some(rest) = s.strip_prefix('=') {
            s = rest.trim();
        }
        for q in ['"', '\''] {
            if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
                s = s[1..s.len() - 1].trim();
            }
        }
        if s == before {
            break;
        }
    }
    // A label: ISBN, ISBN-10, ISBN-13, ISBN10, ISBN13, each optionally followed by ':'.
    if s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("isbn")) {
        let mut rest = &s[4..];
        for label in ["-10", "-13", "10", "13"] {
            if let Some(r) = rest.strip_prefix(label) {
                rest = r;
                break;
            }
        }
        s = rest.trim_start().trim_start_matches(':').trim();
    }
    s
}

/// `9.78044E+12`, `9.78043902348e+12`, `9E12`: a number a spreadsheet reformatted.
fn is_scientific_notation(s: &str) -> bool {
    let Some(pos) = s.find(['e', 'E']) else {
        return false;
    };
    let (mantissa, exponent) = (&s[..pos], &s[pos + 1..]);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let mantissa_ok = !mantissa.is_empty()
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && mantissa.bytes().filter(|&b| b == b'.').count() <= 1
        && mantissa.bytes().any(|b| b.is_ascii_digit());
    mantissa_ok && !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// `0` + an EAN-13 (a GTIN-14 with indicator 0) → the EAN-13; anything else unchanged.
fn strip_gtin14_zero(s: &str) -> &str {
    // Every load parses every value: the common 10- and 13-character ones leave at once.
    if s.len() < 14 {
        return s;
    }
    let significant = || s.bytes().filter(|&b| b != b'-' && b != b' ');
    if significant().count() == 14
        && significant().all(|b| b.is_ascii_digit())
        && let Some(zero) = s.find('0')
        && s[..zero].bytes().all(|b| b == b'-' || b == b' ')
    {
        return &s[zero + 1..];
    }
    s
}

/// The registration group of an ISBN-13 (or of its first digits, six are enough), as
/// `978-3`: the agency that gave it out, most often a language area or country. The group's
/// length follows the ranges of the International ISBN Agency (1 digit for 0-5 and 7, 2 for
/// 80-94, 3 for 600-649 and 950-989, 4 for 9900-9989, 5 above; 979-8 and the two-digit 979-1x).
pub fn registration_group(digits: &str) -> Option<String> {
    let (ean, rest) = (digits.get(..3)?, digits.get(3..)?);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |len: usize| rest.get(..len).and_then(|d| d.parse::<u32>().ok());
    let len = match ean {
        "978" => match n(1)? {
            0..=5 | 7 => 1,
            6 => match n(2)? {
                65 => 2,
                _ => 3,
            },
            8 => 2,
            _ => match n(2)? {
                90..=94 => 2,
                95..=98 => 3,
                _ => match n(4)? {
                    9900..=9989 => 4,
                    _ => 5,
                },
            },
        },
        "979" => match n(1)? {
            8 => 1,
            _ => 2,
        },
        _ => return None,
    };
    Some(format!("{ean}-{}", rest.get(..len)?))
}

/// The language area or country of a registration group, for the groups most lists hold.
pub fn group_name(group: &str) -> Option<&'static str> {
    const NAMES: [(&str, &str); 24] = [
        ("978-0", "English"),
        ("978-1", "English"),
        ("978-2", "French"),
        ("978-3", "German"),
        ("978-4", "Japan"),
        ("978-5", "former USSR"),
        ("978-7", "China"),
        ("978-82", "Norway"),
        ("978-83", "Poland"),
        ("978-84", "Spain"),
        ("978-85", "Brazil"),
        ("978-86", "former Yugoslavia"),
        ("978-87", "Denmark"),
        ("978-88", "Italy"),
        ("978-89", "Korea"),
        ("978-90", "Netherlands, Flanders"),
        ("978-91", "Sweden"),
        ("978-93", "India"),
        ("978-94", "Netherlands"),
        ("978-950", "Argentina"),
        ("979-8", "United States"),
        ("979-10", "France"),
        ("979-11", "Korea"),
        ("979-12", "Italy"),
    ];
    NAMES.iter().find(|(g, _)| *g == group).map(|(_, n)| *n)
}

/// Parses any accepted form of an ISBN into its canonical ISBN-13.
pub fn parse(raw: &str) -> Result<Isbn13, RejectReason> {
    let s = strip_decorations(raw);
    if s.is_empty() {
        return Err(RejectReason::Empty);
    }
    if is_scientific_notation(s) {
        return Err(RejectReason::ScientificNotation);
    }
    let s = strip_gtin14_zero(s);
    // At most 13 significant characters are kept; anything longer is the wrong length, but
    // its characters are still checked first so the reason names the real problem.
    let mut buf = [0u8; 13];
    let mut len = 0usize;
    let mut too_long = false;
    for b in s.bytes() {
        match b {
            b'-' | b' ' => continue,
            b'0'..=b'9' | b'X' | b'x' => {
                if len < buf.len() {
                    buf[len] = b.to_ascii_uppercase();
                } else {
                    too_long = true;
                }
                len += 1;
            }
            _ => return Err(RejectReason::BadCharacters),
        }
    }
    if too_long {
        return Err(RejectReason::WrongLength);
    }
    let chars = &buf[..len];
    if let Some(x) = chars.iter().position(|&c| c == b'X') {
        // X is the check character 10, so it can only be the last of an ISBN-10 (or of a
        // 7-9 digit ISBN-10 that lost its leading zeros).
        if x != len - 1 || !(7..=10).contains(&len) {
            return Err(RejectReason::MisplacedX);
        }
    }
    match len {
        13 => {
            if !(chars.starts_with(b"978") || chars.starts_with(b"979")) {
                return Err(RejectReason::BadPrefix);
            }
            if isbn13_check_char(&chars[..12]) != chars[12] {
                return Err(RejectReason::BadCheckDigit);
            }
            Ok(Isbn13(buf))
        }
        7..=10 => {
            let mut ten = [b'0'; 10];
            ten[10 - len..].copy_from_slice(chars);
            if isbn10_check_char(&ten[..9]) != ten[9] {
                return Err(RejectReason::BadCheckDigit);
            }
            Ok(Isbn13::from_isbn10_digits(&ten))
        }
        _ => Err(RejectReason::WrongLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_forms_all_name_the_same_book() {
        let forms = [
            "9780306406157",
            "978-0-306-40615-7",
            "978 0 306 40615 7",
            "0306406152",
            "0-306-40615-2",
            "306406152",
            "ISBN 0-306-40615-2",
            "isbn:0306406152",
            "ISBN-10: 0-306-40615-2",
            "ISBN-13: 978-0-306-40615-7",
            "ISBN13 9780306406157",
            "Isbn10:0306406152",
            "=\"0306406152\"",
            "\"9780306406157\"",
            "'0306406152'",
            "  9780306406157\t",
            "\" ISBN: 978-0306406157 \"",
            "09780306406157",
        ];
        for form in forms {
            let isbn = parse(form).unwrap_or_else(|e| panic!("{form:?} rejected: {e}"));
            assert_eq!(isbn.as_str(), "9780306406157", "{form:?}");
            assert_eq!(isbn.isbn10().as_deref(), Some("0306406152"), "{form:?}");
        }
    }

    #[test]
    fn x_check_digit_in_any_case() {
        for form in ["080442957X", "080442957x", "0-8044-2957-X", "80442957X"] {
            let isbn = parse(form).unwrap_or_else(|e| panic!("{form:?} rejected: {e}"));
            assert_eq!(isbn.as_str(), "9780804429573", "{form:?}");
            assert_eq!(isbn.isbn10().as_deref(), Some("080442957X"));
        }
    }

    #[test]
    fn lost_leading_zeros_are_recovered_only_with_a_valid_check_digit() {
        // 0439023483 lost its zero in a spreadsheet.
        assert_eq!(
            parse("439023483").map(|i| i.to_string()),
            Ok("9780439023481".into())
        );
        // Two zeros lost: 0030007050 is not valid, but 0060005637 is... check both ways.
        assert_eq!(
            parse("60005637").map(|i| i.isbn10()),
            Ok(Some("0060005637".into()))
        );
        assert_eq!(parse("439023484"), Err(RejectReason::BadCheckDigit));
        assert_eq!(parse("1234567"), Err(RejectReason::BadCheckDigit));
        assert_eq!(parse("123456"), Err(RejectReason::WrongLength));
    }

    #[test]
    fn check_digits_are_completed() {
        assert_eq!(
            with_check_digit("978030640615").map(|i| i.to_string()),
            Some("9780306406157".to_string())
        );
        assert_eq!(with_check_digit("97803064061"), None);
        assert_eq!(with_check_digit("977030640615"), None);
    }

    #[test]
    fn isbn_979_has_no_isbn10() {
        let isbn = parse("979-10-90636-07-1").expect("valid 979");
        assert_eq!(isbn.as_str(), "9791090636071");
        assert_eq!(isbn.isbn10(), None);
    }

    #[test]
    fn every_reject_reason() {
        let cases = [
            ("", RejectReason::Empty),
            ("   ", RejectReason::Empty),
            ("\"\"", RejectReason::Empty),
            ("ISBN:", RejectReason::Empty),
            ("=\"\"", RejectReason::Empty),
            ("12345", RejectReason::WrongLength),
            ("12345678901", RejectReason::WrongLength),
            ("978030640615", RejectReason::WrongLength),
            ("97803064061577", RejectReason::WrongLength),
            ("0306406153", RejectReason::BadCheckDigit),
            ("9780306406158", RejectReason::BadCheckDigit),
            ("9790306406157", RejectReason::BadCheckDigit),
            ("9770306406157", RejectReason::BadPrefix),
            ("1234567890128", RejectReason::BadPrefix),
            ("0306406I52", RejectReason::BadCharacters),
            ("978.0306406157", RejectReason::BadCharacters),
            ("abc", RejectReason::BadCharacters),
            ("0306406152;", RejectReason::BadCharacters),
            ("X306406152", RejectReason::MisplacedX),
            ("978030640615X", RejectReason::MisplacedX),
            ("03064061X2", RejectReason::MisplacedX),
            ("9.78044E+12", RejectReason::ScientificNotation),
            ("9.78043902348e+12", RejectReason::ScientificNotation),
            ("9.780439023481E12", RejectReason::ScientificNotation),
            ("\"9.78044E+12\"", RejectReason::ScientificNotation),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn reason_codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for r in RejectReason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate code {r}");
            assert_eq!(RejectReason::parse(r.as_str()), Some(r));
        }
    }

    fn isbn10_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..10, 9).prop_map(|nine| {
            let mut s: Vec<u8> = nine.iter().map(|d| b'0' + d).collect();
            s.push(isbn10_check_char(&s));
            String::from_utf8(s).expect("ascii")
        })
    }

    fn isbn13_strategy() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(b"978"), Just(b"979")],
            proptest::collection::vec(0u8..10, 9),
        )
            .prop_map(|(prefix, nine)| {
                let mut s: Vec<u8> = prefix.to_vec();
                s.extend(nine.iter().map(|d| b'0' + d));
                s.push(isbn13_check_char(&s));
                String::from_utf8(s).expect("ascii")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn isbn10_round_trips_through_isbn13(ten in isbn10_strategy()) {
            let isbn = parse(&ten).expect("generated ISBN-10 is valid");
            prop_assert_eq!(isbn.isbn10(), Some(ten.clone()));
            prop_assert_eq!(parse(isbn.as_str()), Ok(isbn));
        }

        #[test]
        fn any_single_changed_digit_of_an_isbn10_is_caught(
            ten in isbn10_strategy(), pos in 0usize..10, delta in 1u8..10,
        ) {
            let mut b = ten.into_bytes();
            if b[pos] == b'X' { b[pos] = b'0' + delta; } else {
                b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            }
            let changed = String::from_utf8(b).expect("ascii");
            prop_assert!(parse(&changed).is_err(), "{} accepted", changed);
        }

        #[test]
        fn any_single_changed_digit_of_an_isbn13_is_caught(
            thirteen in isbn13_strategy(), pos in 3usize..13, delta in 1u8..10,
        ) {
            prop_assert!(parse(&thirteen).is_ok());
            let mut b = thirteen.into_bytes();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(b).expect("ascii");
            prop_assert_eq!(parse(&changed), Err(RejectReason::BadCheckDigit));
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse(&String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn registration_groups_follow_the_agency_ranges() {
        for (isbn, group) in [
            ("9783406568442", "978-3"),
            ("9780674033801", "978-0"),
            ("9788437604947", "978-84"),
            ("9786500000000", "978-65"),
            ("9786070000000", "978-607"),
            ("9789500000000", "978-950"),
            ("9789930000000", "978-9930"),
            ("9789995900000", "978-99959"),
            ("9791032305560", "979-10"),
            ("9798886451740", "979-8"),
        ] {
            assert_eq!(registration_group(isbn).as_deref(), Some(group), "{isbn}");
        }
        assert_eq!(registration_group("978"), None);
        assert_eq!(registration_group("97x3"), None);
        assert_eq!(group_name("978-3"), Some("German"));
        assert_eq!(group_name("978-99959"), None);
    }
}
