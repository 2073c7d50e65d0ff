//! Message catalogues in Simplified Chinese and English.
//!
//! Every text a user reads (results, errors, hints, prompts) is a [`Message`]: a catalogue key and
//! named arguments. The binary renders it in the language chosen by `--lang` or the locale. The
//! catalogues live in `locales/en/*.toml` and `locales/zh-CN/*.toml`, one file per domain, joined
//! by the build script. They are flat tables of `key = "text"` where `{name}` is replaced by the
//! argument `name`. Both languages must hold the same keys; a unit test enforces that.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A language caasctl can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    /// English.
    #[serde(rename = "en")]
    En,
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Lang {
    /// Parses a `--lang` value or a locale string such as `zh_CN.UTF-8`, `zh-CN` or `en_US`.
    ///
    /// Returns `None` for an empty value and for the `C`/`POSIX` locales, which name no language.
    pub fn from_locale(value: &str) -> Option<Lang> {
        let value = value.trim();
        if value.is_empty() || value == "C" || value == "POSIX" || value.starts_with("C.") {
            return None;
        }
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("zh") {
            Some(Lang::ZhCn)
        } else {
            Some(Lang::En)
        }
    }

    /// Picks the language from the environment as POSIX locales do: the first of `LC_ALL`,
    /// `LC_MESSAGES` and `LANG` that is set and not empty decides, so `LC_ALL=C` selects English
    /// whatever `LANG` is. English when none is set.
    pub fn from_env() -> Lang {
        Lang::from_vars(|name| std::env::var(name).ok())
    }

    /// Picks the language as [`Lang::from_env`] does, from the variables `get` returns.
    fn from_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|name| get(name))
            .find(|value| !value.trim().is_empty())
            .and_then(|value| Lang::from_locale(&value))
            .unwrap_or(Lang::En)
    }

    /// Returns the tag used on the command line and in the catalogue file name.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// A user-facing text: a catalogue key with named arguments, rendered late in the chosen language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Catalogue key, such as `etcd.health.unreachable`.
    pub key: &'static str,
    /// Values substituted for `{name}` placeholders.
    pub args: Vec<(&'static str, String)>,
}

impl Message {
    /// Creates a message with no arguments.
    pub fn new(key: &'static str) -> Self {
        Message { key, args: Vec::new() }
    }

    /// Adds the argument `name`, shown where the text has `{name}`.
    pub fn arg(mut self, name: &'static str, value: impl fmt::Display) -> Self {
        self.args.push((name, value.to_string()));
        self
    }

    /// Renders the message in `lang`, falling back to English and then to the bare key.
    pub fn render(&self, lang: Lang) -> String {
        let template = lookup(lang, self.key)
            .or_else(|| lookup(Lang::En, self.key))
            .unwrap_or(self.key);
        fill(template, &self.args)
    }
}

/// Errors and results that can describe themselves in the user's language.
pub trait Localize {
    /// Returns the message for this value.
    fn message(&self) -> Message;

    /// Returns what the user can do next, when the value is an error the user can fix.
    fn hint(&self) -> Option<Message> {
        None
    }
}

/// Renders `key` with `args` in `lang`; a shorthand for one-off texts in the binary.
pub fn tr(lang: Lang, key: &'static str, args: &[(&'static str, &dyn fmt::Display)]) -> String {
    let mut message = Message::new(key);
    for (name, value) in args {
        message = message.arg(name, value);
    }
    message.render(lang)
}

fn fill(template: &str, args: &[(&'static str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(arg, _)| *arg == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

type Catalog = HashMap<String, String>;

fn catalog(lang: Lang) -> &'static Catalog {
    static EN: OnceLock<Catalog> = OnceLock::new();
    static ZH: OnceLock<Catalog> = OnceLock::new();
    match lang {
        Lang::En => EN.get_or_init(|| parse(include_str!(concat!(env!("OUT_DIR"), "/en.toml")))),
        Lang::ZhCn => ZH.get_or_init(|| parse(include_str!(concat!(env!("OUT_DIR"), "/zh-CN.toml")))),
    }
}

fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    catalog(lang).get(key).map(String::as_str)
}

fn parse(source: &str) -> Catalog {
    // The catalogues are compiled in, so a syntax error is a build defect that the unit tests catch.
    let table: toml::Table = toml::from_str(source).unwrap_or_default();
    table
        .into_iter()
        .filter_map(|(key, value)| value.as_str().map(|text| (key, text.to_owned())))
        .collect()
}

/// Returns every key of the catalogue of `lang`, sorted; used by tests of other crates.
pub fn keys(lang: Lang) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = catalog(lang).keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[cfg(test)]
mod tests {
    #[test]
    fn locale_variables_by_precedence() {
        let pick = |vars: &[(&str, &str)]| Lang::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()));
        assert_eq!(pick(&[("LANG", "zh_CN.UTF-8")]), Lang::ZhCn);
        assert_eq!(pick(&[("LC_ALL", "C"), ("LANG", "zh_CN.UTF-8")]), Lang::En, "LC_ALL=C wins over LANG");
        assert_eq!(pick(&[("LC_ALL", ""), ("LC_MESSAGES", "zh_CN.UTF-8"), ("LANG", "en_US.UTF-8")]), Lang::ZhCn, "an empty LC_ALL is skipped");
        assert_eq!(pick(&[]), Lang::En);
    }

    use super::*;

    #[test]
    fn catalogues_parse_and_hold_same_keys() {
        let en: toml::Table = toml::from_str(include_str!(concat!(env!("OUT_DIR"), "/en.toml"))).unwrap();
        let zh: toml::Table = toml::from_str(include_str!(concat!(env!("OUT_DIR"), "/zh-CN.toml"))).unwrap();
        let missing_in_zh: Vec<_> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        let missing_in_en: Vec<_> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(missing_in_zh.is_empty(), "keys missing in zh-CN: {missing_in_zh:?}");
        assert!(missing_in_en.is_empty(), "keys missing in en: {missing_in_en:?}");
    }

    #[test]
    fn placeholders_match_between_languages() {
        for key in keys(Lang::En) {
            let names = |text: &str| {
                let mut found: Vec<String> = text
                    .split('{')
                    .skip(1)
                    .filter_map(|part| part.split_once('}').map(|(name, _)| name.to_owned()))
                    .collect();
                found.sort();
                found.dedup();
                found
            };
            let en = names(lookup(Lang::En, key).unwrap());
            let zh = names(lookup(Lang::ZhCn, key).unwrap());
            // Help templates are clap syntax, where each language places its own headings.
            if key == "help.template" {
                continue;
            }
            assert_eq!(en, zh, "placeholders differ for {key}");
        }
    }

    #[test]
    fn locale_strings_pick_language() {
        assert_eq!(Lang::from_locale("zh_CN.UTF-8"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_locale("zh-CN"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_locale("en_US.UTF-8"), Some(Lang::En));
        assert_eq!(Lang::from_locale("C.UTF-8"), None);
        assert_eq!(Lang::from_locale(""), None);
    }

    #[test]
    fn fill_keeps_unknown_placeholders() {
        let args = vec![("a", "1".to_owned())];
        assert_eq!(fill("x {a} {b} {", &args), "x 1 {b} {");
    }
}
