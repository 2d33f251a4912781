//! The JSON documents kiln reads from images, archives and registries:
//! oci-model's Manifest / Index / ImageConfig / Descriptor, index platform
//! selection, and the digest/reference/platform strings inside them. Properties: no panic, and what parses re-serialises to
//! a fixpoint (serialise → parse → serialise gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn fixpoint<T: Serialize + DeserializeOwned>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let once = serde_json::to_vec(&v).expect("serialises");
        let back: T = serde_json::from_slice(&once).expect("own output parses");
        let twice = serde_json::to_vec(&back).expect("serialises again");
        assert_eq!(
            String::from_utf8_lossy(&once),
            String::from_utf8_lossy(&twice),
            "{} is not a serialisation fixpoint",
            std::any::type_name::<T>()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    fixpoint::<oci_model::Manifest>(data);
    fixpoint::<oci_model::Index>(data);
    fixpoint::<oci_model::ImageConfig>(data);
    fixpoint::<oci_model::Descriptor>(data);
    if let Ok(index) = serde_json::from_slice::<oci_model::Index>(data) {
        for want in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"] {
            let _ = index.select(&want.parse().unwrap());
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = s.parse::<oci_model::Digest>() {
            assert_eq!(d.to_string().parse::<oci_model::Digest>().ok(), Some(d));
        }
        if let Ok(r) = s.parse::<oci_model::Reference>() {
            let _ = (r.normalized(), r.remote(), r.candidates());
        }
        let _ = s.parse::<oci_model::Platform>();
    }
});
