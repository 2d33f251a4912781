//! docker's output conventions for kiln's commands: `--format` Go templates
//! ([`template`]), tables aligned as Go's tabwriter does ([`tabwriter`]),
//! human sizes and ages ([`units`]), and the rows docker's list commands
//! print, with docker's field names ([`rows`]).

pub mod rows;
pub mod tabwriter;
pub mod template;
pub mod units;

pub use template::{render_one, Format, FormatError};
