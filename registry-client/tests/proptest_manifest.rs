//! Property tests mirroring the registry side of the `oci_json` fuzz target
//! (fuzz/), with fixed case counts: platform selection never panics on
//! arbitrary input, and on a well-formed index it returns an entry whose
//! platform matches (or fails exactly when none does).

use proptest::prelude::*;
use registry_client::manifest::{select_platform, Descriptor, Platform};
use serde_json::json;

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
            let _ = s.parse::<registry_client::Reference>();
            let _ = s.parse::<registry_client::Digest>();
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
