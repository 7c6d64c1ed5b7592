/*!
A verified catalogue record as a [`Book`]: MARC 21 (DNB, K10plus, LoC) and UNIMARC (BnF) each
by their own fields, cleaned the same way. Catalogue text is NFD at DNB (and has combining
marks at LoC): every string is NFC-normalised, and DNB's non-sort markers (U+0098 … U+009C
around a leading article) are removed, the article kept. ISBD punctuation (` /`, ` :`, ` ;`
ending a subfield) is stripped only where the leader says the record carries it (leader/18
`a` or `i`: LoC; DNB and K10plus omit it). Names come in display order ("Tolkien, J. R. R.,"
is "J. R. R. Tolkien"), dates and relator terms left out. The record is kept whole as
MARC-in-JSON in `raw_json`, so `json_extract` works on it.
*/

use unicode_normalization::UnicodeNormalization;

use super::envelope::MarcRecord;
use super::profile::{Profile, RecordFormat};
use super::verify;
use crate::domain::Book;
use crate::isbn::Isbn13;

/// `record`, verified as `isbn`, as a book.
pub fn book(record: &MarcRecord, format: RecordFormat, isbn: &Isbn13) -> Book {
    let isbd = matches!(record.leader.as_bytes().get(18), Some(b'a' | b'i'));
    let text = |tag: &str, code: &str| {
        record
            .subfields(tag, code)
            .map(|v| tidy(v, isbd))
            .find(|v| !v.is_empty())
    };
    let (title, subtitle, authors, publisher, date, pages, language, subjects) = match format {
        RecordFormat::Marc21 => (
            text("245", "a"),
            text("245", "b"),
            marc21_authors(record),
            imprint(record, &[("264", "1", "b"), ("260", "", "b")], isbd),
            imprint(record, &[("264", "1", "c"), ("260", "", "c")], isbd),
            text("300", "a"),
            text("041", "a").or_else(|| {
                record
                    .control("008")
                    .and_then(|f| f.get(35..38))
                    .map(str::to_string)
            }),
            subjects(record, &["650", "689"], isbd),
        ),
        RecordFormat::Unimarc => (
            text("200", "a"),
            text("200", "e"),
            unimarc_authors(record),
            imprint(record, &[("214", "0", "c"), ("210", "", "c")], isbd),
            imprint(record, &[("214", "0", "d"), ("210", "", "d")], isbd),
            text("215", "a"),
            text("101", "a"),
            subjects(record, &["606"], isbd),
        ),
    };
    let (ddc, lcc, lccn) = match format {
        RecordFormat::Marc21 => (marc21_ddc(record), marc21_lcc(record), marc21_lccn(record)),
        RecordFormat::Unimarc => (text("676", "a"), None, None),
    };
    let json_list = |v: Vec<String>| (!v.is_empty()).then(|| serde_json::json!(v).to_string());
    Book {
        isbn13: isbn.to_string(),
        isbn10: isbn.isbn10(),
        volume_id: record.control("001").map(|s| s.trim().to_string()),
        title,
        subtitle,
        authors: json_list(authors),
        publisher,
        published_date: date,
        published_year: verify::year(record, format).map(i64::from),
        page_count: pages.as_deref().and_then(page_count),
        categories: json_list(subjects),
        language: language.map(|l| two_letter(l.trim())),
        ddc,
        lcc,
        lccn,
        raw_json: marc_in_json(record),
        ..Book::default()
    }
}

/// The book of `records[chosen]` for `isbn`, with what the profile's licence asks said, and
/// the other records that carry the ISBN (other editions, formats) kept in the raw record as
/// `alternatives`, whole: nothing a catalogue sent for the book is thrown away.
pub fn chosen(profile: &Profile, records: &[MarcRecord], chosen: usize, isbn: &Isbn13) -> Book {
    let record = &records[chosen];
    let mut book = book(record, profile.format, isbn);
    book.attribution = profile
        .attribution
        .map(|who| match record.modified.as_deref() {
            Some(date) => format!("Source: {who}, record of {}", iso_date(date)),
            None => format!("Source: {who}"),
        });
    let others: Vec<serde_json::Value> = records
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != chosen && verify::own_isbns(r, profile.format).contains(isbn))
        .filter_map(|(_, r)| serde_json::from_str(&marc_in_json(r)).ok())
        .collect();
    if !others.is_empty()
        && let Ok(mut raw) = serde_json::from_str::<serde_json::Value>(&book.raw_json)
    {
        raw["alternatives"] = serde_json::Value::Array(others);
        book.raw_json = raw.to_string();
    }
    book
}

