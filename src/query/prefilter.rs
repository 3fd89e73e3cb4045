//! Byte prefilters for full scans: strings that must appear in the encoded record of every
//! user a filter matches, so a scan skips the other records without decoding them.
//!
//! Record strings are stored as their UTF-8 bytes. For a case-exact `eq`/`co`/`sw`/`ew` on a
//! stored string, the literal's bytes must appear in the record. For a caseless one (RFC 7643
//! `caseExact=false`, compared on [`caseless_key`]s), a record can match in two ways only:
//!
//! - its bytes contain, ASCII case aside, the longest ASCII run of the literal's key;
//! - or it holds a non-ASCII character whose caseless expansion has ASCII in it (`ß` → `ss`,
//!   `K` (Kelvin) → `k`, `İ` → `i̇`, fullwidth `ｓ` → `s`, `ﬁ` → `fi`, …: [`FOLDS_TO_ASCII`]).
//!
//! Why this is exact: the caseless key is computed character by character (decomposition and
//! full case folding map each character on its own; canonical reordering only moves
//! non-starters, which ASCII characters are not; composition turns an ASCII letter and the
//! marks after it into a non-ASCII letter, never the reverse). So when no character of a
//! string folds to ASCII, the ASCII characters of its key are its own ASCII characters
//! lowercased, and a run of them that is contiguous in the key is contiguous in the string.
//! `eq`, `sw` and `ew` imply `co`, so the same test serves them. A test checks the table
//! against [`caseless_key`] for every code point.

use memchr::memmem::Finder;

use super::parse::{Attr, CompareOp, Filter, Value};
use crate::identity::caseless_key;
use crate::model::{self, Kind};

/// What the records a filter matches must contain.
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    /// Byte strings present as they are.
    exact: Vec<Finder<'static>>,
    /// ASCII strings (lowercase) present ASCII-caselessly, unless the record holds a
    /// character of [`FOLDS_TO_ASCII`].
    caseless: Vec<Vec<u8>>,
}

impl Prefilter {
    /// The prefilter of a filter's residual (none: every record passes).
    pub(crate) fn of(f: Option<&Filter>) -> Prefilter {
        let mut p = Prefilter::default();
        if let Some(f) = f {
            p.collect(f);
        }
        p
    }

    fn collect(&mut self, f: &Filter) {
        match f {
            Filter::And(a, b) => {
                self.collect(a);
                self.collect(b);
            }
            Filter::Compare {
                attr,
                op: CompareOp::Eq | CompareOp::Co | CompareOp::Sw | CompareOp::Ew,
                value: Value::String(s),
            } if !s.is_empty() => match stored_text(attr) {
                Some(true) => self.exact.push(Finder::new(s.as_bytes()).into_owned()),
                Some(false) => {
                    if let Some(run) = longest_ascii_run(&caseless_key(s)) {
                        self.caseless.push(run.as_bytes().to_vec());
                    }
                }
                None => {}
            },
            _ => {}
        }
    }

    /// Whether nothing is required (every record passes).
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.caseless.is_empty()
    }

    /// Whether a record with these bytes may match (false: it cannot).
    pub(crate) fn may_match(&self, bytes: &[u8]) -> bool {
        if self.exact.iter().any(|n| n.find(bytes).is_none()) {
            return false;
        }
        let mut folds = None;
        self.caseless.iter().all(|n| {
            contains_ascii_caseless(bytes, n)
                || *folds.get_or_insert_with(|| has_folding_char(bytes))
        })
    }
}

