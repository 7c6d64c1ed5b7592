/*!
A merged book as a MARC 21 bibliographic record, for library systems (Koha, Evergreen) and
pymarc: `export --format marcxml` (MARC 21 slim XML) and `--format marc` (ISO 2709, UTF-8).

The record is built once ([`record`]) and written by either writer. What it carries: the leader
(`nam`, UTF-8, encoding level 3: an abbreviated record, not a cataloguer's), 001 the ISBN-13,
005 now, 008 with the date entered, the publication year and the language, 020 both ISBN forms,
040, 050/082 where a source gave an LCC or DDC, 100/700 (family name first), 245 with the
non-filing count of a leading article where the language is known, 264, 300, 520, 650, 856 the
cover link, 500 the attribution a licence asks for, and 588 naming the sources and the date.

ISO 2709 counts bytes: a field is at most 9,999 bytes and a record 99,999, so a text is cut
(at a character boundary) to fit rather than written into a record no reader can take apart.
*/

use std::io::Write;

use crate::store::Record;

/// One data field: tag, indicators, subfields (code, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub tag: &'static str,
    pub ind: [char; 2],
    pub subfields: Vec<(char, String)>,
}

/// A record: the leader (without lengths, filled in by the writers), control fields and data
/// fields in tag order.
#[derive(Debug, Clone, PartialEq)]
pub struct MarcRecord {
    pub controls: Vec<(&'static str, String)>,
    pub fields: Vec<Field>,
}

const LEADER: &str = "00000nam a2200000 c 4500";
/// The longest text one subfield gets (ISO 2709's field length is four digits).
const MAX_TEXT: usize = 8_000;

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Non-filing characters of a leading article in `language` (ISO 639-1), for 245's second
/// indicator.
fn nonfiling(title: &str, language: Option<&str>) -> char {
    let articles: &[&str] = match language {
        Some("en") => &["The ", "A ", "An "],
        Some("de") => &["Der ", "Die ", "Das ", "Ein ", "Eine "],
        Some("fr") => &["Le ", "La ", "Les ", "L'", "Un ", "Une "],
        Some("es") => &["El ", "La ", "Los ", "Las ", "Un ", "Una "],
        Some("it") => &[
            "Il ", "Lo ", "La ", "I ", "Gli ", "Le ", "L'", "Un ", "Una ",
        ],
        _ => &[],
    };
    articles
        .iter()
        .find(|a| title.starts_with(**a))
        .and_then(|a| char::from_digit(a.chars().count() as u32, 10))
        .unwrap_or('0')
}

fn list(json: Option<&str>) -> Vec<String> {
    json.and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
        .unwrap_or_default()
}

/// `name` as a heading: "Family, Given", or the name whole.
fn heading(name: &str) -> (char, String) {
    match crate::citation::split_name(name) {
        crate::citation::Name::Person { family, given } => ('1', format!("{family}, {given}")),
        crate::citation::Name::Literal(l) => ('0', l),
    }
}

/// Data fields as they are made: empty subfields dropped, texts cut to fit.
#[derive(Default)]
struct Fields(Vec<Field>);

impl Fields {
    fn add(&mut self, tag: &'static str, ind: [char; 2], subfields: Vec<(char, String)>) {
        let subfields: Vec<(char, String)> = subfields
            .into_iter()
            .map(|(c, v)| (c, cut(&v, MAX_TEXT)))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        if !subfields.is_empty() {
            self.0.push(Field {
                tag,
                ind,
                subfields,
            });
        }
    }
}

/// The publication year, if it is one MARC can write.
fn year(r: &Record) -> Option<i64> {
    r.published_year.filter(|y| (0..=9999).contains(y))
}

/// `books.language`, lower-cased.
fn language(r: &Record) -> Option<String> {
    r.language.as_deref().map(|l| l.trim().to_ascii_lowercase())
}

/// 008: 00-05 entered, 06 one date or none, 07-10 the year, 11-14 none, 15-17 place unknown,
/// 18-34 the books' positions (not a conference, festschrift or index; not fiction said),
/// 35-37 language, 38 not modified, 39 other cataloguing source.
fn control_008(r: &Record, now: chrono::DateTime<chrono::Utc>) -> String {
    let marc_language = language(r)
        .as_deref()
        .and_then(crate::domain::marc_language)
        .unwrap_or("und");
    let year = year(r);
    format!(
        "{}{}{}    xx            000 0 {marc_language} d",
        now.format("%y%m%d"),
        if year.is_some() { 's' } else { 'n' },
        year.map_or("    ".to_string(), |y| format!("{y:04}")),
    )
}

/// 020, 040, 050, 082: the numbers.
fn numbers(r: &Record, f: &mut Fields) {
    f.add("020", [' ', ' '], vec![('a', r.isbn13.clone())]);
    if let Some(ten) = &r.isbn10 {
        f.add("020", [' ', ' '], vec![('a', ten.clone())]);
    }
    f.add(
        "040",
        [' ', ' '],
        vec![('a', "isbn-crawler".into()), ('b', "eng".into())],
    );
    if let Some(lcc) = &r.lcc {
        f.add("050", [' ', '4'], vec![('a', lcc.clone())]);
    }
    if let Some(ddc) = &r.ddc {
        f.add("082", ['0', '4'], vec![('a', ddc.clone())]);
    }
}

/// 100, 245, 264, 300, 700: who, what, by whom, how long.
fn description_fields(r: &Record, f: &mut Fields) {
    let authors = list(r.authors.as_deref());
    if let Some(first) = authors.first() {
        let (ind1, name) = heading(first);
        f.add("100", [ind1, ' '], vec![('a', name)]);
    }
    for other in authors.iter().skip(1) {
        let (ind1, name) = heading(other);
        f.add("700", [ind1, ' '], vec![('a', name)]);
    }
    if let Some(title) = &r.title {
        let mut sub = vec![('a', title.clone())];
        if let Some(s) = &r.subtitle {
            sub.push(('b', s.clone()));
        }
        let ind1 = if authors.is_empty() { '0' } else { '1' };
        f.add("245", [ind1, nonfiling(title, language(r).as_deref())], sub);
    }
    let mut imprint = Vec::new();
    if let Some(p) = &r.publisher {
        imprint.push(('b', p.clone()));
    }
    if let Some(y) = year(r) {
        imprint.push(('c', y.to_string()));
    }
    f.add("264", [' ', '1'], imprint);
    if let Some(n) = r.page_count.filter(|n| *n > 0) {
        f.add("300", [' ', ' '], vec![('a', format!("{n} pages"))]);
    }
}

/// 500, 520, 588, 650, 856: notes, subjects, the cover.
fn notes(r: &Record, f: &mut Fields) {
    if let Some(a) = &r.attribution {
        f.add("500", [' ', ' '], vec![('a', a.clone())]);
    }
    if let Some(d) = r.description.as_deref().map(crate::domain::plain_text) {
        f.add("520", [' ', ' '], vec![('a', d)]);
    }
    f.add("588", ['0', ' '], vec![('a', sources_note(r))]);
    for subject in list(r.categories.as_deref()) {
        f.add("650", [' ', '4'], vec![('a', subject)]);
    }
    if let Some(cover) = &r.thumbnail {
        f.add(
            "856",
            ['4', '2'],
            vec![('3', "Cover image".into()), ('u', cover.clone())],
        );
    }
}

/// 588: the providers the merged fields came from, and when.
fn sources_note(r: &Record) -> String {
    let mut sources: Vec<String> = r
        .provenance
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p).ok())
        .map(|m| {
            m.values()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    sources.dedup();
    let retrieved = r
        .fetched_at
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(String::new(), |t| {
            format!(", retrieved {}", t.format("%Y-%m-%d"))
        });
    let from = if sources.is_empty() {
        "its sources".to_string()
    } else {
        sources.join(", ")
    };
    format!("Description based on metadata from {from} (isbn-crawler){retrieved}.")
}

/// The MARC record of `r` (a found book), made at `now_ms`.
pub fn record(r: &Record, now_ms: i64) -> MarcRecord {
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let mut fields = Fields::default();
    numbers(r, &mut fields);
    description_fields(r, &mut fields);
    notes(r, &mut fields);
    let mut fields = fields.0;
    // Stable: a tag's repeats keep their order (020 ISBN-13 before ISBN-10).
    fields.sort_by_key(|f| f.tag);
    MarcRecord {
        controls: vec![
            ("001", r.isbn13.clone()),
            ("005", now.format("%Y%m%d%H%M%S.0").to_string()),
            ("008", control_008(r, now)),
        ],
        fields,
    }
}

/// `s` for XML text or an attribute: markup escaped, and characters XML 1.0 cannot carry
/// (controls but tab, LF, CR) dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The opening of a MARCXML collection.
pub const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<collection xmlns=\"http://www.loc.gov/MARC21/slim\">\n";
/// Its end.
pub const XML_TAIL: &str = "</collection>\n";

/// One `<record>` of MARC 21 slim XML.
pub fn write_xml(out: &mut impl Write, m: &MarcRecord) -> std::io::Result<()> {
    writeln!(out, "<record><leader>{LEADER}</leader>")?;
    for (tag, value) in &m.controls {
        writeln!(
            out,
            "<controlfield tag=\"{tag}\">{}</controlfield>",
            xml(value)
        )?;
    }
    for f in &m.fields {
        write!(
            out,
            "<datafield tag=\"{}\" ind1=\"{}\" ind2=\"{}\">",
            f.tag, f.ind[0], f.ind[1]
        )?;
        for (code, value) in &f.subfields {
            write!(out, "<subfield code=\"{code}\">{}</subfield>", xml(value))?;
        }
        writeln!(out, "</datafield>")?;
    }
    writeln!(out, "</record>")
}

/// A value inside ISO 2709: its delimiters (0x1D, 0x1E, 0x1F) would end the record, field or
/// subfield early, so they become spaces.
fn iso(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{1d}' | '\u{1e}' | '\u{1f}' => ' ',
            c => c,
        })
        .collect()
}