/// `20200101` as `2020-01-01`; any other text as it came.
fn iso_date(date: &str) -> String {
    match date.as_bytes() {
        d if d.len() == 8 && d.iter().all(u8::is_ascii_digit) => {
            format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..])
        }
        _ => date.to_string(),
    }
}

/// NFC, DNB's non-sort markers removed, white space folded, and (`isbd`) the trailing ISBD
/// punctuation of a subfield stripped.
pub fn tidy(s: &str, isbd: bool) -> String {
    let nfc: String = s
        .nfc()
        .filter(|c| !matches!(c, '\u{98}' | '\u{9c}'))
        .collect();
    let mut t = nfc.split_whitespace().collect::<Vec<_>>().join(" ");
    if isbd {
        loop {
            let before = t.len();
            for end in [" /", " :", " ;", " =", ","] {
                if let Some(stripped) = t.strip_suffix(end) {
                    t = stripped.trim_end().to_string();
                }
            }
            // A final period, unless it ends an abbreviation or an initial (`Mass.`, `J.`).
            if t.ends_with('.') {
                let last = t.rsplit(' ').next().unwrap_or("");
                if last.chars().count() > 5 {
                    t.pop();
                }
            }
            if t.len() == before {
                break;
            }
        }
    }
    t
}

/// A name as `Family, Given` turned into display order: "Tolkien, J. R. R.," → "J. R. R.
/// Tolkien".
fn display_name(name: &str) -> String {
    let name = tidy(name, true);
    match name.split_once(", ") {
        Some((family, given)) if !given.is_empty() => format!("{given} {family}"),
        _ => name,
    }
}

fn marc21_authors(record: &MarcRecord) -> Vec<String> {
    unique(
        ["100", "700"]
            .into_iter()
            .flat_map(|tag| record.subfields(tag, "a"))
            .map(display_name),
    )
}

fn unimarc_authors(record: &MarcRecord) -> Vec<String> {
    let names = record
        .fields
        .iter()
        .filter(|f| f.tag == "700" || f.tag == "701")
        .filter_map(|f| {
            let part = |code: &str| {
                f.subfields
                    .iter()
                    .find(|(c, _)| c == code)
                    .map(|(_, v)| tidy(v, true))
            };
            match (part("a"), part("b")) {
                (Some(family), Some(given)) => Some(format!("{given} {family}")),
                (family, _) => family,
            }
        });
    unique(names)
}

/// The first subfield `code` of the first field `tag` with second indicator `ind2` (`""`:
/// any), in the order given.
fn imprint(record: &MarcRecord, wanted: &[(&str, &str, &str)], isbd: bool) -> Option<String> {
    wanted.iter().find_map(|(tag, ind2, code)| {
        record
            .fields
            .iter()
            .filter(|f| f.tag == *tag && (ind2.is_empty() || f.ind2 == *ind2))
            .flat_map(|f| f.subfields.iter().filter(|(c, _)| c == code))
            .map(|(_, v)| tidy(v, isbd))
            .find(|v| !v.is_empty())
    })
}

/// 082 `$a`, LoC's segment marks (`/`) dropped; a DNB 082 whose `$2` names its subject groups
/// (`...sdnb`: `830`, `B`) is not a DDC number and is passed over.
fn marc21_ddc(record: &MarcRecord) -> Option<String> {
    record
        .fields
        .iter()
        .filter(|f| f.tag == "082")
        .filter(|f| {
            !f.subfields
                .iter()
                .any(|(c, v)| c == "2" && v.trim().ends_with("sdnb"))
        })
        .flat_map(|f| f.subfields.iter().filter(|(c, _)| c == "a"))
        .map(|(_, v)| tidy(v, false).replace('/', ""))
        .find(|v| !v.is_empty())
}