/// Whether `hay` contains `needle` (lowercase ASCII), ASCII case aside: each occurrence of
/// its first byte in either case is checked.
fn contains_ascii_caseless(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let upper = first.to_ascii_uppercase();
    let mut from = 0;
    while let Some(tail) = hay.get(from..) {
        let found = if upper == first {
            memchr::memchr(first, tail)
        } else {
            memchr::memchr2(first, upper, tail)
        };
        let Some(p) = found else {
            return false;
        };
        let at = from + p + 1;
        if hay
            .get(at..at + rest.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
        {
            return true;
        }
        from = at;
    }
    false
}

/// Whether `attr` is stored as strings in the record (`Some(case_exact)`), so that a match
/// holds its bytes (case-exactly or not); `None` for the id (the record's key) and
/// non-string attributes.
fn stored_text(attr: &Attr) -> Option<bool> {
    match attr {
        Attr::Field(f) => model::attr(f.index())
            .filter(|a| matches!(a.kind, Kind::Text | Kind::Strings))
            .map(|a| a.case_exact),
        Attr::Multi(m, _) => model::attr(m.index()).map(|a| a.case_exact),
        Attr::Data(_) => Some(true),
        Attr::Id | Attr::Element(_) => None,
    }
}

/// The longest run of ASCII characters of `s` (the first of equal ones), if any.
fn longest_ascii_run(s: &str) -> Option<&str> {
    s.split(|c: char| !c.is_ascii())
        .fold(None, |best: Option<&str>, run| match best {
            Some(b) if b.len() >= run.len() => Some(b),
            _ if run.is_empty() => best,
            _ => Some(run),
        })
}

/// Whether the UTF-8 bytes of a character of [`FOLDS_TO_ASCII`] appear in `bytes` (which
/// may hold other, binary data: only well-formed sequences count). Eight bytes at a time,
/// only the bytes that can start a sequence of two or more (`11xxxxxx`) are looked at.
fn has_folding_char(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = bytes
        .get(i..i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        let w = u64::from_le_bytes(chunk);
        // Bit 7 of each byte whose bits 7 and 6 are set.
        let mut leads = w & (w << 1) & HIGH;
        while leads != 0 {
            let k = (leads.trailing_zeros() / 8) as usize;
            if FOLDING_LEADS[usize::from(chunk[k & 7])]
                && char_at(bytes, i + k).is_some_and(folds_to_ascii)
            {
                return true;
            }
            leads &= leads - 1;
        }
        i += 8;
    }
    (i..bytes.len()).any(|k| char_at(bytes, k).is_some_and(folds_to_ascii))
}

/// The code point of the well-formed UTF-8 sequence of two to four bytes at `i`, if any.
fn char_at(b: &[u8], i: usize) -> Option<u32> {
    let lead = u32::from(*b.get(i)?);
    let (len, init) = match lead {
        0xC2..=0xDF => (2, lead & 0x1F),
        0xE0..=0xEF => (3, lead & 0x0F),
        0xF0..=0xF4 => (4, lead & 0x07),
        _ => return None,
    };
    let mut cp = init;
    for k in 1..len {
        let c = u32::from(*b.get(i + k)?);
        if c & 0xC0 != 0x80 {
            return None;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    Some(cp)
}

/// The first bytes of the UTF-8 sequences of [`FOLDS_TO_ASCII`] (a superset: every lead
/// byte between those of a range's ends).
const FOLDING_LEADS: [bool; 256] = {
    const fn lead(cp: u32) -> usize {
        (if cp < 0x800 {
            0xC0 | (cp >> 6)
        } else if cp < 0x1_0000 {
            0xE0 | (cp >> 12)
        } else {
            0xF0 | (cp >> 18)
        }) as usize
    }
    let mut t = [false; 256];
    let mut r = 0;
    while r < FOLDS_TO_ASCII.len() {
        let (lo, hi) = FOLDS_TO_ASCII[r];
        let mut b = lead(lo);
        while b <= lead(hi) {
            t[b] = true;
            b += 1;
        }
        r += 1;
    }
    t
};

/// Whether the code point is in [`FOLDS_TO_ASCII`].
fn folds_to_ascii(cp: u32) -> bool {
    if cp < 0xA0 {
        return false;
    }
    let i = FOLDS_TO_ASCII.partition_point(|&(_, hi)| hi < cp);
    FOLDS_TO_ASCII.get(i).is_some_and(|&(lo, _)| lo <= cp)
}

/// The non-ASCII code points whose [`caseless_key`] contains an ASCII character, as sorted
/// inclusive ranges (for the Unicode version of [`UNICODE_VERSION`]; a test recomputes it for
/// every code point).
///
/// [`UNICODE_VERSION`]: crate::identity::UNICODE_VERSION
#[rustfmt::skip]
const FOLDS_TO_ASCII: &[(u32, u32)] = &[
    (0x00A0, 0x00A0), (0x00A8, 0x00A8), (0x00AA, 0x00AA), (0x00AF, 0x00AF), (0x00B2, 0x00B4),
    (0x00B8, 0x00BA), (0x00BC, 0x00BE), (0x00DF, 0x00DF), (0x0130, 0x0130), (0x0132, 0x0133),
    (0x013F, 0x0140), (0x0149, 0x0149), (0x017F, 0x017F), (0x01C4, 0x01CC), (0x01F1, 0x01F3),
    (0x02B0, 0x02B0), (0x02B2, 0x02B3), (0x02B7, 0x02B8), (0x02D8, 0x02DD), (0x02E1, 0x02E3),
    (0x037A, 0x037A), (0x037E, 0x037E), (0x0384, 0x0385), (0x1D2C, 0x1D2C), (0x1D2E, 0x1D2E),
    (0x1D30, 0x1D31), (0x1D33, 0x1D3A), (0x1D3C, 0x1D3C), (0x1D3E, 0x1D43), (0x1D47, 0x1D49),
    (0x1D4D, 0x1D4D), (0x1D4F, 0x1D50), (0x1D52, 0x1D52), (0x1D56, 0x1D58), (0x1D5B, 0x1D5B),
    (0x1D62, 0x1D65), (0x1D9C, 0x1D9C), (0x1DA0, 0x1DA0), (0x1DBB, 0x1DBB), (0x1E9A, 0x1E9A),
    (0x1E9E, 0x1E9E), (0x1FBD, 0x1FBD), (0x1FBF, 0x1FC1), (0x1FCD, 0x1FCF), (0x1FDD, 0x1FDF),
    (0x1FED, 0x1FEF), (0x1FFD, 0x1FFE), (0x2000, 0x200A), (0x2017, 0x2017), (0x2024, 0x2026),
    (0x202F, 0x202F), (0x203C, 0x203C), (0x203E, 0x203E), (0x2047, 0x2049), (0x205F, 0x205F),
    (0x2070, 0x2071), (0x2074, 0x207A), (0x207C, 0x208A), (0x208C, 0x208E), (0x2090, 0x2093),
    (0x2095, 0x209F), (0x20A8, 0x20A8), (0x2100, 0x2103), (0x2105, 0x2106), (0x2109, 0x210E),
    (0x2110, 0x2113), (0x2115, 0x2116), (0x2119, 0x211D), (0x2120, 0x2122), (0x2124, 0x2124),
    (0x2128, 0x2128), (0x212A, 0x212A), (0x212C, 0x212D), (0x212F, 0x2131), (0x2133, 0x2134),
    (0x2139, 0x2139), (0x213B, 0x213B), (0x2145, 0x2149), (0x2150, 0x217F), (0x2189, 0x2189),
    (0x2460, 0x24EA), (0x2A74, 0x2A76), (0x2C7C, 0x2C7D), (0x3000, 0x3000), (0x309B, 0x309C),
    (0x3200, 0x321E), (0x3220, 0x3243), (0x3250, 0x325F), (0x32B1, 0x32CF), (0x3358, 0x337A),
    (0x3380, 0x33FF), (0xA7F1, 0xA7F4), (0xFB00, 0xFB06), (0xFB29, 0xFB29), (0xFC5E, 0xFC63),
    (0xFDFA, 0xFDFB), (0xFE10, 0xFE10), (0xFE13, 0xFE16), (0xFE19, 0xFE19), (0xFE30, 0xFE30),
    (0xFE33, 0xFE38), (0xFE47, 0xFE50), (0xFE52, 0xFE52), (0xFE54, 0xFE57), (0xFE59, 0xFE5C),
    (0xFE5F, 0xFE66), (0xFE68, 0xFE6B), (0xFE70, 0xFE70), (0xFE72, 0xFE72), (0xFE74, 0xFE74),
    (0xFE76, 0xFE76), (0xFE78, 0xFE78), (0xFE7A, 0xFE7A), (0xFE7C, 0xFE7C), (0xFE7E, 0xFE7E),
    (0xFF01, 0xFF5E), (0xFFE3, 0xFFE3), (0x107A5, 0x107A5), (0x1CCD6, 0x1CCF9), (0x1D400, 0x1D454),
    (0x1D456, 0x1D49C), (0x1D49E, 0x1D49F), (0x1D4A2, 0x1D4A2), (0x1D4A5, 0x1D4A6),
    (0x1D4A9, 0x1D4AC), (0x1D4AE, 0x1D4B9), (0x1D4BB, 0x1D4BB), (0x1D4BD, 0x1D4C3),
    (0x1D4C5, 0x1D505), (0x1D507, 0x1D50A), (0x1D50D, 0x1D514), (0x1D516, 0x1D51C),
    (0x1D51E, 0x1D539), (0x1D53B, 0x1D53E), (0x1D540, 0x1D544), (0x1D546, 0x1D546),
    (0x1D54A, 0x1D550), (0x1D552, 0x1D6A3), (0x1D6A6, 0x1D6A6), (0x1D7CE, 0x1D7FF),
    (0x1DF95, 0x1DF95), (0x1F100, 0x1F10A), (0x1F110, 0x1F12E), (0x1F130, 0x1F14F),
    (0x1F16A, 0x1F16C), (0x1F190, 0x1F190), (0x1FBF0, 0x1FBF9),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is exactly the non-ASCII code points whose caseless key has ASCII in it.
    #[test]
    fn the_table_is_what_caseless_keys_say() {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for cp in 0x80u32..=0x10_FFFF {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if !caseless_key(c.encode_utf8(&mut [0; 4]))
                .bytes()
                .any(|b| b.is_ascii())
            {
                continue;
            }
            match ranges.last_mut() {
                Some(r) if r.1 + 1 == cp => r.1 = cp,
                _ => ranges.push((cp, cp)),
            }
        }
        assert_eq!(ranges, FOLDS_TO_ASCII);
    }

    #[test]
    fn scanning_finds_folding_characters_among_binary_bytes() {
        for c in ['ß', 'İ', '\u{212A}', 'ｓ', 'ﬁ', '𝐬', '\u{00A0}'] {
            let mut b = vec![0xFD, 0xC3, 0x28, 0xFF, b'x'];
            b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            b.extend_from_slice(&[0x80, 0xE2]);
            assert!(has_folding_char(&b), "{c:?}");
        }
        for s in ["Müller", "Ødegård", "日本", "plain ascii text", "é"] {
            let mut b = vec![0xFD, 0xC3, 0x28, 0xFF, 0xF0, 0x9D];
            b.extend_from_slice(s.as_bytes());
            assert!(!has_folding_char(&b), "{s:?}");
        }
    }

    #[test]
    fn ascii_caseless_search() {
        for (hay, needle, want) in [
            (&b"xxSoN"[..], &b"son"[..], true),
            (b"sssSON\xff", b"son", true),
            (b"sosoSo", b"son", false),
            (b"so", b"son", false),
            (b"\x00JOHNSON\x01", b"johnson", true),
            (b"a-b", b"-b", true),
            (b"", b"x", false),
        ] {
            assert_eq!(contains_ascii_caseless(hay, needle), want, "{hay:?}");
        }
    }

    #[test]
    fn ascii_runs() {
        assert_eq!(longest_ascii_run("son"), Some("son"));
        assert_eq!(longest_ascii_run("mü ller"), Some(" ller"));
        assert_eq!(longest_ascii_run("日本"), None);
        assert_eq!(longest_ascii_run(""), None);
    }

    #[test]
    fn caseless_prefilter_keeps_every_possible_match() {
        let f: Filter = r#"name.familyName co "SON""#
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let p = Prefilter::of(Some(&f));
        assert!(!p.is_empty());
        assert!(p.may_match(b"\x03xx JohnSon yy"));
        assert!(p.may_match("Strauß".as_bytes()), "ß folds to ss");
        assert!(p.may_match("ｓｏｎ".as_bytes()));
        assert!(!p.may_match(b"\x03Smith\xFD\x01\x02"));
        assert!(!p.may_match("Müller".as_bytes()));
    }
}
