//! WORKDIR: the directory and its missing parents are made (`mkdir -p`
//! as the current USER) in a layer of their own.

use dockerfile_parser::instructions::Command;

use super::{copy_layer as copy, owner};
use crate::cache::{KeyHasher, Record};
use crate::error::BuildError;
use crate::stages::{StageRun, State};

impl StageRun<'_, '_> {
    pub(crate) fn workdir_step(
        &mut self,
        cmd: &Command,
        state: &mut State,
        mut key: KeyHasher,
    ) -> Result<(Record, String), BuildError> {
        let lowers = self.lowers(state)?;
        let cfg = state.config.container_config();
        let wd = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
        // BuildKit: `mkdir -p` as the current USER (its uid and gid
        // own every directory it creates).
        let (uid, gid) = match cfg.user.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => owner::resolve(&lowers, u),
            None => (0, 0),
        };
        key.part("workdir-owner", format!("{uid}:{gid}").as_bytes());
        let missing = lowers
            .missing_dirs(&wd)
            .map_err(|e| BuildError::at(cmd, format!("WORKDIR {wd}: {e}")))?;
        let k = key.finish();
        let now = self.now_secs;
        let rec = self.lookup_or(state, &k, cmd, &[], |b, _| {
            let planned: Vec<copy::Planned> = missing
                .iter()
                .map(|d| copy::Planned {
                    dest: d.into(),
                    kind: copy::Kind::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: now,
                })
                .collect();
            b.planned_layer(&planned, cmd, None, None)
        })?;
        Ok((rec, k))
    }
}
