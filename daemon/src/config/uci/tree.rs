//! The sections and options of one UCI package, built as libuci builds
//! them while it reads a file (openwrt/uci `file.c` and `list.c`).
//!
//! The rules an admin meets: a second `config TYPE 'name'` block with the
//! same name continues the first (a different type is an error); an
//! unnamed section gets libuci's generated name `cfgNNHHHH`; `option x ''`
//! changes nothing; setting an option again moves it to the end of its
//! section, unless the value is the same; `list` after `option` turns the
//! option into a list holding both values; `option` after `list` replaces
//! the list. It holds bytes, as libuci does; it does not check UTF-8 or
//! know any option's meaning.

use super::scan::{ScanError, Scanner, valid_str};

/// A value: one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    Single(Vec<u8>),
    List(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    pub name: Vec<u8>,
    pub value: RawValue,
    /// The line that last set it.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    pub kind: Vec<u8>,
    /// The given name, or the name libuci generates for an unnamed section.
    pub name: Vec<u8>,
    pub anonymous: bool,
    /// The line of its first `config` command.
    pub line: usize,
    /// How many `config` commands named it (1 for an unnamed section).
    pub declared: usize,
    pub options: Vec<RawOption>,
}

/// A parse error with the reader's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawError {
    pub kind: ScanError,
    /// 1-based line of the error.
    pub line: usize,
    /// The line number libuci reports for it (one less on a last line
    /// without a newline).
    pub libuci_line: usize,
}

/// libuci's hash for generated section names (djb2, on the type only,
/// because a section is named before it has options).
fn djb_hash(s: &[u8]) -> u32 {
    let mut h: u32 = 5381;
    for &c in s {
        // libuci adds a `char`; section types are ASCII, so the sign of
        // `char` on the target makes no difference.
        h = h.wrapping_mul(33).wrapping_add(u32::from(c));
    }
    h & 0x7fff_ffff
}

#[derive(Default)]
struct Package {
    sections: Vec<RawSection>,
    /// Sections ever added (libuci's `n_section`), for generated names.
    added: usize,
    /// The section `option` and `list` lines go to.
    current: Option<usize>,
}

impl Package {
    fn add_section(&mut self, kind: &[u8], name: Option<&[u8]>, line: usize) -> usize {
        self.added += 1;
        let (name, anonymous) = match name {
            Some(n) => (n.to_vec(), false),
            None => (format!("cfg{:02x}{:04x}", self.added, djb_hash(kind) % 65_536).into_bytes(), true),
        };
        self.sections.push(RawSection { kind: kind.to_vec(), name, anonymous, line, declared: 1, options: Vec::new() });
        self.sections.len() - 1
    }

    fn config(&mut self, kind: &[u8], name: &[u8], line: usize) -> Result<(), ScanError> {
        if name.is_empty() {
            self.current = Some(self.add_section(kind, None, line));
            return Ok(());
        }
        match self.sections.iter().position(|s| s.name == name) {
            Some(i) if self.sections[i].kind != kind => Err(ScanError::TypeChanged),
            Some(i) => {
                self.sections[i].declared += 1;
                self.current = Some(i);
                Ok(())
            }
            None => {
                self.current = Some(self.add_section(kind, Some(name), line));
                Ok(())
            }
        }
    }

    fn option(&mut self, name: &[u8], value: &[u8], list: bool, line: usize) -> Result<(), ScanError> {
        let Some(sec) = self.current.and_then(|i| self.sections.get_mut(i)) else {
            return Err(ScanError::OptionBeforeSection);
        };
        let opts = &mut sec.options;
        let found = opts.iter().position(|o| o.name == name);
        if list {
            let value = value.to_vec();
            match found {
                Some(i) => match &mut opts[i].value {
                    RawValue::List(items) => {
                        items.push(value);
                        opts[i].line = line;
                    }
                    RawValue::Single(old) => {
                        let old = std::mem::take(old);
                        opts.remove(i);
                        opts.push(RawOption { name: name.to_vec(), value: RawValue::List(vec![old, value]), line });
                    }
                },
                None => opts.push(RawOption { name: name.to_vec(), value: RawValue::List(vec![value]), line }),
            }
            return Ok(());
        }
        if value.is_empty() {
            return Ok(());
        }
        if let Some(i) = found {
            if opts[i].value == RawValue::Single(value.to_vec()) {
                return Ok(());
            }
            opts.remove(i);
        }
        opts.push(RawOption { name: name.to_vec(), value: RawValue::Single(value.to_vec()), line });
        Ok(())
    }
}

