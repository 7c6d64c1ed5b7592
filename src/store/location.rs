/*!
Where the database is: `--db` and `ISBN_CRAWLER_DB`. A `postgres://` (or `postgresql://`) URL
is a PostgreSQL database; a path or a `sqlite:` URL is a SQLite file.

The URL may carry a password. It is kept only as a secret: what the tool shows (errors,
progress, `status`, the report) is the URL without it, `postgres://user@host:port/dbname`.
*/

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;

#[derive(Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres {
        /// The URL as given, password included.
        url: SecretString,
        /// The URL without its password, for people.
        shown: String,
    },
    /// A `postgres://` URL that cannot be read. Kept instead of refused while parsing: clap
    /// would print the value, password and all, in its error.
    Invalid,
}

impl Location {
    /// The connect options of a PostgreSQL location (the password from the URL, or else from
    /// `PGPASSWORD`).
    pub(super) fn pg_options(url: &SecretString) -> Result<PgConnectOptions, String> {
        PgConnectOptions::from_str(url.expose_secret())
            .map_err(|_| "not a valid postgres:// URL".to_string())
    }
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Location, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = SecretString::from(s.to_string());
            let Ok(options) = Location::pg_options(&url) else {
                return Ok(Location::Invalid);
            };
            let shown = format!(
                "postgres://{}@{}:{}/{}",
                options.get_username(),
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or(options.get_username())
            );
            return Ok(Location::Postgres { url, shown });
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        if path.is_empty() {
            return Err("an empty database path".into());
        }
        Ok(Location::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres { shown, .. } => f.write_str(shown),
            Location::Invalid => f.write_str("<an unreadable postgres:// URL>"),
        }
    }
}

/// As `Display`: never the password, even in a debug print of the command line.
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_and_never_show_the_password() {
        let pg: Location = "postgres://crawler:s3cret@db.example:6543/books"
            .parse()
            .expect("url");
        assert!(matches!(pg, Location::Postgres { .. }));
        assert_eq!(pg.to_string(), "postgres://crawler@db.example:6543/books");
        assert!(!format!("{pg:?}").contains("s3cret"));
        let pg: Location = "postgresql://me@127.0.0.1/test".parse().expect("url");
        assert_eq!(pg.to_string(), "postgres://me@127.0.0.1:5432/test");
        for (given, path) in [
            ("data/books.db", "data/books.db"),
            ("sqlite:data/x.db", "data/x.db"),
            ("sqlite:///tmp/x.db", "/tmp/x.db"),
        ] {
            let l: Location = given.parse().expect("path");
            assert!(matches!(l, Location::Sqlite(_)));
            assert_eq!(l.to_string(), path);
        }
        let bad: Location = "postgres://u:s3cret@host:notaport/db"
            .parse()
            .expect("kept");
        assert!(matches!(bad, Location::Invalid));
        assert!(!format!("{bad} {bad:?}").contains("s3cret"));
    }
}
