//! Container IDs (64 random hex digits) and docker-like random names.

use std::fs;
use std::io::Read;

use crate::error::{Error, Result};

/// 64 random hex digits.
pub fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(Error::io("/dev/urandom"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: [&str; 24] = [
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];
const NAMES: [&str; 24] = [
    "babbage", "curie", "darwin", "einstein", "fermi", "galileo", "hopper", "johnson", "kepler",
    "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "tesla",
    "thompson", "turing", "volta", "wilson", "wozniak", "yalow", "zuse",
];

/// A docker-like random name derived from the ID's bytes.
pub fn random_name(id: &str, attempt: usize) -> String {
    let n = usize::from_str_radix(&id[..8], 16).unwrap_or(0);
    let a = ADJECTIVES[n % ADJECTIVES.len()];
    let b = NAMES[(n / ADJECTIVES.len()) % NAMES.len()];
    if attempt == 0 {
        format!("{a}_{b}")
    } else {
        format!("{a}_{b}{attempt}")
    }
}