/// 050 `$a` and `$b` of the first 050 with a class (`PN1995.9.A43 B53 2007`).
fn marc21_lcc(record: &MarcRecord) -> Option<String> {
    record
        .fields
        .iter()
        .filter(|f| f.tag == "050")
        .map(|f| {
            let part = |code: &str| {
                f.subfields
                    .iter()
                    .find(|(c, _)| c == code)
                    .map(|(_, v)| tidy(v, false))
                    .unwrap_or_default()
            };
            let (class, item) = (part("a"), part("b"));
            match (class.is_empty(), item.is_empty()) {
                (true, _) => String::new(),
                (false, true) => class,
                (false, false) => format!("{class} {item}"),
            }
        })
        .find(|v| !v.is_empty())
}

/// 010 `$a`, trimmed of its padding (`   89007588 `): a string, not a number.
fn marc21_lccn(record: &MarcRecord) -> Option<String> {
    record
        .subfields("010", "a")
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

fn subjects(record: &MarcRecord, tags: &[&str], isbd: bool) -> Vec<String> {
    unique(
        tags.iter()
            .flat_map(|tag| record.subfields(tag, "a"))
            .map(|v| tidy(v, isbd)),
    )
}

/// The non-empty values of `values`, each once, in their first order.
fn unique(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The page count of an extent: the largest number followed by `p.`, `S.`, `Seiten`, `pages`
/// (`xv, 383 p.`, `344 S.`, `1 Online-Ressource (344 Seiten)`); none for an extent without one.
fn page_count(extent: &str) -> Option<i64> {
    let words: Vec<&str> = extent
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|w| matches!(w[1], "p." | "p" | "S." | "S" | "Seiten" | "pages"))
        .filter_map(|w| w[0].parse::<i64>().ok())
        .max()
}

/// ISO 639-2/B to ISO 639-1 where there is a two-letter code (what Google and Open Library
/// give); other codes stay as they are.
fn two_letter(code: &str) -> String {
    let lower = code.to_ascii_lowercase();
    crate::domain::LANGUAGES
        .iter()
        .find(|(three, _)| *three == lower)
        .map_or(lower.clone(), |(_, two)| two.to_string())
}

/// The record as MARC-in-JSON: `{"leader": ..., "fields": [{"001": "..."}, {"245": {"ind1":
/// "1", "ind2": "0", "subfields": [{"a": "..."}]}}]}`, every text as the catalogue sent it.
pub fn marc_in_json(record: &MarcRecord) -> String {
    let mut fields: Vec<serde_json::Value> = record
        .controls
        .iter()
        .map(|(tag, value)| serde_json::json!({ tag: value }))
        .collect();
    for f in &record.fields {
        let subfields: Vec<serde_json::Value> = f
            .subfields
            .iter()
            .map(|(code, value)| serde_json::json!({ code: value }))
            .collect();
        fields.push(serde_json::json!({
            &f.tag: { "ind1": f.ind1, "ind2": f.ind2, "subfields": subfields }
        }));
    }
    let mut json = serde_json::json!({ "leader": record.leader, "fields": fields });
    if let Some(id) = &record.id {
        json["id"] = id.as_str().into();
    }
    if let Some(date) = &record.modified {
        json["last_modified"] = date.as_str().into();
    }
    json.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{self, DataField};
    use super::*;

    fn isbn(s: &str) -> Isbn13 {
        crate::isbn::parse(s).expect("valid")
    }

    #[test]
    fn dnb_text_is_nfc_without_its_non_sort_markers() {
        // `Geda\u{308}chtnis` as DNB sends it, and `&#152;Das&#156;` around the article.
        assert_eq!(
            tidy("\u{98}Das\u{9c} kulturelle Geda\u{308}chtnis", false),
            "Das kulturelle Gedächtnis"
        );
    }

    #[test]
    fn isbd_punctuation_goes_only_where_the_leader_says_it_is_there() {
        assert_eq!(tidy("A sample title :", true), "A sample title");
        assert_eq!(tidy("with a subtitle /", true), "with a subtitle");
        assert_eq!(
            tidy("Harvard University Press,", true),
            "Harvard University Press"
        );
        assert_eq!(tidy("Cambridge, Mass.", true), "Cambridge, Mass.");
        assert_eq!(tidy("A sample title :", false), "A sample title :");
    }

    #[test]
    fn names_in_display_order() {
        assert_eq!(display_name("Tolkien, J. R. R.,"), "J. R. R. Tolkien");
        assert_eq!(display_name("Assmann, Jan"), "Jan Assmann");
        assert_eq!(display_name("Homer"), "Homer");
    }

    #[test]
    fn extents_and_languages() {
        assert_eq!(page_count("xv, 383 p. ;"), Some(383));
        assert_eq!(page_count("344 S."), Some(344));
        assert_eq!(page_count("1 Online-Ressource (344 Seiten)"), Some(344));
        assert_eq!(page_count("1 vol. (290 p.)"), Some(290));
        assert_eq!(page_count("1 Online-Ressource"), None);
        assert_eq!(two_letter("ger"), "de");
        assert_eq!(two_letter("FRE"), "fr");
        assert_eq!(two_letter("gmh"), "gmh");
    }

    #[test]
    fn a_loc_record_becomes_a_book_and_its_raw_json_parses() {
        let answer = envelope::parse(include_bytes!(
            "../../../tests/fixtures/sru/loc-two-records.xml"
        ))
        .expect("parse");
        let record = &answer.records[0];
        let b = book(record, RecordFormat::Marc21, &isbn("9780674033801"));
        assert_eq!(b.title.as_deref(), Some("A sample title"));
        assert_eq!(b.subtitle.as_deref(), Some("with a subtitle & more"));
        assert_eq!(b.authors.as_deref(), Some(r#"["Example Harris"]"#));
        assert_eq!(b.language.as_deref(), Some("en"));
        assert_eq!(b.published_year, Some(2009));
        assert_eq!(b.volume_id.as_deref(), Some("15385397"));
        let raw: serde_json::Value = serde_json::from_str(&b.raw_json).expect("json");
        assert_eq!(raw["leader"], "01021cam a2200289 a 4500");
        assert_eq!(raw["fields"][0]["001"], "15385397");
    }

    #[test]
    fn a_unimarc_record_becomes_a_book() {
        let field = |tag: &str, ind2: &str, subfields: &[(&str, &str)]| DataField {
            tag: tag.into(),
            ind2: ind2.into(),
            subfields: subfields
                .iter()
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect(),
            ..DataField::default()
        };
        let record = MarcRecord {
            leader: "     cam  22        450 ".into(),
            controls: vec![("001".into(), "FRBNF12345678".into())],
            fields: vec![
                field("010", "", &[("a", "2-7073-0275-9")]),
                field("101", "", &[("a", "fre")]),
                field(
                    "200",
                    "",
                    &[
                        ("a", "Les e\u{301}crits"),
                        ("b", "Texte imprimé"),
                        ("e", "roman"),
                    ],
                ),
                field(
                    "214",
                    "0",
                    &[
                        ("a", "Paris"),
                        ("c", "Éditions de Minuit"),
                        ("d", "DL 1979"),
                    ],
                ),
                field("215", "", &[("a", "1 vol. (290 p.)")]),
                field("606", "", &[("a", "Roman")]),
                field("700", "", &[("a", "Duras"), ("b", "Marguerite")]),
            ],
            id: Some("ark:/12148/cb123".into()),
            modified: None,
        };
        let b = book(&record, RecordFormat::Unimarc, &isbn("2707302759"));
        assert_eq!(b.title.as_deref(), Some("Les écrits"));
        assert_eq!(b.subtitle.as_deref(), Some("roman"));
        assert_eq!(b.authors.as_deref(), Some(r#"["Marguerite Duras"]"#));
        assert_eq!(b.publisher.as_deref(), Some("Éditions de Minuit"));
        assert_eq!(b.published_year, Some(1979));
        assert_eq!(b.page_count, Some(290));
        assert_eq!(b.language.as_deref(), Some("fr"));
        assert_eq!(b.categories.as_deref(), Some(r#"["Roman"]"#));
        assert_eq!(b.isbn13, "9782707302755");
    }

    #[test]
    fn classifications_as_the_catalogues_write_them() {
        let field = DataField::of;
        let loc = MarcRecord {
            leader: "01021cam a2200289 a 4500".into(),
            fields: vec![
                field("010", &[("a", "   89007588 ")]),
                field("020", &[("a", "9780674033801")]),
                field("050", &[("a", "PN1995.9.A43"), ("b", "B53 2007")]),
                field("082", &[("a", "181/.06"), ("2", "22")]),
            ],
            ..MarcRecord::default()
        };
        let b = book(&loc, RecordFormat::Marc21, &isbn("9780674033801"));
        assert_eq!(b.lccn.as_deref(), Some("89007588"), "trimmed, a string");
        assert_eq!(b.lcc.as_deref(), Some("PN1995.9.A43 B53 2007"));
        assert_eq!(
            b.ddc.as_deref(),
            Some("181.06"),
            "LoC's segment mark dropped"
        );
        // DNB: an 082 naming its subject groups (`$2 23sdnb`) is not a DDC number.
        let dnb = MarcRecord {
            leader: "00000nam a2200000 c 4500".into(),
            fields: vec![
                field("082", &[("a", "830"), ("q", "DE-101"), ("2", "23sdnb")]),
                field("082", &[("a", "833.92"), ("2", "23/ger")]),
            ],
            ..MarcRecord::default()
        };
        let b = book(&dnb, RecordFormat::Marc21, &isbn("9783406568442"));
        assert_eq!(b.ddc.as_deref(), Some("833.92"));
        assert_eq!((b.lcc, b.lccn), (None, None));
        // UNIMARC: 676 is the DDC; its 010 is an ISBN, never an LCCN.
        let bnf = MarcRecord {
            leader: "     cam  22        450 ".into(),
            fields: vec![
                field("010", &[("a", "2-7073-0275-9")]),
                field("676", &[("a", "843.914"), ("v", "23")]),
            ],
            ..MarcRecord::default()
        };
        let b = book(&bnf, RecordFormat::Unimarc, &isbn("2707302759"));
        assert_eq!(b.ddc.as_deref(), Some("843.914"));
        assert_eq!(b.lccn, None);
    }

    #[test]
    fn the_other_editions_are_kept_whole_and_bnf_is_named_with_its_date() {
        let edition = |year: &str, modified: Option<&str>| MarcRecord {
            leader: "     nam  22        450 ".into(),
            controls: vec![("001".into(), format!("FRBNF{year}"))],
            fields: vec![DataField::of("010", &[("a", "2-7073-0275-9")])],
            id: None,
            modified: modified.map(str::to_string),
        };
        let records = [
            edition("1979", Some("20200101")),
            edition("2011", None),
            MarcRecord::default(),
        ];
        let b = chosen(
            &super::super::profile::BNF,
            &records,
            0,
            &isbn("2707302759"),
        );
        assert_eq!(
            b.attribution.as_deref(),
            Some("Source: Bibliothèque nationale de France, record of 2020-01-01")
        );
        let raw: serde_json::Value = serde_json::from_str(&b.raw_json).expect("json");
        assert_eq!(raw["last_modified"], "20200101");
        let others = raw["alternatives"].as_array().expect("alternatives");
        assert_eq!(
            others.len(),
            1,
            "the other edition, not the unrelated record"
        );
        assert_eq!(others[0]["fields"][0]["001"], "FRBNF2011");
        // A CC0 catalogue asks nothing.
        let dnb = chosen(
            &super::super::profile::DNB,
            &records[..1],
            0,
            &isbn("2707302759"),
        );
        assert_eq!(dnb.attribution, None);
    }
}
