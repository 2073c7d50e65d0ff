//! Reading of an INI value the way ansible does: Python's `ast.literal_eval`, and the raw text
//! when that fails.
//!
//! Ansible 2.14's INI plugin evaluates every value, inline host variables and `[group:vars]`
//! lines alike, so `port=22` is an integer, `flag=True` a boolean, `x='5'` (after shell-style
//! unquoting of host lines) the integer 5, and `name=node-1` stays a string because it is not a
//! Python literal. Comments after a `:vars` value are Python comments too: `a=8080 # web` is 8080,
//! while `a=web # x` is the string `web # x`.
//!
//! # Limitations
//! Python literals that ansible cannot print as JSON (sets, complex numbers, `...`) and `\N{NAME}`
//! escapes are not recognised here and stay strings; `ansible-inventory` fails on the first three.

use crate::value::Value;

/// Evaluates `text` as a Python literal, or returns it unchanged as a string.
pub fn parse_value(text: &str) -> Value {
    // Python 3.11's literal_eval strips leading spaces and tabs before parsing.
    let trimmed = text.trim_start_matches([' ', '\t']);
    match Tokenizer::new(trimmed).tokens().and_then(|tokens| Parser { tokens, pos: 0 }.parse_top()) {
        Some(value) => value,
        None => Value::Str(text.to_owned()),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Name(String),
    Op(char),
}

struct Tokenizer<'a> {
    chars: Vec<char>,
    pos: usize,
    _text: &'a str,
}

impl<'a> Tokenizer<'a> {
    fn new(text: &'a str) -> Self {
        Tokenizer { chars: text.chars().collect(), pos: 0, _text: text }
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    /// Returns the tokens, or `None` where Python's tokenizer would raise a syntax error.
    fn tokens(mut self) -> Option<Vec<Token>> {
        let mut tokens = Vec::new();
        while let Some(c) = self.peek(0) {
            if c == ' ' || c == '\t' || c == '\u{c}' {
                self.pos += 1;
            } else if c == '#' {
                break;
            } else if c.is_ascii_digit() || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) {
                tokens.push(self.number()?);
            } else if c == '\'' || c == '"' {
                tokens.push(self.string("")?);
            } else if c == '_' || c.is_alphabetic() {
                let start = self.pos;
                while self.peek(0).is_some_and(|d| d == '_' || d.is_alphanumeric()) {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                if matches!(self.peek(0), Some('\'' | '"')) && is_string_prefix(&name) {
                    tokens.push(self.string(&name.to_ascii_lowercase())?);
                } else {
                    tokens.push(Token::Name(name));
                }
            } else {
                tokens.push(Token::Op(c));
                self.pos += 1;
            }
        }
        Some(tokens)
    }

    fn digits(&mut self, radix: u32) -> Option<String> {
        // Digits with single underscores between them, as Python 3.6+ allows.
        let mut out = String::new();
        loop {
            match self.peek(0) {
                Some(c) if c.is_digit(radix) => {
                    out.push(c);
                    self.pos += 1;
                }
                Some('_') if !out.is_empty() && self.peek(1).is_some_and(|d| d.is_digit(radix)) => self.pos += 1,
                _ => break,
            }
        }
        Some(out)
    }

    fn number(&mut self) -> Option<Token> {
        if self.peek(0) == Some('0') {
            if let Some(radix) = match self.peek(1) {
                Some('x' | 'X') => Some(16),
                Some('o' | 'O') => Some(8),
                Some('b' | 'B') => Some(2),
                _ => None,
            } {
                self.pos += 2;
                if self.peek(0) == Some('_') {
                    self.pos += 1;
                }
                let digits = self.digits(radix)?;
                if digits.is_empty() || self.peek(0).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return None;
                }
                return Some(Token::Int(big_from_radix(&digits, radix)));
            }
        }

        let integer = self.digits(10)?;
        let mut is_float = false;
        let mut text = integer.clone();
        if self.peek(0) == Some('.') {
            self.pos += 1;
            is_float = true;
            text.push('.');
            text.push_str(&self.digits(10)?);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            let mut exponent = String::from("e");
            if let Some(sign @ ('+' | '-')) = self.peek(0) {
                exponent.push(sign);
                self.pos += 1;
            }
            let digits = self.digits(10)?;
            if digits.is_empty() {
                self.pos = save;
                return None;
            }
            exponent.push_str(&digits);
            text.push_str(&exponent);
            is_float = true;
        }
        // A number glued to a name (`1abc`, `5j`, `0777x`) is a syntax error or a complex number.
        if self.peek(0).is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        if is_float {
            return text.parse::<f64>().ok().map(Token::Float);
        }
        // Python rejects a decimal literal with leading zeros unless every digit is zero.
        if integer.len() > 1 && integer.starts_with('0') && integer.chars().any(|c| c != '0') {
            return None;
        }
        Some(Token::Int(big_from_radix(&integer, 10)))
    }

