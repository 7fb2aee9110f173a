//! UCI configuration files (`/etc/config/*`), read exactly as libuci reads
//! them, so that meshpost, `uci show` and LuCI agree on every file.
//!
//! `scan` and `tree` follow libuci's own reader (openwrt/uci `file.c`,
//! `list.c`) in strict mode, the mode of `uci`, rpcd and LuCI: comments
//! after values, `;` between commands, the short keywords `c`/`o`/`l`,
//! multi-line quotes, backslash continuation, merged named sections,
//! `option x ''` keeping the earlier value, and option/list mixing all
//! behave as on a router. A differential test and a fuzz target run the
//! real libuci on the same bytes (tests/uci_libuci.rs, fuzz `uci_libuci`).
//!
//! Two deliberate differences, both refusals of files libuci would read
//! in a way nobody intends: a NUL byte (libuci silently drops the rest of
//! its line and joins the next, depending on its buffer size), and values
//! that are not UTF-8 (meshpost's settings are text). Both are reported
//! with the line. This module does not interpret options (`config` does).

mod scan;
mod tree;

use std::fmt;

pub use scan::ScanError;
pub use tree::{RawError, RawOption, RawSection, RawValue, dump, parse_raw};

/// One value of an option: a plain `option` has one, a `list` one per item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub value: String,
    pub is_list: bool,
    pub line: usize,
}

/// One `config` section, after libuci's merging of same-named blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    /// `None` for an unnamed section.
    pub name: Option<String>,
    pub line: usize,
    /// Each plain option once; a list as one entry per item, in order.
    pub options: Vec<UciOption>,
}

impl Section {
    /// The value of a plain option, with its line.
    pub fn get(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name && !o.is_list)
    }
}

/// Why a file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UciErrorKind {
    /// What libuci refuses too.
    Syntax(ScanError),
    /// A NUL byte in the file.
    NulByte,
    /// A value, or the name of an option or section, that is not UTF-8.
    NotUtf8,
}

/// A refused file: what, and at which line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UciError {
    pub line: usize,
    pub kind: UciErrorKind,
}

impl UciError {
    pub fn reason(&self) -> String {
        match self.kind {
            UciErrorKind::Syntax(e) => format!("{} (uci: {})", e.explain(), e.libuci_reason()),
            UciErrorKind::NulByte => "a NUL byte: the file is not text".into(),
            UciErrorKind::NotUtf8 => "a value that is not UTF-8 text".into(),
        }
    }
}

impl fmt::Display for UciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason())
    }
}

fn text(bytes: &[u8], line: usize) -> Result<String, UciError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| UciError { line, kind: UciErrorKind::NotUtf8 })
}

