//! Where expansion looks variables up: the [`Env`] trait and the
//! environments the builder and the tests pass.

use std::collections::{BTreeMap, HashMap};

/// Variable lookup for expansion. `None` means "unset", which differs from
/// set-but-empty for `${v-w}`, `${v?m}` and friends.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Ordered `(name, value)` list; a later entry shadows an earlier one, as
/// when ENV redefines a variable.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// An environment with nothing set.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// Builds an environment from `KEY=value` strings (a missing `=` means an
/// empty value), the way BuildKit's `EnvsFromSlice` does.
pub fn env_from_pairs<I, S>(items: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items
        .into_iter()
        .map(|s| {
            let s = s.as_ref();
            match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.to_string(), String::new()),
            }
        })
        .collect()
}
