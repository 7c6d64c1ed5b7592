/*!
`.env`: settings kept in a file, found in the working directory or a parent (where dotenvy
looks), never overriding the environment.

A malformed `.env` is an error that names the file and the line. Skipping it, as dotenvy's
callers usually do, would tell a user who did set `GOOGLE_BOOKS_API_KEY` that it is not set.
The line itself is never shown: it may hold the key.
*/

use std::path::{Path, PathBuf};

/// Loads the nearest `.env` into the environment (variables already set win). `Ok(None)` when
/// there is none.
///
/// Must run before any other thread exists: it sets environment variables.
pub fn load() -> Result<Option<PathBuf>, String> {
    let Some(path) = find() else {
        return Ok(None);
    };
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(Some(path)),
        Err(dotenvy::Error::LineParse(text, _)) => Err(format!(
            "{}: {} cannot be read: expected NAME=value (a quote left open, or an unknown \
             \\ escape?); fix or remove it",
            path.display(),
            line_of(&path, &text)
        )),
        Err(e) => Err(format!("{}: cannot be read: {e}", path.display())),
    }
}

/// The first `.env` file in the working directory or one of its parents.
fn find() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .map(|dir| dir.join(".env"))
        .find(|candidate| candidate.is_file())
}

/// "line N" for the line where `text` (what dotenvy could not parse) starts in the file.
fn line_of(path: &Path, text: &str) -> String {
    let at = std::fs::read_to_string(path)
        .ok()
        .filter(|_| !text.is_empty())
        .and_then(|all| all.find(text).map(|i| all[..i].matches('\n').count() + 1));
    match at {
        Some(n) => format!("line {n}"),
        None => "a line".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_named_is_where_the_bad_text_starts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(".env");
        std::fs::write(&path, "# settings\nA=1\n\nB=\"open\nC=3\n").expect("write");
        let Err(dotenvy::Error::LineParse(text, _)) = dotenvy::from_path_iter(&path)
            .expect("open")
            .find(|item| item.is_err())
            .expect("an error")
        else {
            panic!("a parse error");
        };
        assert_eq!(line_of(&path, &text), "line 4");
        assert_eq!(line_of(&path, ""), "a line");
    }
}
