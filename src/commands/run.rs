//! `kiln run`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type RunArgs = NotBuilt;

pub fn run(_ctx: &Ctx, _args: RunArgs) -> Result<Status> {
    not_built("run")
}