/// Runs one command line (libuci's `uci_parse_line`), which `;` may split
/// into several commands.
fn command_line(sc: &mut Scanner<'_>, pkg: &mut Package) -> Result<(), ScanError> {
    sc.skip_space();
    loop {
        let Some(word) = sc.command_word() else { return Ok(()) };
        let line = sc.line();
        let is = |short: u8, long: &[u8]| word.first() == Some(&short) && (word.len() == 1 || word == long);
        if word.first() == Some(&b'#') {
            return Ok(());
        } else if is(b'p', b"package") {
            if !sc.skip_command_word() {
                return Err(ScanError::NoPackageName);
            }
            sc.arg(true, true, true)?;
            sc.end_of_command()?;
        } else if is(b'c', b"config") {
            if !sc.skip_command_word() {
                return Err(ScanError::NoSectionType);
            }
            let t = sc.arg(true, false, false)?;
            if !valid_str(sc.str_at(t), false, false) {
                return Err(ScanError::InvalidType);
            }
            let n = sc.arg(false, true, false)?;
            sc.end_of_command()?;
            let (kind, name) = (sc.str_at(t).to_vec(), sc.str_at(n).to_vec());
            pkg.config(&kind, &name, line)?;
        } else if is(b'o', b"option") || is(b'l', b"list") {
            if pkg.current.is_none() {
                return Err(ScanError::OptionBeforeSection);
            }
            if !sc.skip_command_word() {
                return Err(ScanError::NoOptionName);
            }
            let n = sc.arg(true, true, false)?;
            let v = sc.arg(false, false, false)?;
            sc.end_of_command()?;
            let (name, value) = (sc.str_at(n).to_vec(), sc.str_at(v).to_vec());
            pkg.option(&name, &value, word[0] == b'l', line)?;
        } else {
            return Err(ScanError::InvalidCommand);
        }
    }
}

/// Parses a whole file, as `uci_import` does in strict mode (the mode of
/// `uci show`, rpcd and LuCI): the first error ends it.
pub fn parse_raw(input: &[u8]) -> Result<Vec<RawSection>, RawError> {
    let mut sc = Scanner::new(input);
    let mut pkg = Package::default();
    while !sc.at_eof() {
        sc.pos = 0;
        sc.read_line(0);
        if sc.ch(0) != 0 {
            command_line(&mut sc, &mut pkg).map_err(|kind| RawError {
                kind,
                line: sc.line(),
                libuci_line: sc.libuci_line(),
            })?;
        }
    }
    Ok(pkg.sections)
}

/// The package written out one canonical way (every section with its
/// name, every value quoted), for comparing two readers byte for byte.
pub fn dump(sections: &[RawSection]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in sections {
        out.extend_from_slice(b"config ");
        out.extend_from_slice(&s.kind);
        out.extend_from_slice(if s.anonymous { b" anonymous " } else { b" named " });
        out.extend_from_slice(&s.name);
        out.push(b'\n');
        for o in &s.options {
            let values: Vec<&[u8]> = match &o.value {
                RawValue::Single(v) => vec![v],
                RawValue::List(items) => items.iter().map(Vec::as_slice).collect(),
            };
            for v in values {
                out.extend_from_slice(if matches!(o.value, RawValue::List(_)) { b"\tlist " } else { b"\toption " });
                out.extend_from_slice(&o.name);
                out.extend_from_slice(format!(" {}:", v.len()).as_bytes());
                out.extend_from_slice(v);
                out.push(b'\n');
            }
        }
    }
    out
}
