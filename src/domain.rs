/*!
The words every layer shares: which source (`ProviderId`) and what a verified book holds
(`Book`). They live here, below the store and the providers, so neither imports the other.
*/

/// A source, by the name the database and the command line use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ProviderId {
    #[serde(rename = "google")]
    Google,
    #[serde(rename = "openlibrary")]
    OpenLibrary,
}

impl ProviderId {
    /// Every provider, in the default order of precedence.
    pub const ALL: [ProviderId; 2] = [ProviderId::Google, ProviderId::OpenLibrary];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Google => "google",
            ProviderId::OpenLibrary => "openlibrary",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderId> {
        ProviderId::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// `order` followed by every other provider: the precedence of merged fields.
    pub fn precedence(order: &[ProviderId]) -> Vec<ProviderId> {
        let mut all = order.to_vec();
        all.extend(ProviderId::ALL.iter().filter(|p| !order.contains(p)));
        all
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    pub raw_json: String,
}
