//! A parser for the UCI configuration format (`/etc/config/*`).
//!
//! It handles what libuci writes and admins type: `package`, `config TYPE
//! [NAME]`, `option NAME VALUE`, `list NAME VALUE`, comments, and values in
//! single quotes, double quotes (with backslash escapes), bare words, and
//! concatenations such as `'it'\''s'`. It does not interpret option meanings
//! (see `config`), and it keeps line numbers so errors can point at them.

use std::fmt;

/// One `option` or `list` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub value: String,
    pub is_list: bool,
    pub line: usize,
}

/// One `config` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    pub line: usize,
    pub options: Vec<UciOption>,
}

impl Section {
    /// The last value of a plain option, with its line.
    pub fn get(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().rev().find(|o| o.name == name && !o.is_list)
    }
}

/// A syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for UciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Splits one line into words, honouring quotes and escapes.
fn words(line: &str, lineno: usize) -> Result<Vec<String>, UciError> {
    let err = |reason: &str| UciError { line: lineno, reason: reason.into() };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(err("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => {
                                return Err(err("backslash at end of line inside double quotes"));
                            }
                        },
                        Some(c) => cur.push(c),
                        None => return Err(err("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(err("backslash at end of line")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses a whole UCI file into its sections.
pub fn parse(text: &str) -> Result<Vec<Section>, UciError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let w = words(raw, lineno)?;
        let Some(keyword) = w.first() else { continue };
        let err = |reason: String| UciError { line: lineno, reason };
        match keyword.as_str() {
            "package" => {
                if w.len() != 2 {
                    return Err(err("'package' takes one name".into()));
                }
            }
            "config" => {
                if w.len() < 2 || w.len() > 3 {
                    return Err(err("'config' takes a type and an optional name".into()));
                }
                if !valid_ident(&w[1]) {
                    return Err(err(format!("invalid section type '{}'", w[1])));
                }
                if let Some(n) = w.get(2)
                    && !valid_ident(n)
                {
                    return Err(err(format!("invalid section name '{n}'")));
                }
                sections.push(Section {
                    kind: w[1].clone(),
                    name: w.get(2).cloned(),
                    line: lineno,
                    options: Vec::new(),
                });
            }
            "option" | "list" => {
                let Some(sec) = sections.last_mut() else {
                    return Err(err(format!("'{keyword}' before any 'config' section")));
                };
                if w.len() != 3 {
                    return Err(err(format!("'{keyword}' takes a name and one value (quote values with spaces)")));
                }
                if !valid_ident(&w[1]) {
                    return Err(err(format!("invalid option name '{}'", w[1])));
                }
                sec.options.push(UciOption {
                    name: w[1].clone(),
                    value: w[2].clone(),
                    is_list: keyword == "list",
                    line: lineno,
                });
            }
            other => return Err(err(format!("unknown keyword '{other}'"))),
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_libuci_writes() {
        let text = "package meshpost\n\nconfig meshpost 'main'\n\toption port '4849'\n\toption name 'it'\\''s \"here\"'\n\tlist interface 'mesh0'\n\tlist interface bat0 # comment\n\n# a comment\nconfig peer\n\toption address \"[fe80::1%mesh0]:4849\"\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, "meshpost");
        assert_eq!(s[0].name.as_deref(), Some("main"));
        assert_eq!(s[0].get("port").unwrap().value, "4849");
        assert_eq!(s[0].get("name").unwrap().value, "it's \"here\"");
        let lists: Vec<_> = s[0].options.iter().filter(|o| o.is_list).map(|o| o.value.as_str()).collect();
        assert_eq!(lists, ["mesh0", "bat0"]);
        assert_eq!(s[1].name, None);
        assert_eq!(s[1].get("address").unwrap().value, "[fe80::1%mesh0]:4849");
        assert_eq!(s[1].get("address").unwrap().line, 11);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("config a\n option x 'y\n").unwrap_err().line, 2);
        assert_eq!(parse("option x y\n").unwrap_err().line, 1);
        assert_eq!(parse("config a\n\n frob x y\n").unwrap_err().line, 3);
        assert!(parse("config a\n option x y z\n").unwrap_err().reason.contains("quote"));
        assert!(parse("config 'bad type'\n").is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        for s in ["'", "\"", "\\", "config", "config a b c d", "option", "\u{0}\u{ffff}", "config a\noption x \"\\"] {
            let _ = parse(s);
        }
    }
}
