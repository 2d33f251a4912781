//! `kiln build`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type BuildArgs = NotBuilt;

pub fn run(_ctx: &Ctx, _args: BuildArgs) -> Result<Status> {
    not_built("build")
}
