//! The line buffer and word reader of a UCI file, with libuci's exact rules.
//!
//! libuci (openwrt/uci `file.c`) reads a file line by line into one buffer
//! and splits words in place: quotes are removed by copying characters
//! down, a word is ended by writing a NUL byte over the character after it,
//! a backslash at the end of a line or an open quote pulls the next line
//! into the same buffer, `#` cuts the rest of the line, and `;` ends a
//! command. Several corner cases of the format follow from that in-place
//! editing (for example `abc;` directly after an unquoted word ends the
//! whole line, while `'abc';` starts a second command), so this module
//! keeps the same buffer model rather than a token stream, and the
//! differential test against the real libuci holds it to that.
//!
//! It does not build sections (`tree`), does not know what options mean
//! (`config`), and never reads NUL bytes: `parse` refuses a file holding
//! one before it gets here (libuci's `fgets`/`strlen` would read such a
//! line differently depending on its buffer size).

/// Why the reader stopped; the texts libuci gives are in `libuci_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    UnterminatedDouble,
    UnterminatedSingle,
    MissingArgument,
    InvalidName,
    InvalidType,
    TooManyArguments,
    NoPackageName,
    NoSectionType,
    NoOptionName,
    InvalidCommand,
    OptionBeforeSection,
    TypeChanged,
}

impl ScanError {
    /// The reason string libuci's parser reports for the same input.
    pub fn libuci_reason(self) -> &'static str {
        match self {
            Self::UnterminatedDouble => "EOF with unterminated \"",
            Self::UnterminatedSingle => "EOF with unterminated '",
            Self::MissingArgument => "insufficient arguments",
            Self::InvalidName => "invalid character in name field",
            Self::InvalidType => "invalid character in type field",
            Self::TooManyArguments => "too many arguments",
            Self::NoPackageName => "package without name",
            Self::NoSectionType => "config without name",
            Self::NoOptionName => "option without name",
            Self::InvalidCommand => "invalid command",
            Self::OptionBeforeSection => "option/list command found before the first section",
            Self::TypeChanged => "section of different type overwrites prior section with same name",
        }
    }

    /// What an admin reads: what is wrong and what to do.
    pub fn explain(self) -> &'static str {
        match self {
            Self::UnterminatedDouble => "a double quote is never closed before the end of the file",
            Self::UnterminatedSingle => "a single quote is never closed before the end of the file",
            Self::MissingArgument => "a name or type is missing (config TYPE [NAME], option NAME VALUE)",
            Self::InvalidName => "names may hold only A-Z a-z 0-9 and _ (quote values, not names)",
            Self::InvalidType => "a section type may hold only printable ASCII without spaces",
            Self::TooManyArguments => "too many words: quote a value that holds spaces",
            Self::NoPackageName => "'package' needs a name",
            Self::NoSectionType => "'config' needs a section type",
            Self::NoOptionName => "'option' and 'list' need a name",
            Self::InvalidCommand => "unknown command: lines start with config, option, list, package or #",
            Self::OptionBeforeSection => "'option' or 'list' before the first 'config' line",
            Self::TypeChanged => "a section of this name was declared earlier with another type",
        }
    }
}

/// C's `isspace` in the C locale.
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// libuci's name check (`uci_validate_str`): `name` allows only A-Z a-z
/// 0-9 and `_` (plus `-` for a package); otherwise printable ASCII.
pub fn valid_str(s: &[u8], name: bool, package: bool) -> bool {
    !s.is_empty()
        && s.iter().all(|&c| {
            c.is_ascii_alphanumeric() || c == b'_' || (c == b'-' && package) || (!name && (33..=126).contains(&c))
        })
}

/// The parse context: input, the current logical line and a position.
pub struct Scanner<'a> {
    input: &'a [u8],
    /// Offset of the first unread input byte.
    next: usize,
    /// The buffer as libuci holds it; bytes past `buf.len()` read as NUL.
    buf: Vec<u8>,
    /// End of the text read into `buf` by the last successful read.
    filled: usize,
    pub pos: usize,
    /// Lines read that ended in a newline (libuci's `pctx->line`).
    completed: usize,
    /// The last read ended at the end of the file without a newline.
    unterminated: bool,
}

