//! The distribution (registry v2) protocol: auth challenges, blobs, manifests,
//! indexes and retries. Knows nothing of the local store.
