//! Property tests mirroring the `normalize_tar` fuzz target (fuzz/), with
//! fixed case counts: arbitrary bytes never panic; on hostile tars (names
//! with `..`, `.`, empty and absolute parts, links, duplicates) the output
//! never holds an absolute or `..` name, a name that escapes is refused, and
//! normalising the output again gives the same bytes; compression does not
//! change the result.

use std::io::{Read, Write};
use std::path::{Component, Path};

use image_store::layer::{clean_path, decompressed, normalize_tar};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Fifo,
}

fn name() -> impl Strategy<Value = String> {
    let part = prop::sample::select(vec!["a", "b", "é", "..", ".", "", "c.d", ".wh.a"]);
    (
        any::<bool>(),
        prop::collection::vec(part, 1..5),
        any::<bool>(),
    )
        .prop_map(|(abs, parts, slash)| {
            let mut s = if abs { "/".to_string() } else { String::new() };
            s.push_str(&parts.join("/"));
            if slash {
                s.push('/');
            }
            s
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Kind::File),
        Just(Kind::Dir),
        name().prop_map(Kind::Symlink),
        name().prop_map(Kind::Hardlink),
        Just(Kind::Fifo),
    ]
}

/// A tar written header by header, without the `tar` crate's own path
/// checks, so that hostile names get through.
fn raw_tar(entries: &[(String, Kind)]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        let n = bytes.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&bytes[..n]);
        h.set_mode(0o644);
        h.set_mtime(1);
        let data: &[u8] = match kind {
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                d
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            Kind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                &[]
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                h.set_entry_type(if matches!(kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                let t = t.as_bytes();
                let n = t.len().min(99);
                h.as_old_mut().linkname[..n].copy_from_slice(&t[..n]);
                &[]
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, data).unwrap();
    }
    out.into_inner().unwrap()
}

fn normalize(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let reader = decompressed(input).map_err(|e| e.to_string())?;
    normalize_tar(reader, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn assert_clean(what: &str, name: &[u8]) {
    let s = String::from_utf8_lossy(name);
    assert!(!s.starts_with('/'), "{what} {s:?} is absolute");
    assert!(
        Path::new(s.as_ref())
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{what} {s:?} has a `.`, `..` or empty part"
    );
}

/// Checks the output's names and that a second pass changes nothing.
fn check_output(out: &[u8]) {
    let mut archive = tar::Archive::new(out);
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        assert_clean("entry", &e.path_bytes());
        if e.header().entry_type().is_hard_link() {
            assert_clean("hard link target", &e.link_name_bytes().unwrap());
        }
    }
    assert_eq!(
        normalize(out).expect("own output normalises"),
        out,
        "not idempotent"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(out) = normalize(&data) {
            check_output(&out);
        }
    }

    #[test]
    fn hostile_tars_normalise_to_clean_idempotent_output(
        entries in prop::collection::vec((name(), kind()), 0..8),
    ) {
        let input = raw_tar(&entries);
        let escapes = entries.iter().any(|(n, _)| clean_path(n).is_err());
        match normalize(&input) {
            Ok(out) => {
                prop_assert!(!escapes, "an escaping name was accepted: {entries:?}");
                check_output(&out);
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn corrupted_tars_never_panic(
        entries in prop::collection::vec((name(), kind()), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut input = raw_tar(&entries);
        for (at, byte) in flips {
            let i = at.index(input.len());
            input[i] = byte;
        }
        if let Ok(out) = normalize(&input) {
            check_output(&out);
        }
    }

    #[test]
    fn compression_does_not_change_the_result(
        entries in prop::collection::vec((name(), kind()), 0..6),
    ) {
        let plain = raw_tar(&entries);
        let want = normalize(&plain);
        let zst = zstd::encode_all(plain.as_slice(), 1).unwrap();
        prop_assert_eq!(&normalize(&gzip(&plain)), &want);
        prop_assert_eq!(&normalize(&zst), &want);
    }
}

#[test]
fn truncated_compressed_input_is_an_error_not_a_panic() {
    let plain = raw_tar(&[("a".into(), Kind::File(vec![7; 5000]))]);
    let gz = gzip(&plain);
    for cut in [1, 2, 10, gz.len() / 2, gz.len() - 1] {
        let mut r = match decompressed(&gz[..cut]) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
        assert!(normalize(&gz[..cut]).is_err(), "cut at {cut} accepted");
    }
}