impl<'a> Scanner<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Scanner { input, next: 0, buf: Vec::new(), filled: 0, pos: 0, completed: 0, unterminated: false }
    }

    /// True once every byte has been read.
    pub fn at_eof(&self) -> bool {
        self.next >= self.input.len()
    }

    /// The 1-based number of the line being read (a last line without a
    /// newline counts, which libuci's own counter leaves out).
    pub fn line(&self) -> usize {
        self.completed + usize::from(self.unterminated)
    }

    /// libuci's line counter, for comparing error positions.
    pub fn libuci_line(&self) -> usize {
        self.completed
    }

    pub fn ch(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    pub fn cur(&self) -> u8 {
        self.ch(self.pos)
    }

    pub fn set(&mut self, i: usize, c: u8) {
        if i >= self.buf.len() {
            self.buf.resize(i + 1, 0);
        }
        self.buf[i] = c;
    }

    /// The NUL-terminated string starting at `i`.
    pub fn str_at(&self, i: usize) -> &[u8] {
        let tail = self.buf.get(i..).unwrap_or(&[]);
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    /// Reads the next input line into the buffer at `offset` (libuci's
    /// `uci_getln`). At the end of the input the buffer ends at `offset`.
    pub fn read_line(&mut self, offset: usize) {
        self.set(offset, 0);
        if self.at_eof() {
            return;
        }
        let rest = &self.input[self.next..];
        let len = rest.iter().position(|&c| c == b'\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..len];
        self.buf.truncate(offset);
        self.buf.extend_from_slice(line);
        self.filled = self.buf.len();
        self.buf.push(0);
        self.next += len;
        if line.last() == Some(&b'\n') {
            self.completed += 1;
        } else {
            self.unterminated = true;
        }
    }

    /// Moves `pos` forward by `n`, refusing to pass the text read.
    pub fn advance(&mut self, n: usize) -> bool {
        if self.pos + n > self.filled {
            return false;
        }
        self.pos += n;
        true
    }

    pub fn skip_space(&mut self) {
        while self.cur() != 0 && is_space(self.cur()) {
            self.pos += 1;
        }
    }

    /// Copies the character at `*src` down to `*dest`.
    fn copy_down(&mut self, dest: &mut usize) {
        let c = self.cur();
        self.set(*dest, c);
        *dest += 1;
        self.pos += 1;
    }

    /// After a backslash: at the end of a line, joins the next line and
    /// returns false; otherwise the next character is taken literally.
    fn backslash(&mut self) -> bool {
        self.pos += 1;
        let c = self.cur();
        let crlf_end = c == b'\r' && self.ch(self.pos + 1) == b'\n' && self.ch(self.pos + 2) == 0;
        if c == 0 || c == b'\n' || crlf_end {
            self.read_line(self.pos);
            return false;
        }
        true
    }

    fn double_quoted(&mut self, dest: &mut usize) -> Result<(), ScanError> {
        self.pos += 1;
        loop {
            match self.cur() {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                0 => {
                    self.read_line(self.pos);
                    if self.cur() == 0 {
                        return Err(ScanError::UnterminatedDouble);
                    }
                }
                b'\\' => {
                    if self.backslash() {
                        self.copy_down(dest);
                    }
                }
                _ => self.copy_down(dest),
            }
        }
    }

    fn single_quoted(&mut self, dest: &mut usize) -> Result<(), ScanError> {
        self.pos += 1;
        loop {
            match self.cur() {
                b'\'' => {
                    self.pos += 1;
                    return Ok(());
                }
                0 => {
                    self.read_line(self.pos);
                    if self.cur() == 0 {
                        return Err(ScanError::UnterminatedSingle);
                    }
                }
                _ => self.copy_down(dest),
            }
        }
    }

    /// Reads one word into the buffer at `dest` (libuci's `parse_str`).
    fn word(&mut self, mut dest: usize) -> Result<(), ScanError> {
        let mut step_over = true;
        loop {
            match self.cur() {
                b'\'' => self.single_quoted(&mut dest)?,
                b'"' => self.double_quoted(&mut dest)?,
                b'#' => {
                    let p = self.pos;
                    self.set(p, 0);
                    break;
                }
                0 => break,
                b';' => {
                    step_over = false;
                    break;
                }
                b'\\' => {
                    if self.backslash() {
                        self.copy_down(&mut dest);
                    }
                }
                _ => self.copy_down(&mut dest),
            }
            if self.cur() == 0 || is_space(self.cur()) {
                break;
            }
        }
        if self.cur() != 0 && step_over {
            self.pos += 1;
        }
        self.set(dest, 0);
        Ok(())
    }

    /// The next argument of a command (libuci's `next_arg`); returns the
    /// offset of its text, which is empty when there is none.
    pub fn arg(&mut self, required: bool, name: bool, package: bool) -> Result<usize, ScanError> {
        self.skip_space();
        let start = self.pos;
        if self.cur() == b';' {
            self.set(start, 0);
            self.pos += 1;
        } else {
            self.word(start)?;
        }
        if self.ch(start) == 0 {
            return if required { Err(ScanError::MissingArgument) } else { Ok(start) };
        }
        if name && !valid_str(self.str_at(start), name, package) {
            return Err(ScanError::InvalidName);
        }
        Ok(start)
    }

    /// Fails if the command has another argument (libuci in strict mode).
    pub fn end_of_command(&mut self) -> Result<(), ScanError> {
        self.skip_space();
        let extra = self.arg(false, false, false)?;
        if self.ch(extra) != 0 {
            return Err(ScanError::TooManyArguments);
        }
        Ok(())
    }

    /// The next command word, as `strtok(cur, " \t")` finds it: skips
    /// spaces and tabs, ends the word with a NUL, and leaves `pos` alone.
    pub fn command_word(&mut self) -> Option<Vec<u8>> {
        let mut i = self.pos;
        while matches!(self.ch(i), b' ' | b'\t') {
            i += 1;
        }
        if self.ch(i) == 0 {
            return None;
        }
        let start = i;
        while !matches!(self.ch(i), 0 | b' ' | b'\t') {
            i += 1;
        }
        let word = self.buf[start..i].to_vec();
        if self.ch(i) != 0 {
            self.set(i, 0);
        }
        Some(word)
    }

    /// Steps over the command word (libuci: `strlen(cur) + 1`).
    pub fn skip_command_word(&mut self) -> bool {
        let n = self.str_at(self.pos).len() + 1;
        self.advance(n)
    }
}
