//! One module per kind of step, and what steps share: the layer stack
//! below a step, read-only views of it, RUN's output.

pub mod copy_plan;
pub mod git;
pub mod lower;
pub mod output;
pub mod owner;
pub mod run;
pub mod view;
