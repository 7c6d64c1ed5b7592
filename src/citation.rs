/*!
Books in the formats citation managers import: CSL-JSON (Zotero, Mendeley, pandoc), RIS
(EndNote, Zotero, every reference manager) and BibTeX (LaTeX), one entry per merged book,
written from a [`Record`] as `export` streams it.

What is decided here once for all three: a name in display order ("J. R. R. Tolkien", as the
store keeps authors) is split into family and given names at its last word, with lowercase
particles ("van", "de", "von") kept with the family name, and a one-word name (an
organisation, "Homer") left whole; a title is "Title: Subtitle"; a date is the year, month and
day the record has, no more; a description is plain text. Text goes out as received, each
format escaping only what it must (BibTeX's special characters, RIS's line breaks); nothing is
made spreadsheet-safe here, since no spreadsheet reads these.
*/

use std::io::Write;

use serde_json::{Value, json};

use crate::domain::plain_text;
use crate::store::Record;

/// A person's name as citation formats want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Person {
        family: String,
        given: String,
    },
    /// One word, or nothing to split: an organisation, a mononym.
    Literal(String),
}

/// Words that belong to the family name when they come before it, lowercase.
const PARTICLES: [&str; 12] = [
    "van", "von", "de", "der", "den", "du", "da", "di", "del", "della", "la", "le",
];

/// Splits a display-order name (`J. R. R. Tolkien`, `Ludwig van Beethoven`); a name already
/// written `Family, Given` keeps its comma's split.
pub fn split_name(name: &str) -> Name {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((family, given)) = name.split_once(", ") {
        return Name::Person {
            family: family.to_string(),
            given: given.to_string(),
        };
    }
    let words: Vec<&str> = name.split(' ').filter(|w| !w.is_empty()).collect();
    if words.len() < 2 {
        return Name::Literal(name);
    }
    let mut start = words.len() - 1;
    while start > 1 && PARTICLES.contains(&words[start - 1]) {
        start -= 1;
    }
    Name::Person {
        family: words[start..].join(" "),
        given: words[..start].join(" "),
    }
}

/// The record's authors (a JSON array of strings as stored).
fn authors(r: &Record) -> Vec<Name> {
    r.authors
        .as_deref()
        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok())
        .unwrap_or_default()
        .iter()
        .map(|a| split_name(a))
        .filter(|n| !matches!(n, Name::Literal(l) if l.is_empty()))
        .collect()
}

fn categories(r: &Record) -> Vec<String> {
    r.categories
        .as_deref()
        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok())
        .unwrap_or_default()
}

/// "Title: Subtitle", or the title alone.
fn full_title(r: &Record) -> Option<String> {
    match (r.title.as_deref(), r.subtitle.as_deref()) {
        (Some(t), Some(s)) if !s.trim().is_empty() => Some(format!("{t}: {s}")),
        (Some(t), _) => Some(t.to_string()),
        (None, _) => None,
    }
}

/// Year, month and day as far as `published_date` (`2008`, `2008-09`, `2008-09-14`) gives
/// them; the lenient `published_year` otherwise.
fn date_parts(r: &Record) -> Vec<i64> {
    let mut parts: Vec<i64> = Vec::new();
    if let Some(d) = r.published_date.as_deref() {
        for (i, p) in d.trim().split('-').enumerate().take(3) {
            let ok = match i {
                0 => p.len() == 4,
                _ => p.len() == 2,
            };
            match p.parse::<i64>() {
                Ok(n) if ok && p.bytes().all(|b| b.is_ascii_digit()) => parts.push(n),
                _ => break,
            }
        }
    }
    if parts.is_empty()
        && let Some(y) = r.published_year
    {
        parts.push(y);
    }
    parts
}

fn description(r: &Record) -> Option<String> {
    r.description
        .as_deref()
        .map(plain_text)
        .filter(|d| !d.is_empty())
}

/// One CSL-JSON item (type `book`).
pub fn csl_item(r: &Record) -> Value {
    let mut item = json!({ "id": r.isbn13, "type": "book", "ISBN": r.isbn13 });
    let mut set = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            item[key] = v;
        }
    };
    set("title", full_title(r).map(Value::from));
    let names: Vec<Value> = authors(r)
        .into_iter()
        .map(|n| match n {
            Name::Person { family, given } => json!({ "family": family, "given": given }),
            Name::Literal(l) => json!({ "literal": l }),
        })
        .collect();
    set("author", (!names.is_empty()).then(|| Value::from(names)));
    set("publisher", r.publisher.clone().map(Value::from));
    let parts = date_parts(r);
    set(
        "issued",
        (!parts.is_empty()).then(|| json!({ "date-parts": [parts] })),
    );
    set(
        "number-of-pages",
        r.page_count.map(|n| Value::from(n.to_string())),
    );
    set("language", r.language.clone().map(Value::from));
    set("abstract", description(r).map(Value::from));
    let subjects = categories(r);
    set(
        "keyword",
        (!subjects.is_empty()).then(|| Value::from(subjects.join(", "))),
    );
    item
}

