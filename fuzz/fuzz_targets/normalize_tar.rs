//! `layer::decompressed` + `layer::normalize_tar` on arbitrary bytes. On
//! success the output must be a tar whose every name is relative and free of
//! `..`, and normalising that output again must give the same bytes.
#![no_main]

use std::io::Read;
use std::path::{Component, Path};

use image_store::layer::{decompressed, normalize_tar};
use libfuzzer_sys::fuzz_target;

/// Input over 64 MiB decompressed is cut off: a bomb is not a bug here.
const LIMIT: u64 = 64 << 20;

fn check_name(what: &str, name: &[u8]) {
    let s = String::from_utf8_lossy(name);
    let p = Path::new(s.as_ref());
    assert!(!s.starts_with('/'), "{what} {s:?} is absolute");
    assert!(
        p.components().all(|c| matches!(c, Component::Normal(_))),
        "{what} {s:?} is not clean"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = decompressed(data) else {
        return;
    };
    let mut out = Vec::new();
    if normalize_tar(reader.take(LIMIT), &mut out).is_err() {
        return;
    }
    let mut archive = tar::Archive::new(out.as_slice());
    for entry in archive.entries().expect("own output is a tar") {
        let entry = entry.expect("own output entry reads");
        check_name("entry", &entry.path_bytes());
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let target = entry.link_name_bytes().expect("hard link has a target");
            check_name("hard link target", &target);
        }
    }
    let mut again = Vec::new();
    normalize_tar(out.as_slice(), &mut again).expect("own output normalises");
    assert!(again == out, "normalize_tar is not idempotent");
});
