//! Every human-readable string of the portal comes from one message catalog, in Chinese
//! (the default) and English.
//!
//! The catalog is seven TOML files under `src/portal/messages/`, one per area (`core`,
//! `public`, `provider`, `developer`, `review`, `market`, `supervisor`), compiled into the
//! binary with `include_str!` and parsed once, on first use. Each file is a table of
//! message keys, each with a `zh` and an `en` text:
//!
//! ```toml
//! ["public.catalog.title"]
//! zh = "开放数据目录"
//! en = "Open data catalog"
//! ```
//!
//! A key written as nested tables (`[public.catalog.title]`) means the same. Messages
//! with values name them in braces (`"{count} datasets"`) and are filled by [`tf`].
//!
//! A missing message shows its key rather than failing the page; the unit tests below
//! make a missing one a build failure instead: every file parses, every key has both
//! languages with the same placeholders, no key is in two files, and every `t(…)`/`tf(…)`
//! call with a literal key anywhere in `src/portal/*.rs` names a key of the catalog.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, PoisonError};

/// A language of the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese, the default.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag for `<html lang>`: "zh-CN" or "en".
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The short name the language cookie and the switch form use: "zh" or "en".
    pub fn short(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The language of a short name ("zh" or "en"; also "zh-CN"), if it is one.
    pub fn from_short(name: &str) -> Option<Lang> {
        match name {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (what the switch offers).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// The catalog files, by area, as compiled in.
const FILES: [(&str, &str); 7] = [
    ("core", include_str!("messages/core.toml")),
    ("public", include_str!("messages/public.toml")),
    ("provider", include_str!("messages/provider.toml")),
    ("developer", include_str!("messages/developer.toml")),
    ("review", include_str!("messages/review.toml")),
    ("market", include_str!("messages/market.toml")),
    ("supervisor", include_str!("messages/supervisor.toml")),
];

/// One message in both languages.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Message {
    zh: Option<String>,
    en: Option<String>,
}

/// The messages of one file's text, keyed by their dotted key, in file order.
fn parse_file(text: &str) -> Result<Vec<(String, Message)>, toml::de::Error> {
    let table: toml::Table = toml::from_str(text)?;
    let mut out = Vec::new();
    flatten("", &table, &mut out);
    Ok(out)
}

/// Walks nested tables: a table with a `zh` or `en` string is a message at its dotted
/// path; any other table is a level of the key.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, Message)>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some(inner) = value.as_table() else {
            // A bare value is a malformed message; keep it so the test names it.
            out.push((key, Message { zh: None, en: None }));
            continue;
        };
        if inner.contains_key("zh") || inner.contains_key("en") {
            let text = |lang: &str| inner.get(lang).and_then(|v| v.as_str()).map(String::from);
            out.push((
                key,
                Message {
                    zh: text("zh"),
                    en: text("en"),
                },
            ));
        } else {
            flatten(&key, inner, out);
        }
    }
}

/// The catalog: key → (Chinese, English), leaked once so that [`t`] hands out
/// `&'static str` (a few hundred short strings, for the life of the process).
static CATALOG: LazyLock<HashMap<&'static str, (&'static str, &'static str)>> =
    LazyLock::new(|| {
        let mut catalog = HashMap::new();
        for (area, text) in FILES {
            let messages = match parse_file(text) {
                Ok(messages) => messages,
                Err(e) => {
                    // The unit test fails the build on this; a running server shows keys.
                    tracing::error!(area, error = %e, "a portal message file does not parse");
                    continue;
                }
            };
            for (key, message) in messages {
                let (Some(zh), Some(en)) = (message.zh, message.en) else {
                    continue;
                };
                let key: &'static str = Box::leak(key.into_boxed_str());
                let zh: &'static str = Box::leak(zh.into_boxed_str());
                let en: &'static str = Box::leak(en.into_boxed_str());
                catalog.entry(key).or_insert((zh, en));
            }
        }
        catalog
    });

/// Keys asked for but missing, kept so that [`t`] can return them as `&'static str`.
/// Bounded: a key built from data (say, an unknown theme) could otherwise grow it
/// without end.
static MISSING: LazyLock<Mutex<HashSet<&'static str>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// The most missing keys remembered; beyond it, a missing message shows as "?".
const MISSING_CAP: usize = 1024;