/// One line's worth of RIS text: line breaks would end the field.
fn ris_text(s: &str) -> String {
    s.split(['\r', '\n']).collect::<Vec<_>>().join(" ")
}

/// One RIS record, `TY  - BOOK` to `ER  - `, CRLF-ended lines as the format has them.
pub fn write_ris(out: &mut impl Write, r: &Record) -> std::io::Result<()> {
    let mut line = |tag: &str, value: &str| -> std::io::Result<()> {
        write!(out, "{tag}  - {}\r\n", ris_text(value))
    };
    line("TY", "BOOK")?;
    if let Some(t) = full_title(r) {
        line("TI", &t)?;
    }
    for a in authors(r) {
        match a {
            Name::Person { family, given } => line("AU", &format!("{family}, {given}"))?,
            Name::Literal(l) => line("AU", &l)?,
        }
    }
    if let Some(p) = &r.publisher {
        line("PB", p)?;
    }
    let parts = date_parts(r);
    if let Some(y) = parts.first() {
        line("PY", &y.to_string())?;
        let rest: Vec<String> = parts[1..].iter().map(|p| format!("{p:02}")).collect();
        line("DA", &format!("{y}/{}/", rest.join("/")))?;
    }
    line("SN", &r.isbn13)?;
    if let Some(n) = r.page_count {
        line("SP", &n.to_string())?;
    }
    if let Some(l) = &r.language {
        line("LA", l)?;
    }
    for k in categories(r) {
        line("KW", &k)?;
    }
    if let Some(d) = description(r) {
        line("AB", &d)?;
    }
    line("ER", "")?;
    out.write_all(b"\r\n")
}

