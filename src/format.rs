//! Human-readable sizes, ages and tables in docker's style (in cli-format).

pub use cli_format::units::*;
