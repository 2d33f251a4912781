//! From image to container, above `runner` and `image-store`: the layer
//! stack a container or build step sees, the container records kept in
//! the store's `kiln/containers/`, and the checks that settle what killed
//! kiln processes left behind.

pub mod check;
pub mod error;
pub mod records;

pub use error::{Error, Result};
pub use records::{container_name, Container, Containers, State};