/// Parses a whole UCI file into its sections.
pub fn parse(input: &[u8]) -> Result<Vec<Section>, UciError> {
    if let Some(at) = input.iter().position(|&c| c == 0) {
        let line = 1 + input[..at].iter().filter(|&&c| c == b'\n').count();
        return Err(UciError { line, kind: UciErrorKind::NulByte });
    }
    let raw = parse_raw(input).map_err(|e| UciError { line: e.line, kind: UciErrorKind::Syntax(e.kind) })?;
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        let mut options = Vec::new();
        for o in s.options {
            let name = text(&o.name, o.line)?;
            match o.value {
                RawValue::Single(v) => {
                    options.push(UciOption { name, value: text(&v, o.line)?, is_list: false, line: o.line })
                }
                RawValue::List(items) => {
                    for v in items {
                        options.push(UciOption {
                            name: name.clone(),
                            value: text(&v, o.line)?,
                            is_list: true,
                            line: o.line,
                        });
                    }
                }
            }
        }
        out.push(Section {
            kind: text(&s.kind, s.line)?,
            name: if s.anonymous { None } else { Some(text(&s.name, s.line)?) },
            line: s.line,
            options,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<Section>, UciError> {
        parse(s.as_bytes())
    }

    fn values<'a>(s: &'a Section, name: &str) -> Vec<&'a str> {
        s.options.iter().filter(|o| o.name == name).map(|o| o.value.as_str()).collect()
    }

    #[test]
    fn parses_what_libuci_writes() {
        let text = "package meshpost\n\nconfig meshpost 'main'\n\toption port '4849'\n\toption name 'it'\\''s \"here\"'\n\tlist interface 'mesh0'\n\tlist interface bat0 # comment\n\n# a comment\nconfig peer\n\toption address \"[fe80::1%mesh0]:4849\"\n";
        let s = p(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, "meshpost");
        assert_eq!(s[0].name.as_deref(), Some("main"));
        assert_eq!(s[0].get("port").unwrap().value, "4849");
        assert_eq!(s[0].get("name").unwrap().value, "it's \"here\"");
        assert_eq!(values(&s[0], "interface"), ["mesh0", "bat0"]);
        assert_eq!(s[1].name, None);
        assert_eq!(s[1].get("address").unwrap().value, "[fe80::1%mesh0]:4849");
        assert_eq!(s[1].get("address").unwrap().line, 11);
    }

    #[test]
    fn reads_the_issue_cases_as_libuci_does() {
        // A comment right after a value ends it.
        let s = p("config a x\n option name alpha#1\n option b 'beta'#1\n").unwrap();
        assert_eq!(s[0].get("name").unwrap().value, "alpha");
        assert_eq!(s[0].get("b").unwrap().value, "beta");
        // Two blocks of one named section are one section.
        let s = p("config peer 'gw'\n option address a:1\nconfig peer 'gw'\n option key k\n").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].get("address").unwrap().value.as_str(), s[0].get("key").unwrap().value.as_str()),
            ("a:1", "k")
        );
        // An empty value keeps the earlier one.
        let s = p("config a x\n option port 1\n option port ''\n option name\n").unwrap();
        assert_eq!(s[0].get("port").unwrap().value, "1");
        assert!(s[0].get("name").is_none());
        // option then list: a list of both; list then option: the option.
        let s = p("config a x\n option i one\n list i two\n list j one\n option j two\n").unwrap();
        assert_eq!(values(&s[0], "i"), ["one", "two"]);
        assert!(s[0].options.iter().filter(|o| o.name == "i").all(|o| o.is_list));
        assert_eq!(s[0].get("j").unwrap().value, "two");
        // Multi-line quotes, continuation, short keywords, `;`, empty name.
        let s = p("c a 'x'; o v 'one\ntwo'\n l w thr\\\nee\nconfig peer ''\n").unwrap();
        assert_eq!(s[0].get("v").unwrap().value, "one\ntwo");
        assert_eq!(values(&s[0], "w"), ["three"]);
        assert_eq!((s.len(), s[1].name.clone()), (2, None));
        // Section types may hold punctuation.
        assert_eq!(p("config my-type.x\n").unwrap()[0].kind, "my-type.x");
    }

    #[test]
    fn refuses_what_libuci_refuses() {
        for (text, line) in [
            ("config peer my-peer\n", 1),
            ("config a\n option foo-bar 1\n", 2),
            ("'config' a\n", 1),
            ("config a n\nconfig b n\n", 2),
            ("config a\n option x y z\n", 2),
            ("option x y\n", 1),
            ("config a\n\n frob x y\n", 3),
            ("config a\n option x 'y\n", 2),
        ] {
            assert_eq!(p(text).unwrap_err().line, line, "{text:?}");
        }
        assert!(p("config a\n option x y z\n").unwrap_err().reason().contains("quote"));
    }

    #[test]
    fn bytes_that_are_not_text_are_refused_with_their_line() {
        let e = parse(b"config a\n option n 'x\xff'\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, UciErrorKind::NotUtf8));
        let e = parse(b"config a\n\n option n x\0y\n").unwrap_err();
        assert_eq!((e.line, e.kind), (3, UciErrorKind::NulByte));
        // The last line without a newline still has its number.
        assert_eq!(parse(b"config a\n option n '\xff'").unwrap_err().line, 2);
    }

    #[test]
    fn hostile_input_never_panics() {
        for s in [
            "'",
            "\"",
            "\\",
            "config",
            "config a b c d",
            "option",
            "\u{ffff}",
            "config a\noption x \"\\",
            ";;;",
            "c\\\n",
            "c a;o",
        ] {
            let _ = p(s);
        }
    }
}
