//! `kiln export`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type ExportArgs = NotBuilt;

pub fn run(_ctx: &Ctx, _args: ExportArgs) -> Result<Status> {
    not_built("export")
}
