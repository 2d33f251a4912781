//! The CLI side of moving images: registry flags and the progress display.
//! The transfers themselves are the `transfer` crate's.

pub mod opts;
pub mod progress;

pub use ::transfer::runtime;
