//! Property tests mirroring the `oci_json` fuzz target (fuzz/), with fixed
//! case counts: manifest, index, config and descriptor parsing never panics
//! on arbitrary or mutated JSON, and whatever parses re-serialises to a
//! fixpoint (serialise → parse → serialise gives the same bytes).

use oci_model::{Descriptor, Digest, ImageConfig, Index, Manifest};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn fixpoint<T: Serialize + DeserializeOwned>(data: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let once = serde_json::to_vec(&v).unwrap();
        let back: T = serde_json::from_slice(&once)
            .map_err(|e| TestCaseError::fail(format!("own output does not parse: {e}")))?;
        prop_assert_eq!(serde_json::to_vec(&back).unwrap(), once);
    }
    Ok(())
}

fn all(data: &[u8]) -> Result<(), TestCaseError> {
    fixpoint::<Manifest>(data)?;
    fixpoint::<Index>(data)?;
    fixpoint::<ImageConfig>(data)?;
    fixpoint::<Descriptor>(data)?;
    Ok(())
}

/// JSON values biased towards the keys these documents use.
fn value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "digest",
        "size",
        "annotations",
        "platform",
        "architecture",
        "os",
        "rootfs",
        "diff_ids",
        "history",
        "Env",
        "Cmd",
        "Healthcheck",
        "urls",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(format!("sha256:{}", "a".repeat(64)))),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn manifest() -> Value {
    let d = format!("sha256:{}", "b".repeat(64));
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": 9}],
        "annotations": {"a": "b"}
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        all(&data)?;
    }

    #[test]
    fn arbitrary_json_round_trips(v in value()) {
        all(&serde_json::to_vec(&v).unwrap())?;
    }

    #[test]
    fn mutated_manifests_round_trip(key in "[a-zA-Z]{1,12}", v in value(), top in any::<bool>()) {
        let mut m = manifest();
        if top {
            m[&key] = v;
        } else {
            m["config"][&key] = v;
        }
        all(&serde_json::to_vec(&m).unwrap())?;
    }

    #[test]
    fn digests_parse_and_print_back(s in "(sha256:)?[0-9a-fA-F]{0,66}") {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d.clone());
            prop_assert_eq!(d.to_string(), s);
        }
    }
}

/// Found by this file's properties: without serde_json's `float_roundtrip`
/// an unknown float field of a config (kept in `extra`) changed by one ULP
/// every time kiln re-wrote the config (1.3235936909244859e178 read back as
/// 1.323593690924486e178).
#[test]
fn unknown_float_fields_survive_a_rewrite() {
    for raw in [
        r#"{"architecture":"amd64","os":"linux","x":1.3235936909244859e178}"#,
        r#"{"architecture":"amd64","os":"linux","x":-3.786944056987377e-233}"#,
    ] {
        let cfg: ImageConfig = serde_json::from_str(raw).unwrap();
        let once = serde_json::to_string(&cfg).unwrap();
        let again: ImageConfig = serde_json::from_str(&once).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), once, "{raw}");
        let want: f64 = raw
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('}')
            .parse()
            .unwrap();
        assert_eq!(cfg.extra["x"].as_f64(), Some(want), "{raw}");
    }
}
