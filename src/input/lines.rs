/*!
Physical lines of a text stream, ended by LF, CRLF or a CR alone (classic Mac OS, and some
exports still write it), in any mix, each kept up to a bound so one enormous line cannot take
the memory. Line numbers count every ending once, so they are the numbers an editor shows.
*/

use std::io::{self, BufRead};

use super::fill;

/// One line read: its number (from 1) and whether it was longer than the bound and cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub cut: bool,
}

pub struct Lines<R> {
    inner: R,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R) -> Lines<R> {
        Lines { inner, number: 0 }
    }

    /// Appends the next line, without its ending, to `buf`, keeping at most `max` bytes of it
    /// (the rest is read and dropped). `None` at the end of the stream.
    pub fn next_line(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<Line>> {
        let start = buf.len();
        let (mut any, mut cut) = (false, false);
        loop {
            let available = fill(&mut self.inner)?;
            if available.is_empty() {
                break;
            }
            any = true;
            let (content, ending) = match memchr::memchr2(b'\n', b'\r', available) {
                Some(i) => (i, Some(available[i])),
                None => (available.len(), None),
            };
            let room = max.saturating_sub(buf.len() - start);
            let keep = content.min(room);
            cut |= keep < content;
            buf.extend_from_slice(&available[..keep]);
            match ending {
                None => self.inner.consume(content),
                Some(b'\r') => {
                    self.inner.consume(content + 1);
                    // A CR alone ends a line too; CRLF is one ending.
                    if fill(&mut self.inner)?.first() == Some(&b'\n') {
                        self.inner.consume(1);
                    }
                    break;
                }
                Some(_) => {
                    self.inner.consume(content + 1);
                    break;
                }
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        Ok(Some(Line {
            number: self.number,
            cut,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(input: &[u8], max: usize, capacity: usize) -> Vec<(u64, bool, String)> {
        let mut lines = Lines::new(io::BufReader::with_capacity(capacity, input));
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(l) = lines.next_line(&mut buf, max).expect("reads") {
            out.push((l.number, l.cut, String::from_utf8_lossy(&buf).into_owned()));
            buf.clear();
        }
        out
    }

    #[test]
    fn every_ending_and_their_mix() {
        let want = |v: &[&str]| -> Vec<(u64, bool, String)> {
            v.iter()
                .enumerate()
                .map(|(i, s)| (i as u64 + 1, false, s.to_string()))
                .collect()
        };
        assert_eq!(all(b"a\nb\nc", 100, 64), want(&["a", "b", "c"]));
        assert_eq!(all(b"a\r\nb\r\n", 100, 64), want(&["a", "b"]));
        assert_eq!(all(b"a\rb\rc\r", 100, 64), want(&["a", "b", "c"]));
        assert_eq!(
            all(b"a\r\rb\n\nc\r\n", 100, 64),
            want(&["a", "", "b", "", "c"])
        );
        // A CRLF split across two reads of the buffer is still one ending.
        assert_eq!(all(b"abc\r\nd", 100, 4), want(&["abc", "d"]));
        assert_eq!(all(b"", 100, 64), want(&[]));
    }

    #[test]
    fn long_lines_are_cut_at_the_bound_and_the_next_line_is_whole() {
        let got = all(b"0123456789\rab\n", 4, 3);
        assert_eq!(
            got,
            [(1, true, "0123".to_string()), (2, false, "ab".to_string())]
        );
        assert_eq!(all(b"0123\n", 4, 3), [(1, false, "0123".to_string())]);
    }

    proptest! {
        #[test]
        fn lines_are_the_text_split_at_any_ending(
            // Not empty: a CR ending and an empty line with an LF ending read as one CRLF.
            parts in proptest::collection::vec("[a-z]{1,5}", 1..20),
            endings in proptest::collection::vec(0usize..3, 20),
            capacity in 1usize..16,
        ) {
            let mut text = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                text.extend_from_slice(p.as_bytes());
                text.extend_from_slice([&b"\n"[..], b"\r\n", b"\r"][endings[i]]);
            }
            let got: Vec<String> = all(&text, 100, capacity).into_iter().map(|(_, _, s)| s).collect();
            prop_assert_eq!(got, parts);
        }
    }
}
