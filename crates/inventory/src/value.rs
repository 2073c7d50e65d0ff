//! Variable values as ansible holds them after reading an INI inventory, and their JSON text in
//! the exact form `ansible-inventory --list` prints.
//!
//! Ansible passes every INI value through Python's `ast.literal_eval`, so a value can be an
//! integer of any size, a float, a boolean, `None`, a string, a list (tuples become lists) or a
//! dict. The writer reproduces Python's `json.dumps(sort_keys=True, indent=4,
//! ensure_ascii=False)`, including Python's float text (`1e-05`, `1e+16`, `Infinity`), so the
//! output can be compared byte for byte with ansible's.

use std::fmt::Write;

/// One variable value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    Null,
    /// `True` or `False`.
    Bool(bool),
    /// An integer of any size, as decimal digits with an optional leading `-`.
    Int(String),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list or tuple.
    List(Vec<Value>),
    /// A dict, in insertion order, with keys already in their JSON form.
    Dict(Vec<(String, Value)>),
}

impl Value {
    /// Returns the string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    /// Returns the value as Python's `str()` would print it for a scalar, used where ansible
    /// converts a value to text (for example a `KEY=VALUE` shown to the user).
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => "None".to_owned(),
            Value::Bool(true) => "True".to_owned(),
            Value::Bool(false) => "False".to_owned(),
            Value::Int(digits) => digits.clone(),
            Value::Float(number) => python_float_repr(*number),
            Value::Str(text) => text.clone(),
            Value::List(_) | Value::Dict(_) => to_json(self, 0).replace('\n', ""),
        }
    }
}

/// Writes `value` as ansible-inventory does: 4-space indent, keys sorted, non-ASCII kept.
pub fn to_json(value: &Value, indent: usize) -> String {
    let mut out = String::new();
    write_value(&mut out, value, indent);
    out
}

pub(crate) fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Int(digits) => out.push_str(digits),
        Value::Float(number) => out.push_str(&json_float(*number)),
        Value::Str(text) => write_string(out, text),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(out, indent + 1);
                write_value(out, item, indent + 1);
            }
            newline(out, indent);
            out.push(']');
        }
        Value::Dict(entries) => {
            let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            write_object(out, sorted.into_iter().map(|(k, v)| (k.as_str(), v)), indent);
        }
    }
}

/// Writes an object whose entries are already in output order.
pub(crate) fn write_object<'a>(out: &mut String, entries: impl Iterator<Item = (&'a str, &'a Value)>, indent: usize) {
    let mut empty = true;
    for (key, value) in entries {
        out.push_str(if empty { "{" } else { "," });
        empty = false;
        newline(out, indent + 1);
        write_string(out, key);
        out.push_str(": ");
        write_value(out, value, indent + 1);
    }
    if empty {
        out.push_str("{}");
    } else {
        newline(out, indent);
        out.push('}');
    }
}

pub(crate) fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    for _ in 0..indent {
        out.push_str("    ");
    }
}

/// Writes a JSON string the way Python's json module does with `ensure_ascii=False`.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_float(number: f64) -> String {
    if number.is_nan() {
        "NaN".to_owned()
    } else if number.is_infinite() {
        if number > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        python_float_repr(number)
    }
}

/// Formats a finite float as Python's `repr`: the shortest digits that read back to the same
/// value, in positional form for decimal exponents from -4 to 15 and in scientific form (`1e-05`,
/// `1.5e+16`) outside that.
pub fn python_float_repr(number: f64) -> String {
    if number.is_nan() {
        return "nan".to_owned();
    }
    if number.is_infinite() {
        return if number > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, such as `-1.5e16` or `1e-20`.
    let scientific = format!("{number:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} output has an exponent");
    let exponent: i32 = exponent.parse().expect("exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();

    if !(-4..16).contains(&exponent) {
        let mut text = format!("{sign}{}", &digits[..1]);
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(text, "e{exponent_sign}{:02}", exponent.abs());
        return text;
    }

    let point = exponent + 1;
    let mut text = String::from(sign);
    if point <= 0 {
        text.push_str("0.");
        for _ in 0..(-point) {
            text.push('0');
        }
        text.push_str(&digits);
    } else if point as usize >= digits.len() {
        text.push_str(&digits);
        for _ in 0..(point as usize - digits.len()) {
            text.push('0');
        }
        text.push_str(".0");
    } else {
        text.push_str(&digits[..point as usize]);
        text.push('.');
        text.push_str(&digits[point as usize..]);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1000.0, "1000.0"),
            (1.5, "1.5"),
            (1e-20, "1e-20"),
            (0.5, "0.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (-2.25e-7, "-2.25e-07"),
        ];
        for (number, expected) in cases {
            assert_eq!(python_float_repr(number), expected, "{number}");
        }
    }

    #[test]
    fn json_nests_with_four_spaces_and_sorted_keys() {
        let value = Value::Dict(vec![
            ("z".into(), Value::List(vec![Value::Int("1".into()), Value::Str("é\n".into())])),
            ("a".into(), Value::Dict(vec![])),
            ("m".into(), Value::List(vec![])),
        ]);
        let expected = "{\n    \"a\": {},\n    \"m\": [],\n    \"z\": [\n        1,\n        \"é\\n\"\n    ]\n}";
        assert_eq!(to_json(&value, 0), expected);
    }
}
