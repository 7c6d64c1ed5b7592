/*!
Text encodings: what the bytes of a list are, and a reader that turns them into UTF-8.

People's lists come as UTF-8 (with or without a BOM), as Excel's "Unicode Text" (UTF-16LE with
a BOM), and from older Windows programs as windows-1252. UTF-8 is passed through untouched (the
fast path); everything else is transcoded by `encoding_rs`. ISBNs are ASCII in every one of
these, so a wrong guess between 8-bit encodings can only garble the other fields, which are
kept for the report and never parsed as ISBNs.
*/

use std::io::Read;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// How a source's bytes are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding {
    pub encoding: &'static Encoding,
    /// Bytes of byte-order mark at the start, skipped.
    pub bom: usize,
}

impl TextEncoding {
    /// The name shown in the load report (`UTF-8`, `UTF-16LE`, `windows-1252`).
    pub fn name(&self) -> &'static str {
        self.encoding.name()
    }

    /// `head` (the first bytes of the source) followed by `rest`, as UTF-8.
    pub fn reader<'a>(&self, head: Vec<u8>, rest: impl Read + 'a) -> Box<dyn Read + 'a> {
        let mut head = std::io::Cursor::new(head);
        head.set_position(self.bom as u64);
        let raw = head.chain(rest);
        if self.encoding == UTF_8 {
            return Box::new(raw);
        }
        Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(self.encoding))
                .bom_sniffing(false)
                .build(raw),
        )
    }
}

/// Looks up an encoding by any of its WHATWG labels (`--encoding latin1`, `utf-16le`, ...).
pub fn by_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// The encoding of a source from its first bytes: a BOM; else UTF-16 without one (every other
/// byte zero); else UTF-8 if the bytes are valid UTF-8; else windows-1252.
pub fn detect(head: &[u8]) -> TextEncoding {
    let with_bom = |encoding, bom| TextEncoding { encoding, bom };
    if head.starts_with(b"\xEF\xBB\xBF") {
        return with_bom(UTF_8, 3);
    }
    if head.starts_with(b"\xFF\xFE") {
        return with_bom(UTF_16LE, 2);
    }
    if head.starts_with(b"\xFE\xFF") {
        return with_bom(UTF_16BE, 2);
    }
    if let Some(encoding) = bomless_utf16(head) {
        return with_bom(encoding, 0);
    }
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut mid-character at the end of the sample: still UTF-8.
        Err(e) => e.error_len().is_none(),
    };
    with_bom(if valid { UTF_8 } else { WINDOWS_1252 }, 0)
}

/// ASCII text in UTF-16 has a zero in every other byte; nothing else does.
fn bomless_utf16(head: &[u8]) -> Option<&'static Encoding> {
    let sample = &head[..head.len().min(4096) & !1];
    let pairs = sample.len() / 2;
    if pairs < 4 {
        return None;
    }
    let zeros_at = |offset: usize| {
        sample
            .iter()
            .skip(offset)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let (even, odd) = (zeros_at(0), zeros_at(1));
    if odd * 10 >= pairs * 7 && even * 20 <= pairs {
        Some(UTF_16LE)
    } else if even * 10 >= pairs * 7 && odd * 20 <= pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(if le { b"\xFF\xFE" } else { b"\xFE\xFF" });
        }
        for u in s.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    fn decode(bytes: &[u8]) -> (String, &'static str) {
        let enc = detect(bytes);
        let mut out = String::new();
        enc.reader(bytes.to_vec(), std::io::empty())
            .read_to_string(&mut out)
            .expect("decodes");
        (out, enc.name())
    }

    #[test]
    fn each_encoding_people_save_in() {
        let text = "Titel;ISBN\nCaf\u{e9} \u{2013} Z\u{fc}rich;9780306406157\n";
        assert_eq!(decode(text.as_bytes()), (text.into(), "UTF-8"));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom), (text.into(), "UTF-8"));
        for (le, bom) in [(true, true), (false, true), (true, false), (false, false)] {
            let name = if le { "UTF-16LE" } else { "UTF-16BE" };
            assert_eq!(decode(&utf16(text, le, bom)), (text.into(), name));
        }
        let (cp1252, _, _) = WINDOWS_1252.encode(text);
        assert_eq!(decode(&cp1252), (text.into(), "windows-1252"));
    }

    #[test]
    fn a_sample_cut_mid_character_is_still_utf8() {
        let bytes = "ab\u{e9}".as_bytes();
        assert_eq!(detect(&bytes[..bytes.len() - 1]).encoding, UTF_8);
        assert_eq!(by_label("latin1"), Some(WINDOWS_1252));
        assert_eq!(by_label("nope"), None);
    }
}