/// One ISO 2709 record: leader with its lengths, directory, fields.
pub fn write_iso2709(out: &mut impl Write, m: &MarcRecord) -> std::io::Result<()> {
    let mut bodies: Vec<(&str, Vec<u8>)> = Vec::new();
    for (tag, value) in &m.controls {
        let mut b = iso(value).into_bytes();
        b.push(0x1e);
        bodies.push((tag, b));
    }
    for f in &m.fields {
        let mut b = vec![f.ind[0] as u8, f.ind[1] as u8];
        for (code, value) in &f.subfields {
            b.push(0x1f);
            b.push(*code as u8);
            b.extend_from_slice(iso(value).as_bytes());
        }
        b.push(0x1e);
        bodies.push((f.tag, b));
    }
    // Fields dropped from the end until the record fits in five digits.
    let size = |bodies: &[(&str, Vec<u8>)]| {
        24 + bodies.len() * 12 + 1 + bodies.iter().map(|(_, b)| b.len()).sum::<usize>() + 1
    };
    while size(&bodies) > 99_999 && bodies.len() > 3 {
        bodies.pop();
    }
    let base = 24 + bodies.len() * 12 + 1;
    let mut directory = String::new();
    let mut offset = 0;
    for (tag, b) in &bodies {
        directory.push_str(&format!("{tag}{:04}{offset:05}", b.len()));
        offset += b.len();
    }
    let total = size(&bodies);
    let leader = format!("{total:05}{}{base:05}{}", &LEADER[5..12], &LEADER[17..]);
    out.write_all(leader.as_bytes())?;
    out.write_all(directory.as_bytes())?;
    out.write_all(&[0x1e])?;
    for (_, b) in &bodies {
        out.write_all(b)?;
    }
    out.write_all(&[0x1d])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> Record {
        Record {
            isbn13: "9780261102217".into(),
            isbn10: Some("0261102214".into()),
            state: "done".into(),
            title: Some("The Hobbit".into()),
            subtitle: Some("or There and Back Again".into()),
            authors: Some(r#"["J. R. R. Tolkien","Christopher Tolkien"]"#.into()),
            publisher: Some("Allen & Unwin".into()),
            published_year: Some(1937),
            page_count: Some(310),
            language: Some("en".into()),
            categories: Some(r#"["Fantasy"]"#.into()),
            ddc: Some("823.912".into()),
            provenance: Some(r#"{"title":"google","page_count":"openlibrary"}"#.into()),
            fetched_at: Some(1_765_000_000_000),
            thumbnail: Some("https://covers.example/1.jpg".into()),
            ..Record::default()
        }
    }

    #[test]
    fn the_record_says_what_a_catalogue_reads() {
        let m = record(&book(), 1_765_000_000_000);
        let f008 = &m.controls[2].1;
        assert_eq!(f008.chars().count(), 40, "{f008:?}");
        assert_eq!(&f008[6..11], "s1937");
        assert_eq!(&f008[35..38], "eng");
        let tags: Vec<&str> = m.fields.iter().map(|f| f.tag).collect();
        assert_eq!(
            tags,
            [
                "020", "020", "040", "082", "100", "245", "264", "300", "588", "650", "700", "856"
            ]
        );
        let f245 = m.fields.iter().find(|f| f.tag == "245").expect("245");
        assert_eq!(f245.ind, ['1', '4'], "The: four characters not filed");
        let f100 = m.fields.iter().find(|f| f.tag == "100").expect("100");
        assert_eq!(f100.subfields[0].1, "Tolkien, J. R. R.");
        let f588 = m.fields.iter().find(|f| f.tag == "588").expect("588");
        assert!(
            f588.subfields[0].1.contains("google, openlibrary"),
            "{f588:?}"
        );
    }

    #[test]
    fn iso_2709_lengths_and_offsets_add_up() {
        let r = Record {
            title: Some("Ünïcödé \u{1e} delimiter".into()),
            ..book()
        };
        let mut out = Vec::new();
        write_iso2709(&mut out, &record(&r, 0)).expect("write");
        let total: usize = std::str::from_utf8(&out[..5])
            .expect("digits")
            .parse()
            .expect("n");
        assert_eq!(total, out.len());
        let base: usize = std::str::from_utf8(&out[12..17])
            .expect("digits")
            .parse()
            .expect("n");
        assert_eq!(
            out[base - 1],
            0x1e,
            "the directory ends where the base says"
        );
        assert_eq!(*out.last().expect("byte"), 0x1d);
        // Every directory entry points at a field ending in a field terminator.
        for entry in out[24..base - 1].chunks(12) {
            let e = std::str::from_utf8(entry).expect("ascii");
            let (len, start): (usize, usize) = (
                e[3..7].parse().expect("len"),
                e[7..].parse().expect("start"),
            );
            assert_eq!(out[base + start + len - 1], 0x1e, "{e}");
        }
        assert_eq!(
            out.iter().filter(|b| **b == 0x1d).count(),
            1,
            "one record terminator"
        );
    }

    #[test]
    fn marcxml_escapes_and_drops_what_xml_cannot_carry() {
        let r = Record {
            title: Some("<b>&\u{1}\"".into()),
            ..book()
        };
        let mut out = Vec::new();
        write_xml(&mut out, &record(&r, 0)).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("<subfield code=\"a\">&lt;b&gt;&amp;&quot;</subfield>"),
            "{text}"
        );
    }
}
