/*!
What the XML readers (MARCXML input, SRU answers) share: the one way a reference in text is
resolved. Only XML's five predefined entities and character references are; anything else
would need a DTD, which neither reader accepts.
*/

use quick_xml::events::BytesRef;

/// The character `r` stands for, or `None` for an entity only a DTD could declare.
pub fn resolve(r: &BytesRef) -> Option<char> {
    match &**r {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => r.resolve_char_ref().ok().flatten(),
    }
}