/// The message `key` in `lang`; the key itself if missing (a unit test fails on any
/// key used in src/portal/*.rs that is not in the catalog, or lacks zh or en).
pub fn t(lang: Lang, key: &str) -> &'static str {
    if let Some(&(zh, en)) = CATALOG.get(key) {
        return match lang {
            Lang::Zh => zh,
            Lang::En => en,
        };
    }
    let mut missing = MISSING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = missing.get(key) {
        return known;
    }
    if missing.len() >= MISSING_CAP {
        return "?";
    }
    tracing::warn!(key, "portal message missing from the catalog");
    let leaked: &'static str = Box::leak(key.to_string().into_boxed_str());
    missing.insert(leaked);
    leaked
}

/// The message `key` in `lang` with each `{name}` replaced by its value from `args`
/// (values are inserted as they are: the templates escape them when they render). A
/// placeholder without a value stays as it is.
pub fn tf(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    fill(t(lang, key), args)
}

/// Fills `{name}` placeholders in one pass, so a value that holds braces is never
/// filled again.
fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        match args.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The `{name}` placeholders of a message, for the test that both languages agree.
#[cfg(test)]
fn placeholders(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        names.insert(after[..close].to_string());
        rest = &after[close + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_file_parses_and_every_key_has_both_languages_once() {
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut problems = Vec::new();
        for (area, text) in FILES {
            let messages = match parse_file(text) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(format!("messages/{area}.toml does not parse: {e}"));
                    continue;
                }
            };
            for (key, message) in messages {
                match (&message.zh, &message.en) {
                    (Some(zh), Some(en)) => {
                        if zh.trim().is_empty() || en.trim().is_empty() {
                            problems.push(format!("{area}: {key} has an empty text"));
                        }
                        if placeholders(zh) != placeholders(en) {
                            problems.push(format!(
                                "{area}: {key} has different placeholders in zh and en"
                            ));
                        }
                    }
                    _ => problems.push(format!("{area}: {key} lacks zh or en")),
                }
                if let Some(first) = seen.insert(key.clone(), area) {
                    problems.push(format!("{key} is in both {first}.toml and {area}.toml"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(seen.len() >= 20, "only {} messages", seen.len());
    }

    #[test]
    fn every_literal_key_used_in_the_portal_sources_is_in_the_catalog() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/portal");
        // A call of t or tf (also `i18n::t`) whose first argument is a name or a path
        // (`lang`, `viewer.lang`, `Lang::En`) and whose second is a string literal.
        let call =
            regex::Regex::new(r#"\btf?\(\s*[A-Za-z_][A-Za-z0-9_.:]*\s*,\s*"([^"\\]+)""#).unwrap();
        let mut used = 0;
        let mut missing = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "src/portal has only {files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for capture in call.captures_iter(&text) {
                used += 1;
                let key = &capture[1];
                if !CATALOG.contains_key(key) {
                    missing.push(format!("{}: {key}", path.display()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys not in the catalog:\n{}",
            missing.join("\n")
        );
        assert!(used > 0, "no t(…) call found: is the pattern right?");
    }

    #[test]
    fn chinese_is_the_default_and_both_languages_are_served() {
        assert_eq!(Lang::default(), Lang::Zh);
        assert_eq!(Lang::Zh.code(), "zh-CN");
        assert_eq!(Lang::En.code(), "en");
        assert_eq!(t(Lang::En, "core.signin.submit"), "Sign in");
        assert_eq!(t(Lang::Zh, "core.signin.submit"), "登录");
        assert_eq!(Lang::from_short("en"), Some(Lang::En));
        assert_eq!(Lang::from_short("fr"), None);
    }

    #[test]
    fn a_missing_key_shows_itself() {
        let key = String::from("core.no-such-message-for-the-test");
        assert_eq!(t(Lang::En, &key), key);
        assert_eq!(t(Lang::Zh, &key), key);
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_kept() {
        assert_eq!(
            fill("{a} and {b}", &[("a", "{b}"), ("b", "x")]),
            "{b} and x"
        );
        assert_eq!(fill("{unknown} {a", &[("a", "1")]), "{unknown} {a");
        assert_eq!(fill("no braces", &[]), "no braces");
        assert_eq!(
            tf(Lang::En, "core.signed_in_as", &[("role", "Provider")]),
            "Signed in as Provider"
        );
    }
}