    fn string(&mut self, prefix: &str) -> Option<Token> {
        if prefix.contains('f') {
            return None;
        }
        let raw = prefix.contains('r');
        let bytes = prefix.contains('b');
        let quote = self.peek(0)?;
        let triple = self.peek(1) == Some(quote) && self.peek(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };

        let mut out: Vec<u32> = Vec::new();
        loop {
            let c = self.peek(0)?;
            if c == quote {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.peek(1) == Some(quote) && self.peek(2) == Some(quote) {
                    self.pos += 3;
                    break;
                }
            }
            if c == '\n' && !triple {
                return None;
            }
            if bytes && !c.is_ascii() {
                return None;
            }
            self.pos += 1;
            if c != '\\' {
                out.push(c as u32);
                continue;
            }
            let next = self.peek(0)?;
            self.pos += 1;
            if raw {
                out.push('\\' as u32);
                out.push(next as u32);
                continue;
            }
            match next {
                '\n' => {}
                '\\' | '\'' | '"' => out.push(next as u32),
                'a' => out.push(7),
                'b' => out.push(8),
                'f' => out.push(12),
                'n' => out.push(10),
                'r' => out.push(13),
                't' => out.push(9),
                'v' => out.push(11),
                '0'..='7' => {
                    let mut code = next.to_digit(8)?;
                    for _ in 0..2 {
                        match self.peek(0).and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(code);
                }
                'x' => out.push(self.hex_escape(2)?),
                'u' if !bytes => out.push(self.hex_escape(4)?),
                'U' if !bytes => out.push(self.hex_escape(8)?),
                // `\N{NAME}` needs Unicode's name table; see the module's limitations.
                'N' if !bytes => return None,
                other => {
                    out.push('\\' as u32);
                    out.push(other as u32);
                }
            }
        }

        if bytes {
            let data: Vec<u8> = out.into_iter().map(|code| u8::try_from(code).ok()).collect::<Option<_>>()?;
            return Some(Token::Bytes(data));
        }
        let text: String = out.into_iter().map(char::from_u32).collect::<Option<_>>()?;
        Some(Token::Str(text))
    }

    fn hex_escape(&mut self, count: usize) -> Option<u32> {
        let mut code = 0u32;
        for _ in 0..count {
            let digit = self.peek(0)?.to_digit(16)?;
            code = code.checked_mul(16)?.checked_add(digit)?;
            self.pos += 1;
        }
        Some(code)
    }
}

fn is_string_prefix(name: &str) -> bool {
    matches!(name.to_ascii_lowercase().as_str(), "r" | "u" | "b" | "br" | "rb" | "f" | "fr" | "rf")
}

/// Converts digits in `radix` to decimal text of any length.
fn big_from_radix(digits: &str, radix: u32) -> String {
    // Little-endian limbs of 10^9.
    let mut limbs: Vec<u64> = vec![0];
    for c in digits.chars() {
        let mut carry = u64::from(c.to_digit(radix).expect("digits were checked against the radix"));
        for limb in limbs.iter_mut() {
            let value = *limb * u64::from(radix) + carry;
            *limb = value % 1_000_000_000;
            carry = value / 1_000_000_000;
        }
        if carry > 0 {
            limbs.push(carry);
        }
    }
    let mut text = limbs.last().expect("at least one limb").to_string();
    for limb in limbs.iter().rev().skip(1) {
        text.push_str(&format!("{limb:09}"));
    }
    text
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(&Token::Op(op)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn parse_top(mut self) -> Option<Value> {
        let value = self.parse_sequence_or_single(None)?;
        if self.pos != self.tokens.len() {
            return None;
        }
        Some(value)
    }

    /// Parses `a`, or the tuple `a, b` (with optional trailing comma) up to `close`.
    fn parse_sequence_or_single(&mut self, close: Option<char>) -> Option<Value> {
        let first = self.parse_expr()?;
        if !self.eat(',') {
            return Some(first);
        }
        let mut items = vec![first];
        while self.peek().is_some() && self.peek() != close.map(Token::Op).as_ref() {
            items.push(self.parse_expr()?);
            if !self.eat(',') {
                break;
            }
        }
        Some(Value::List(items))
    }

    fn parse_expr(&mut self) -> Option<Value> {
        let token = self.peek()?.clone();
        self.pos += 1;
        match token {
            Token::Int(digits) => Some(Value::Int(digits)),
            Token::Float(number) => Some(Value::Float(number)),
            Token::Str(first) => self.concat_strings(first),
            Token::Bytes(first) => self.concat_bytes(first),
            Token::Name(name) => match name.as_str() {
                "True" => Some(Value::Bool(true)),
                "False" => Some(Value::Bool(false)),
                "None" => Some(Value::Null),
                _ => None,
            },
            Token::Op(sign @ ('-' | '+')) => {
                // Only a sign directly on a number literal is allowed (`-5`, `-(5)`), not `--5`.
                let number = self.parse_parenthesized_number()?;
                Some(if sign == '-' { negate(number) } else { number })
            }
            Token::Op('(') => {
                if self.eat(')') {
                    return Some(Value::List(Vec::new()));
                }
                let inner = self.parse_sequence_or_single(Some(')'))?;
                self.eat(')').then_some(inner)
            }
            Token::Op('[') => {
                let items = self.parse_items(']')?;
                Some(Value::List(items))
            }
            Token::Op('{') => self.parse_dict(),
            Token::Op(_) => None,
        }
    }

    fn parse_parenthesized_number(&mut self) -> Option<Value> {
        let mut depth = 0;
        while self.eat('(') {
            depth += 1;
        }
        let value = match self.peek()?.clone() {
            Token::Int(digits) => Value::Int(digits),
            Token::Float(number) => Value::Float(number),
            _ => return None,
        };
        self.pos += 1;
        for _ in 0..depth {
            if !self.eat(')') {
                return None;
            }
        }
        Some(value)
    }

    fn concat_strings(&mut self, mut text: String) -> Option<Value> {
        while let Some(Token::Str(next)) = self.peek() {
            text.push_str(next);
            self.pos += 1;
        }
        if matches!(self.peek(), Some(Token::Bytes(_))) {
            return None;
        }
        Some(Value::Str(text))
    }

    fn concat_bytes(&mut self, mut data: Vec<u8>) -> Option<Value> {
        while let Some(Token::Bytes(next)) = self.peek() {
            data.extend_from_slice(next);
            self.pos += 1;
        }
        if matches!(self.peek(), Some(Token::Str(_))) {
            return None;
        }
        // Ansible turns bytes into text with to_text, decoding UTF-8.
        String::from_utf8(data).ok().map(Value::Str)
    }

    fn parse_items(&mut self, close: char) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.parse_expr()?);
            if !self.eat(',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn parse_dict(&mut self) -> Option<Value> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        loop {
            if self.eat('}') {
                return Some(Value::Dict(entries));
            }
            let key = self.parse_expr()?;
            // `{1, 2}` is a set, which ansible cannot print; see the module's limitations.
            if !self.eat(':') {
                return None;
            }
            let value = self.parse_expr()?;
            let key = json_key(&key)?;
            match entries.iter_mut().find(|(existing, _)| *existing == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            if !self.eat(',') {
                return self.eat('}').then_some(Value::Dict(entries));
            }
        }
    }
}

/// Returns the JSON key Python's json module writes for a dict key, or `None` for keys it cannot
/// write (lists, tuples).
fn json_key(key: &Value) -> Option<String> {
    match key {
        Value::Str(text) => Some(text.clone()),
        Value::Int(digits) => Some(digits.clone()),
        Value::Float(number) => Some(crate::value::python_float_repr(*number)),
        Value::Bool(flag) => Some(if *flag { "true" } else { "false" }.to_owned()),
        Value::Null => Some("null".to_owned()),
        Value::List(_) | Value::Dict(_) => None,
    }
}

fn negate(value: Value) -> Value {
    match value {
        Value::Int(digits) if digits == "0" => Value::Int(digits),
        Value::Int(digits) => match digits.strip_prefix('-') {
            Some(rest) => Value::Int(rest.to_owned()),
            None => Value::Int(format!("-{digits}")),
        },
        Value::Float(number) => Value::Float(-number),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(text: &str) -> Value {
        Value::Int(text.to_owned())
    }

    fn string(text: &str) -> Value {
        Value::Str(text.to_owned())
    }

    #[test]
    fn literal_numbers() {
        assert_eq!(parse_value("0x1F"), int("31"));
        assert_eq!(parse_value("0o17"), int("15"));
        assert_eq!(parse_value("1_000"), int("1000"));
        assert_eq!(parse_value("-3"), int("-3"));
        assert_eq!(parse_value("+4"), int("4"));
        assert_eq!(parse_value("- 5"), int("-5"));
        assert_eq!(parse_value("00"), int("0"));
        assert_eq!(parse_value(" 12 "), int("12"));
        assert_eq!(parse_value("12345678901234567890123"), int("12345678901234567890123"));
        assert_eq!(parse_value("1e3"), Value::Float(1000.0));
        assert_eq!(parse_value(".5"), Value::Float(0.5));
        assert_eq!(parse_value("1."), Value::Float(1.0));
    }

    #[test]
    fn literal_non_literals_stay_strings() {
        for text in ["0777", "007", "yes", "true", "1 if 1 else 2", "5 ; x", "[1,", "10.0.0.1", "node-config-compute", "--5", "1+2", "-True"] {
            assert_eq!(parse_value(text), string(text), "{text}");
        }
    }

    #[test]
    fn literal_comment_after_value() {
        assert_eq!(parse_value("8080 # web"), int("8080"));
        assert_eq!(parse_value("web # x"), string("web # x"));
    }

    #[test]
    fn literal_strings_and_containers() {
        assert_eq!(parse_value("'a' 'b'"), string("ab"));
        assert_eq!(parse_value(r"'\u00e9\n'"), string("é\n"));
        assert_eq!(parse_value("'03#pa33w0rd'"), string("03#pa33w0rd"));
        assert_eq!(parse_value("b'xy'"), string("xy"));
        assert_eq!(parse_value("(1,2)"), Value::List(vec![int("1"), int("2")]));
        assert_eq!(parse_value("1,"), Value::List(vec![int("1")]));
        assert_eq!(parse_value("None"), Value::Null);
        assert_eq!(parse_value("False"), Value::Bool(false));
        assert_eq!(
            parse_value("{'k': [1, {'z': None}], 2: 'x'}"),
            Value::Dict(vec![
                ("k".into(), Value::List(vec![int("1"), Value::Dict(vec![("z".into(), Value::Null)])])),
                ("2".into(), string("x")),
            ])
        );
    }
}
