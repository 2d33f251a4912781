//! The local image store: an OCI image layout on disk plus kiln's own
//! bookkeeping beside it (locks, unpacked layers, containers).
