/*!
The words every layer shares: which source (`ProviderId`) and what a verified book holds
(`Book`). They live here, below the store and the providers, so neither imports the other.
*/

/// A source, by the name the database and the command line use. Each provider module makes
/// its own (its `ID`), so a new source adds no variant here; the registry lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ProviderId(&'static str);

impl ProviderId {
    /// The id called `name`: for a provider's own module (and its registry entry).
    pub const fn named(name: &'static str) -> ProviderId {
        ProviderId(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Which ISBNs a provider is asked about: all, or those starting with one of its ISBN-13
/// prefixes (a national library gets the books of its registration groups).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Routes {
    #[default]
    All,
    /// ISBN-13 prefixes: digits, starting 978 or 979.
    Prefixes(Vec<String>),
}

impl Routes {
    /// Whether the ISBN-13 `isbn13` is asked of the provider.
    pub fn admit(&self, isbn13: &str) -> bool {
        match self {
            Routes::All => true,
            Routes::Prefixes(prefixes) => prefixes.iter().any(|p| isbn13.starts_with(p.as_str())),
        }
    }

    /// The prefixes, or `None` for every ISBN: what the store filters by.
    pub fn prefixes(&self) -> Option<&[String]> {
        match self {
            Routes::All => None,
            Routes::Prefixes(p) => Some(p),
        }
    }
}

/// The metadata of a verified book, ready to store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    pub isbn13: String,
    pub isbn10: Option<String>,
    pub volume_id: Option<String>,
    pub title: Option<String>,
    pub subtitle: Option<String>,
    /// JSON arrays, as stored.
    pub authors: Option<String>,
    pub publisher: Option<String>,
    pub published_date: Option<String>,
    pub published_year: Option<i64>,
    pub description: Option<String>,
    pub page_count: Option<i64>,
    pub categories: Option<String>,
    pub language: Option<String>,
    pub average_rating: Option<f64>,
    pub ratings_count: Option<i64>,
    pub thumbnail: Option<String>,
    /// Dewey Decimal Classification, Library of Congress Classification, LC Control Number.
    pub ddc: Option<String>,
    pub lcc: Option<String>,
    pub lccn: Option<String>,
    /// What reuse of the record must say (BnF: "Source: Bibliothèque nationale de France,
    /// record of 2020-01-01"), where its licence asks.
    pub attribution: Option<String>,
    pub raw_json: String,
}

/// ISO 639-2/B codes (what MARC records carry) and their ISO 639-1 two-letter codes (what
/// Google and Open Library give and `books.language` keeps), for the languages lists hold most.
pub const LANGUAGES: [(&str, &str); 24] = [
    ("ara", "ar"),
    ("chi", "zh"),
    ("cze", "cs"),
    ("dan", "da"),
    ("dut", "nl"),
    ("eng", "en"),
    ("fin", "fi"),
    ("fre", "fr"),
    ("ger", "de"),
    ("gre", "el"),
    ("heb", "he"),
    ("hun", "hu"),
    ("ita", "it"),
    ("jpn", "ja"),
    ("kor", "ko"),
    ("lat", "la"),
    ("nor", "no"),
    ("pol", "pl"),
    ("por", "pt"),
    ("rus", "ru"),
    ("spa", "es"),
    ("swe", "sv"),
    ("tur", "tr"),
    ("ukr", "uk"),
];

/// The MARC (ISO 639-2/B) code of a language as `books.language` keeps it (`de` → `ger`); a
/// three-letter code passes as it is.
pub fn marc_language(code: &str) -> Option<&'static str> {
    let lower = code.trim().to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(three, two)| *two == lower || *three == lower)
        .map(|(three, _)| *three)
}

/// A description's HTML (as Google sends it) as one line of plain text.
pub fn plain_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
