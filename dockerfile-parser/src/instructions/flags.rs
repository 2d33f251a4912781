//! Instruction flags (`--name[=value]`), checked against the flags each
//! instruction declares, with BuildKit's `BFlags` rules and messages.

use crate::error::{suggest, ErrorKind};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    /// May be repeated; every value is kept.
    Strings,
}

#[derive(Debug, Default)]
pub(crate) struct FlagValues {
    values: HashMap<&'static str, Vec<String>>,
}

impl FlagValues {
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }
    /// `None` when the flag was not given.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .map(|v| v.last().is_some_and(|s| s == "true"))
    }
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

pub(crate) fn parse_flags(
    raw: &[String],
    declared: &[(&'static str, FlagType)],
) -> Result<FlagValues, ErrorKind> {
    let mut out = FlagValues::default();
    for a in raw {
        if a == "--" {
            break;
        }
        let Some(body) = a.strip_prefix("--") else {
            return Err(ErrorKind::Invalid(format!(
                "arg should start with -- : {a}"
            )));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(key, ty)) = declared.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = declared.iter().map(|(n, _)| *n).collect();
            return Err(ErrorKind::UnknownFlag {
                flag: name.to_string(),
                suggestion: suggest(name, &names).map(str::to_string),
            });
        };
        if ty != FlagType::Strings && out.values.contains_key(key) {
            return Err(ErrorKind::Invalid(format!(
                "duplicate flag specified: --{name}"
            )));
        }
        let v = match ty {
            FlagType::Bool => {
                if value == Some("") {
                    return Err(ErrorKind::Invalid(format!(
                        "missing a value on flag: --{name}"
                    )));
                }
                match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("true") => "true".to_string(),
                    Some("false") => "false".to_string(),
                    Some(_) => {
                        return Err(ErrorKind::Invalid(format!(
                            "expecting boolean value for flag --{name}, not: {}",
                            value.unwrap_or_default()
                        )))
                    }
                }
            }
            FlagType::String | FlagType::Strings => match value {
                Some(v) => v.to_string(),
                None => {
                    return Err(ErrorKind::Invalid(format!(
                        "missing a value on flag: --{name}"
                    )))
                }
            },
        };
        out.values.entry(key).or_default().push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rules() {
        let decl = [
            ("link", FlagType::Bool),
            ("from", FlagType::String),
            ("exclude", FlagType::Strings),
        ];
        let f = parse_flags(
            &raw(&["--link", "--from=a", "--exclude=x", "--exclude=y"]),
            &decl,
        )
        .unwrap();
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.strings("exclude"), ["x", "y"]);
        let e = parse_flags(&raw(&["--form=a"]), &decl)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unknown flag: --form (did you mean from?)");
        assert!(parse_flags(&raw(&["--from=a", "--from=b"]), &decl).is_err());
        assert!(parse_flags(&raw(&["--from"]), &decl).is_err());
        assert!(parse_flags(&raw(&["--link=maybe"]), &decl).is_err());
        assert_eq!(
            parse_flags(&raw(&["--link=FALSE"]), &decl)
                .unwrap()
                .bool("link"),
            Some(false)
        );
    }
}
