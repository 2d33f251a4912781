//! RUN: the command runs in a container over the stage's layers
//! (`run.rs`); what it changed becomes the layer.

use dockerfile_parser::instructions::{Command, Instruction, NetworkMode, Run};
use runner::spec::Network;

use crate::cache::{KeyHasher, Record};
use crate::error::BuildError;
use crate::stages::{EventKind, StageRun, State};
use crate::steps::run;

impl StageRun<'_, '_> {
    pub(crate) fn run_step(
        &mut self,
        cmd: &Command,
        instr: &Instruction,
        r: &Run,
        state: &mut State,
        mut key: KeyHasher,
    ) -> Result<(Record, String), BuildError> {
        let mounted = self.bind_mounts_key(r, state, cmd, &mut key)?;
        let k = key.finish();
        let network = self.network_for(instr);
        let bridge = self.bridge_for(instr);
        let snapshot = state.clone();
        let state_ref = &snapshot;
        let inputs: Vec<(String, String)> = state
            .args
            .iter()
            .map(|(n, v)| (format!("build arg {n}"), v.clone()))
            .chain(mounted)
            .collect();
        let stage_no = self.number();
        let shared = self.b;
        let print =
            move |stream, line: &str| shared.emit(stage_no, EventKind::Output(stream, line));
        let sink: Option<crate::steps::output::LineSink> =
            self.opts.capture_output.then_some(&print);
        let rec = self.lookup_or(state, &k, cmd, &inputs, |b, _| {
            let state = state_ref;
            let lowers = b.lowers(state)?;
            let dir = b.scratch_for("run");
            let mounts = b.run_mounts(r, state, cmd, &dir)?;
            let cfg = state.config.container_config();
            let step = run::RunStep {
                lowers: &lowers,
                config: &cfg,
                args_env: &state.args,
                cmd: &r.cmd,
                heredocs: &r.heredocs,
                network,
                bridge: bridge.then_some(b.store),
                mounts: mounts.specs,
                dir: &dir,
                id: containers::Containers::new(b.store).build_step_id(std::process::id(), &dir),
                quiet: b.opts.quiet,
                runtime: b.opts.runtime.as_deref(),
                output: sink,
                host: &b.opts.step_host,
                mount_env: mounts.env,
            };
            let upper = run::execute(&step).map_err(|e| e.located(cmd));
            // Unmounted before the scratch directory below them goes.
            drop(mounts.views);
            let layer = b.store_upper(&upper?)?;
            b.cache.commits.remove(dir);
            Ok(Record {
                created: b.now.clone(),
                layer: Some(layer),
            })
        })?;
        Ok((rec, k))
    }

    /// `build --network bridge`, for a RUN without a `--network` of its own.
    pub(crate) fn bridge_for(&self, instr: &Instruction) -> bool {
        self.opts.bridge
            && matches!(instr, Instruction::Run(r) if r.network == NetworkMode::Default)
    }

    pub(crate) fn network_for(&self, instr: &Instruction) -> Network {
        if let Instruction::Run(r) = instr {
            match r.network {
                NetworkMode::None => return Network::None,
                NetworkMode::Host => return Network::Host,
                NetworkMode::Default => {}
            }
        }
        self.opts.network.unwrap_or(Network::Host)
    }
}
