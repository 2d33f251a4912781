//! The variables a stage's instructions are expanded with: its build args
//! under the image's ENV. Hash indexes over both make each lookup, each ENV
//! pair and each ARG O(1), so a Dockerfile with 100k ENV or ARG lines builds
//! in linear time (the env vector used to be cloned and re-scanned at
//! every instruction).

use std::collections::{HashMap, HashSet};

use dockerfile_parser::shell::Env;

/// Indexes kept next to a stage's `args`, `declared` and config env.
#[derive(Debug, Clone, Default)]
pub struct VarIndex {
    /// Arg name → its position in the stage's `args`.
    arg_pos: HashMap<String, usize>,
    declared: HashSet<String>,
    /// Env key → its position in the config's env (the last one wins).
    env_pos: HashMap<String, usize>,
    /// How many env entries `env_pos` covers.
    env_seen: usize,
}

fn key_of(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

fn value_of(entry: &str) -> &str {
    entry.split_once('=').map_or("", |(_, v)| v)
}

impl VarIndex {
    /// Indexes env entries added since the last call (a new base image's
    /// env the first time).
    pub fn sync(&mut self, env: &[String]) {
        if env.len() < self.env_seen {
            self.env_pos.clear();
            self.env_seen = 0;
        }
        for (i, e) in env.iter().enumerate().skip(self.env_seen) {
            self.env_pos.insert(key_of(e).to_string(), i);
        }
        self.env_seen = env.len();
    }

    /// ENV: replaces the variable where it is, or appends it.
    pub fn set_env(&mut self, env: &mut Vec<String>, key: &str, value: &str) {
        self.sync(env);
        let entry = format!("{key}={value}");
        match self.env_pos.get(key) {
            Some(&i) => env[i] = entry,
            None => {
                self.env_pos.insert(key.to_string(), env.len());
                env.push(entry);
                self.env_seen = env.len();
            }
        }
    }

    pub fn env_get<'e>(&self, env: &'e [String], key: &str) -> Option<&'e str> {
        match self.env_pos.get(key).and_then(|&i| env.get(i)) {
            Some(e) if key_of(e) == key => Some(value_of(e)),
            // Not indexed (or the env changed behind the index): look.
            _ if self.env_seen != env.len() || self.env_pos.contains_key(key) => env
                .iter()
                .rev()
                .find(|e| key_of(e) == key)
                .map(|e| value_of(e)),
            _ => None,
        }
    }

    /// ARG with a value: set where it is, or appended.
    pub fn set_arg(&mut self, args: &mut Vec<(String, String)>, name: &str, value: &str) {
        match self.arg_pos.get(name) {
            Some(&i) => args[i].1 = value.to_string(),
            None => {
                self.arg_pos.insert(name.to_string(), args.len());
                args.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub fn arg_get<'a>(&self, args: &'a [(String, String)], name: &str) -> Option<&'a str> {
        args.get(*self.arg_pos.get(name)?).map(|(_, v)| v.as_str())
    }

    /// Records a declared name; false when it was declared before.
    pub fn declare(&mut self, name: &str) -> bool {
        self.declared.insert(name.to_string())
    }
}

/// A stage's variables for word expansion: ENV over build args.
pub struct StageEnv<'a> {
    pub index: &'a VarIndex,
    pub args: &'a [(String, String)],
    pub env: &'a [String],
}

impl Env for StageEnv<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.index
            .env_get(self.env, name)
            .or_else(|| self.index.arg_get(self.args, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_over_args_and_updates_in_place() {
        let mut idx = VarIndex::default();
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let mut args = Vec::new();
        idx.sync(&env);
        idx.set_arg(&mut args, "A", "arg");
        idx.set_arg(&mut args, "B", "b");
        idx.set_arg(&mut args, "B", "b2");
        idx.set_env(&mut env, "A", "2");
        idx.set_env(&mut env, "C", "3");
        assert_eq!(env, ["PATH=/bin", "A=2", "C=3"]);
        assert_eq!(
            args,
            [("A".into(), "arg".into()), ("B".into(), "b2".into())]
        );
        let e = StageEnv {
            index: &idx,
            args: &args,
            env: &env,
        };
        assert_eq!(e.get("A"), Some("2"));
        assert_eq!(e.get("B"), Some("b2"));
        assert_eq!(e.get("C"), Some("3"));
        assert_eq!(e.get("D"), None);
        assert!(idx.declare("X") && !idx.declare("X"));
    }
}
