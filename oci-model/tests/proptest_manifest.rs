//! Property tests mirroring the registry side of the `oci_json` fuzz target
//! (fuzz/), with fixed case counts: platform selection never panics on
//! arbitrary input, and on a well-formed index it returns an entry whose
//! platform matches (or fails exactly when none does).

use oci_model::{Descriptor, Index, Platform, PlatformNotFound};
use proptest::prelude::*;
use serde_json::json;

/// Parses an index and picks `want`'s entry, as a pull does.
fn select_platform(index: &[u8], want: &Platform) -> Result<Descriptor, String> {
    let index: Index = serde_json::from_slice(index).map_err(|e| format!("not an index: {e}"))?;
    let d = index
        .select(want)
        .map_err(|e: PlatformNotFound| e.to_string())?;
    Ok(d.clone())
}

fn platform() -> impl Strategy<Value = Platform> {
    (
        prop::sample::select(vec!["linux", "windows", "unknown", ""]),
        prop::sample::select(vec![
            "amd64", "arm64", "arm", "x86_64", "aarch64", "386", "unknown",
        ]),
        prop::option::of(prop::sample::select(vec!["v6", "v7", "v8", ""])),
    )
        .prop_map(|(os, arch, variant)| Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = select_platform(&data, &Platform::host());
        let _ = serde_json::from_slice::<Descriptor>(&data);
        if let Ok(s) = std::str::from_utf8(&data) {
            let _ = s.parse::<Platform>();
            let _ = s.parse::<oci_model::Reference>();
            let _ = s.parse::<oci_model::Digest>();
        }
    }

    #[test]
    fn selection_returns_a_matching_entry(
        entries in prop::collection::vec(prop::option::of(platform()), 0..6),
        want in platform(),
    ) {
        let manifests: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut d = json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i),
                    "size": i,
                });
                if let Some(p) = p {
                    d["platform"] = serde_json::to_value(p).unwrap();
                }
                d
            })
            .collect();
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap();
        let any_match = entries.iter().flatten().any(|p| want.matches(p));
        match select_platform(&index, &want) {
            Ok(d) => {
                let p = d.platform.expect("selected entry has a platform");
                prop_assert!(want.matches(&p), "{p:?} does not match {want:?}");
            }
            Err(_) => prop_assert!(!any_match, "a matching entry was not selected"),
        }
    }
}
