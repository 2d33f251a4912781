//! The JSON documents kiln reads from images, archives and registries:
//! image-store's Manifest / Index / ImageConfig / Descriptor, registry-client's
//! index platform selection and Descriptor, and the digest/reference/platform
//! strings inside them. Properties: no panic, and what parses re-serialises to
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
    fixpoint::<image_store::Manifest>(data);
    fixpoint::<image_store::model::Index>(data);
    fixpoint::<image_store::ImageConfig>(data);
    fixpoint::<image_store::Descriptor>(data);
    fixpoint::<registry_client::Descriptor>(data);
    for want in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"] {
        let _ = registry_client::select_platform(data, &want.parse().unwrap());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = s.parse::<image_store::Digest>() {
            assert_eq!(d.to_string().parse::<image_store::Digest>().ok(), Some(d));
        }
        let _ = s.parse::<registry_client::Digest>();
        let _ = s.parse::<image_store::Reference>();
        let _ = s.parse::<registry_client::Reference>();
        let _ = s.parse::<registry_client::Platform>();
    }
});