/// `s` with BibTeX's special characters escaped and line breaks folded, so no text can close
/// a brace it did not open or start a command.
pub fn bibtex_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            // BibTeX counts every brace, escaped or not: these keep them balanced.
            '{' => out.push_str("\\textbraceleft{}"),
            '}' => out.push_str("\\textbraceright{}"),
            '%' | '&' | '$' | '#' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '^' => out.push_str("\\^{}"),
            '~' => out.push_str("\\~{}"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The entry's key: the first author's family name (ASCII letters), the year, and the ISBN,
/// so it is stable from one export to the next and unique (one book per ISBN).
pub fn bibtex_key(r: &Record) -> String {
    let family = authors(r)
        .into_iter()
        .next()
        .map(|n| match n {
            Name::Person { family, .. } => family,
            Name::Literal(l) => l,
        })
        .unwrap_or_default();
    let ascii: String = family
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let year = date_parts(r).first().map_or(String::new(), i64::to_string);
    match ascii.is_empty() && year.is_empty() {
        true => format!("isbn{}", r.isbn13),
        false => format!("{ascii}{year}-{}", r.isbn13),
    }
}

/// One `@book` entry.
pub fn write_bibtex(out: &mut impl Write, r: &Record) -> std::io::Result<()> {
    writeln!(out, "@book{{{},", bibtex_key(r))?;
    let mut field = |name: &str, value: &str| -> std::io::Result<()> {
        writeln!(out, "  {name} = {{{}}},", bibtex_text(value))
    };
    if let Some(t) = full_title(r) {
        field("title", &t)?;
    }
    let names: Vec<String> = authors(r)
        .into_iter()
        .map(|n| match n {
            Name::Person { family, given } => format!("{family}, {given}"),
            // Braced: a one-word or corporate name is not split by BibTeX either.
            Name::Literal(l) => format!("{{{l}}}"),
        })
        .collect();
    if !names.is_empty() {
        // Joined after escaping each, so a literal's protecting braces survive.
        let escaped: Vec<String> = names
            .iter()
            .map(
                |n| match n.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                    Some(inner) => format!("{{{}}}", bibtex_text(inner)),
                    None => bibtex_text(n),
                },
            )
            .collect();
        writeln!(out, "  author = {{{}}},", escaped.join(" and "))?;
    }
    let mut field = |name: &str, value: &str| -> std::io::Result<()> {
        writeln!(out, "  {name} = {{{}}},", bibtex_text(value))
    };
    if let Some(p) = &r.publisher {
        field("publisher", p)?;
    }
    let parts = date_parts(r);
    if let Some(y) = parts.first() {
        field("year", &y.to_string())?;
    }
    if let Some(m) = parts.get(1) {
        field("month", &m.to_string())?;
    }
    field("isbn", &r.isbn13)?;
    if let Some(n) = r.page_count {
        field("pagetotal", &n.to_string())?;
    }
    if let Some(l) = &r.language {
        field("language", l)?;
    }
    let subjects = categories(r);
    if !subjects.is_empty() {
        field("keywords", &subjects.join(", "))?;
    }
    if let Some(d) = description(r) {
        field("abstract", &d)?;
    }
    writeln!(out, "}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            isbn13: "9780261102217".into(),
            state: "done".into(),
            title: Some("The Hobbit".into()),
            subtitle: Some("or There and Back Again".into()),
            authors: Some(r#"["J. R. R. Tolkien","Ludwig van Beethoven","Homer"]"#.into()),
            publisher: Some("Allen & Unwin".into()),
            published_date: Some("1937-09-21".into()),
            published_year: Some(1937),
            page_count: Some(310),
            language: Some("en".into()),
            categories: Some(r#"["Fiction","Fantasy"]"#.into()),
            description: Some("<p>In a hole\nin the ground</p>".into()),
            ..Record::default()
        }
    }

    #[test]
    fn names_split_at_the_family_name() {
        let person = |f: &str, g: &str| Name::Person {
            family: f.into(),
            given: g.into(),
        };
        assert_eq!(
            split_name("J. R. R. Tolkien"),
            person("Tolkien", "J. R. R.")
        );
        assert_eq!(
            split_name("Ludwig van Beethoven"),
            person("van Beethoven", "Ludwig")
        );
        assert_eq!(
            split_name("Tolkien, J. R. R."),
            person("Tolkien", "J. R. R.")
        );
        assert_eq!(split_name("Homer"), Name::Literal("Homer".into()));
        assert_eq!(
            split_name("  Marguerite   Duras "),
            person("Duras", "Marguerite")
        );
    }

    #[test]
    fn a_csl_item_has_what_zotero_reads() {
        let item = csl_item(&record());
        assert_eq!(item["type"], "book");
        assert_eq!(item["title"], "The Hobbit: or There and Back Again");
        assert_eq!(
            item["author"][0],
            json!({"family": "Tolkien", "given": "J. R. R."})
        );
        assert_eq!(item["author"][2], json!({"literal": "Homer"}));
        assert_eq!(item["issued"], json!({"date-parts": [[1937, 9, 21]]}));
        assert_eq!(item["number-of-pages"], "310");
        assert_eq!(item["ISBN"], "9780261102217");
        assert_eq!(item["abstract"], "In a hole in the ground");
        // A lenient year only where the date is not a date.
        let r = Record {
            published_date: Some("c1937".into()),
            ..record()
        };
        assert_eq!(csl_item(&r)["issued"], json!({"date-parts": [[1937]]}));
    }

    #[test]
    fn a_ris_record_is_one_field_a_line() {
        let mut out = Vec::new();
        let r = Record {
            title: Some("Two\nlines".into()),
            ..record()
        };
        write_ris(&mut out, &r).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("TY  - BOOK\r\n"), "{text}");
        assert!(
            text.contains("TI  - Two lines: or There and Back Again\r\n"),
            "{text}"
        );
        assert!(text.contains("AU  - Tolkien, J. R. R.\r\n"), "{text}");
        assert!(text.contains("DA  - 1937/09/21/\r\n"), "{text}");
        assert!(text.ends_with("ER  - \r\n\r\n"), "{text}");
        assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());
    }

    #[test]
    fn bibtex_escapes_what_would_break_it() {
        assert_eq!(
            bibtex_text("50% {off} & $5 #1 a_b"),
            r"50\% \textbraceleft{}off\textbraceright{} \& \$5 \#1 a\_b"
        );
        assert_eq!(
            bibtex_text(r"\end{x}"),
            r"\textbackslash{}end\textbraceleft{}x\textbraceright{}"
        );
        let mut out = Vec::new();
        let r = Record {
            title: Some("}@misc{evil,".into()),
            ..record()
        };
        write_bibtex(&mut out, &r).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("@book{tolkien1937-9780261102217,\n"),
            "{text}"
        );
        assert!(
            text.contains(
                r"title = {\textbraceright{}@misc\textbraceleft{}evil,: or There and Back Again},"
            ),
            "{text}"
        );
        assert!(
            text.contains("author = {Tolkien, J. R. R. and van Beethoven, Ludwig and {Homer}},"),
            "{text}"
        );
        assert!(text.contains("publisher = {Allen \\& Unwin},"), "{text}");
        // Braces balance whatever the text held, counted as BibTeX counts them: all of them.
        let mut depth = 0i32;
        for c in text.chars() {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            assert!(depth >= 0, "{text}");
        }
        assert_eq!(depth, 0, "{text}");
    }
}
