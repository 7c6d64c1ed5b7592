/*!
The merge of providers' records into `books`, generated for either dialect from one
description: each field from the first provider (in precedence order) that has it, with
`provenance` saying which one gave it.
*/

use crate::domain::ProviderId;

/// The SQL dialect a statement is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// The fields merged from providers' records into `books`, each from the first provider (in
/// precedence order) that has it. `published_year` follows `published_date`.
pub(super) const MERGED: [&str; 16] = [
    "title",
    "subtitle",
    "authors",
    "publisher",
    "published_date",
    "description",
    "page_count",
    "categories",
    "language",
    "average_rating",
    "ratings_count",
    "thumbnail",
    "ddc",
    "lcc",
    "lccn",
    "attribution",
];

/// Upserts into `books` the merged rows of the ISBNs in its one parameter (SQLite: a JSON
/// array, an anonymous `?` so the text can join others; PostgreSQL: a text array, `$1`), with
/// `precedence` deciding each field and `provenance` (compact JSON, the same text from both
/// backends) saying which provider gave it.
pub(super) fn merge_sql(precedence: &[ProviderId], dialect: Dialect) -> String {
    // Every provider takes part, those not named last: a record stored by another run counts.
    let precedence = &crate::providers::registry::precedence(precedence);
    let (columns, values) = merged_columns(precedence, dialect);
    let joins: Vec<String> = precedence
        .iter()
        .map(|p| {
            format!(
                "LEFT JOIN provider_books {a} ON {a}.isbn13 = j.isbn13 AND {a}.provider = '{}'",
                p.as_str(),
                a = alias(*p)
            )
        })
        .collect();
    let any: Vec<String> = precedence
        .iter()
        .map(|p| format!("{}.isbn13 IS NOT NULL", alias(*p)))
        .collect();
    // PostgreSQL walks the array (`unnest`) into the jobs' unique index: a plan that is good
    // for 1 ISBN and for 2,048, where `isbn13 = ANY($1)` got a generic plan that scanned.
    let (verb, from, which, upsert) = match dialect {
        Dialect::Sqlite => (
            "INSERT OR REPLACE",
            "jobs j",
            "j.isbn13 IN (SELECT value FROM json_each(?)) AND",
            String::new(),
        ),
        Dialect::Postgres => {
            let set: Vec<String> = columns
                .iter()
                .skip(1)
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            (
                "INSERT",
                "unnest($1::text[]) AS x(isbn13) JOIN jobs j ON j.isbn13 = x.isbn13",
                "",
                format!(" ON CONFLICT (isbn13) DO UPDATE SET {}", set.join(", ")),
            )
        }
    };
    format!(
        "{verb} INTO books ({}) SELECT {} FROM {from} {} WHERE {which} ({}){upsert}",
        columns.join(", "),
        values.join(", "),
        joins.join(" "),
        any.join(" OR ")
    )
}

/// The alias of a provider's joined record.
fn alias(p: ProviderId) -> String {
    format!("p_{}", p.as_str())
}

/// `CASE WHEN p_a.field IS NOT NULL THEN <value of p_a> ... END`, in precedence order.
fn first_of(precedence: &[ProviderId], field: &str, value: &dyn Fn(&str) -> String) -> String {
    let arms: Vec<String> = precedence
        .iter()
        .map(|p| {
            format!(
                "WHEN {a}.{field} IS NOT NULL THEN {}",
                value(&alias(*p)),
                a = alias(*p)
            )
        })
        .collect();
    format!("CASE {} END", arms.join(" "))
}

/// The `books` columns the merge writes, and the expression of each.
fn merged_columns(precedence: &[ProviderId], dialect: Dialect) -> (Vec<String>, Vec<String>) {
    let mut columns = vec!["isbn13".to_string(), "isbn10".into()];
    let mut values = vec!["j.isbn13".to_string(), "j.isbn10".into()];
    // Each provider's record id in the column its spec names.
    for spec in crate::providers::registry::ALL {
        if let Some(column) = spec.record_column {
            columns.push(column.into());
            values.push(format!("{}.record_id", alias(spec.id)));
        }
    }
    let mut provenance = Vec::new();
    for field in MERGED {
        columns.push(field.into());
        values.push(first_of(precedence, field, &|a| format!("{a}.{field}")));
        // `'"title":"<provider>"'`, or NULL when no provider has the field.
        provenance.push(first_of(precedence, field, &|a| {
            format!("'\"{field}\":\"{}\"'", &a[2..])
        }));
    }
    columns.push("published_year".into());
    values.push(first_of(precedence, "published_date", &|a| {
        format!("{a}.published_year")
    }));
    columns.push("raw_json".into());
    values.push(first_of(precedence, "raw_json", &|a| {
        format!("{a}.raw_json")
    }));
    columns.push("provenance".into());
    // `{"title":"google",...}` in field order, fields no provider has left out (concat_ws
    // skips NULLs). Plain text: SQLite's json_patch(json_object(...)) cost about as much as
    // the rest of the merge.
    values.push(format!(
        "'{{' || concat_ws(',', {}) || '}}'",
        provenance.join(", ")
    ));
    columns.push("fetched_at".into());
    let fetched: Vec<String> = precedence
        .iter()
        .map(|p| format!("coalesce({}.fetched_at, 0)", alias(*p)))
        .collect();
    values.push(match dialect {
        Dialect::Sqlite => format!("max({}, 0)", fetched.join(", ")),
        Dialect::Postgres => format!("greatest({}, 0)", fetched.join(", ")),
    });
    columns.push("run_id".into());
    let runs: Vec<String> = precedence
        .iter()
        .map(|p| format!("{}.run_id", alias(*p)))
        .collect();
    values.push(format!("coalesce({})", runs.join(", ")));
    (columns, values)
}
