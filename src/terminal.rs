/*!
Text from outside (titles, descriptions, raw input lines, file and header names, an error
page's title) made safe for a terminal before a person's screen sees it.

A title holding `ESC [2J` would clear the screen, one holding OSC 52 would write the
clipboard, and a newline in a file name would forge a line of the load report. Every control
character (C0, DEL, C1, ESC) and the bidirectional overrides that reorder what is shown
(Trojan Source) are written as `\u{..}` escapes, so the text stays readable and nothing in it
acts. JSON and the export formats keep the text as received: only what people read goes
through here.
*/

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character escaped, newlines and tabs included (one-line output:
/// a table cell, a file name, a message).
pub fn safe(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` with every control character escaped but newline and tab (a description shown as a
/// paragraph).
pub fn safe_multiline(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn acts(c: char, multiline: bool) -> bool {
    match c {
        '\n' | '\t' => !multiline,
        // C0, DEL and C1.
        c if c.is_control() => true,
        // Bidirectional embeddings, overrides and isolates.
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

fn escape(text: &str, multiline: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| acts(c, multiline)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts(c, multiline) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(safe("Dune"), "Dune");
        assert!(matches!(safe("Dune"), Cow::Borrowed(_)));
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            safe("\u{1b}]52;c;aGk=\u{7}"),
            "\\u{1b}]52;c;aGk=\\u{7}",
            "OSC 52 writes the clipboard"
        );
        assert_eq!(safe("x\u{9b}31m"), "x\\u{9b}31m", "C1 CSI");
        assert_eq!(safe("a\u{7f}"), "a\\u{7f}");
        assert_eq!(safe("l1\nl2\tx\r"), "l1\\u{a}l2\\u{9}x\\u{d}");
        assert_eq!(safe("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(safe("Cien años, 百年"), "Cien años, 百年");
    }

    #[test]
    fn multiline_text_keeps_its_lines() {
        assert_eq!(
            safe_multiline("l1\n\tl2\r\u{1b}c"),
            "l1\n\tl2\\u{d}\\u{1b}c"
        );
    }
}
