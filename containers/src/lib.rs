//! From image to container, above `runner` and `image-store`: the layer
//! stack a container or build step sees, the container records kept in
//! the store's `kiln/containers/`, and the checks that settle what killed
//! kiln processes left behind.

pub mod check;
pub mod commit;
pub mod control;
pub mod error;
pub mod export;
pub mod layers;
pub mod mountpoints;
pub mod names;
pub mod network;
pub mod options;
pub mod records;
pub mod run;
pub mod runtime;
pub mod spec;
pub mod view;

pub use error::{Error, Result};
pub use layers::LayerStack;
pub use records::{container_name, Container, Containers, State};
