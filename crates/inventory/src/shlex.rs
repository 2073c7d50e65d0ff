//! Splitting of a host line into words, as Python's `shlex.split(line, comments=True)` does in
//! POSIX mode.
//!
//! Ansible's INI plugin splits each host line this way, so the rules here decide which `#` starts
//! a comment (any `#` outside quotes, even inside a word: `pw=abc#def` is `pw=abc`) and what a
//! quoted value keeps: single quotes keep everything, double quotes let a backslash escape only
//! `"` and `\`, and outside quotes a backslash escapes any character.

/// Why a line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A quote was opened and not closed.
    NoClosingQuotation,
    /// The line ends with a lone backslash.
    NoEscapedCharacter,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::NoClosingQuotation => f.write_str("No closing quotation"),
            SplitError::NoEscapedCharacter => f.write_str("No escaped character"),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    /// Between words.
    Space,
    /// Inside an unquoted part of a word.
    Word,
    /// Inside a quoted part, with the quote character.
    Quoted(char),
    /// After a backslash; holds the state to return to.
    Escape(EscapedFrom),
}

#[derive(Clone, Copy, PartialEq)]
enum EscapedFrom {
    Word,
    Quoted(char),
}

const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// Splits `line` into words with POSIX shell quoting; `#` outside quotes ends the line.
///
/// # Errors
/// [`SplitError`] for an unclosed quote or a trailing backslash, the cases where Python's shlex
/// raises `ValueError`.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut token = String::new();
    // A word that had quotes is kept even when empty (`x=''` gives `x=`, `''` gives an empty word).
    let mut quoted = false;
    let mut state = State::Space;

    for c in line.chars() {
        match state {
            State::Space => {
                if WHITESPACE.contains(&c) {
                    continue;
                }
                if c == '#' {
                    return Ok(words);
                }
                match c {
                    '\\' => state = State::Escape(EscapedFrom::Word),
                    '\'' | '"' => state = State::Quoted(c),
                    _ => {
                        token.push(c);
                        state = State::Word;
                    }
                }
            }
            State::Word => {
                if WHITESPACE.contains(&c) || c == '#' {
                    words.push(std::mem::take(&mut token));
                    quoted = false;
                    if c == '#' {
                        return Ok(words);
                    }
                    state = State::Space;
                    continue;
                }
                match c {
                    '\'' | '"' => state = State::Quoted(c),
                    '\\' => state = State::Escape(EscapedFrom::Word),
                    _ => token.push(c),
                }
            }
            State::Quoted(quote) => {
                quoted = true;
                if c == quote {
                    state = State::Word;
                } else if c == '\\' && quote == '"' {
                    state = State::Escape(EscapedFrom::Quoted(quote));
                } else {
                    token.push(c);
                }
            }
            State::Escape(from) => {
                // Inside double quotes only the quote and the backslash can be escaped; before any
                // other character the backslash stays.
                if let EscapedFrom::Quoted(quote) = from {
                    if c != quote && c != '\\' {
                        token.push('\\');
                    }
                }
                token.push(c);
                state = match from {
                    EscapedFrom::Word => State::Word,
                    EscapedFrom::Quoted(quote) => State::Quoted(quote),
                };
            }
        }
    }

    match state {
        State::Quoted(_) => Err(SplitError::NoClosingQuotation),
        State::Escape(_) => Err(SplitError::NoEscapedCharacter),
        State::Word => {
            words.push(token);
            Ok(words)
        }
        State::Space => {
            if quoted || !token.is_empty() {
                words.push(token);
            }
            Ok(words)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line).expect("splits")
    }

    #[test]
    fn split_plain_words_and_comment() {
        assert_eq!(words("host1 a=1   b=2 # note"), ["host1", "a=1", "b=2"]);
    }

    #[test]
    fn split_hash_inside_word_starts_comment() {
        assert_eq!(words("h pw=abc#def q=1"), ["h", "pw=abc"]);
    }

    #[test]
    fn split_quotes_keep_spaces_and_hash() {
        assert_eq!(words(r#"h a="x # y" b='p q' c="'03#pa'""#), ["h", "a=x # y", "b=p q", "c='03#pa'"]);
    }

    #[test]
    fn split_backslash_rules() {
        assert_eq!(words(r#"h a=\x41 b="\"q\"" c="\d" d='\n'"#), ["h", "a=x41", "b=\"q\"", "c=\\d", "d=\\n"]);
    }

    #[test]
    fn split_empty_quoted_word_kept() {
        assert_eq!(words("h e='' ''"), ["h", "e=", ""]);
    }

    #[test]
    fn split_unclosed_quote_fails() {
        assert_eq!(split("h a='x"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("h a=\\"), Err(SplitError::NoEscapedCharacter));
    }
}
