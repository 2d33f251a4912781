//! RUN: the command runs in a container over the current layers; the
//! container's upper directory is the new layer.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use containers::mountpoints::{self, MountPoints};
use containers::spec::{ContainerSpec, Overrides, SpecError};
use dockerfile_parser::instructions::ShellOrExec;
use dockerfile_parser::Heredoc;
use image_store::ContainerConfig;
use runner::spec::{MountSpec, Network};

use super::lower::Lowers;
use super::output::{self, Show};
use crate::error::BuildError;

pub struct RunStep<'a> {
    pub lowers: &'a Lowers,
    pub config: &'a ContainerConfig,
    /// Build args in scope: in the environment unless ENV sets the name.
    pub args_env: &'a [(String, String)],
    pub cmd: &'a ShellOrExec,
    pub heredocs: &'a [Heredoc],
    pub network: Network,
    /// `build --network bridge`: the store whose default bridge the step
    /// joins (netavark, as a container does), left when it ends.
    pub bridge: Option<&'a image_store::Store>,
    pub mounts: Vec<MountSpec>,
    /// Scratch directory of this step (upper, work, bundle).
    pub dir: &'a Path,
    /// The runner id, which names the step's cgroups
    /// ([`containers::Containers::build_step_id`]).
    pub id: String,
    pub quiet: bool,
    pub runtime: Option<&'a Path>,
    /// Receives the output line by line instead of standard error.
    pub output: Option<output::LineSink<'a>>,
    /// `--add-host`, `--shm-size`, `--ulimit`.
    pub host: &'a crate::stages::StepHost,
    /// `KEY=VALUE` the mounts set over the image's ENV (`SSH_AUTH_SOCK`).
    pub mount_env: Vec<String>,
}

pub use containers::spec::DEFAULT_PATH;

/// The argv a RUN executes, with heredocs handled as BuildKit does: a
/// command that is only a heredoc runs its body as a script; otherwise the
/// bodies follow the command line for the shell to read.
pub fn argv(config: &ContainerConfig, cmd: &ShellOrExec, heredocs: &[Heredoc]) -> Vec<String> {
    let shell = config
        .shell
        .clone()
        .unwrap_or_else(crate::config::default_shell);
    match cmd {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => {
            if let [h] = heredocs {
                if s.trim() == format!("<<{}", h.name) || s.trim() == format!("<<-{}", h.name) {
                    return shell.into_iter().chain([h.effective_content()]).collect();
                }
            }
            let mut text = s.clone();
            for h in heredocs {
                text.push('\n');
                text.push_str(&h.content);
                text.push_str(&h.name);
            }
            shell.into_iter().chain([text]).collect()
        }
    }
}

/// Runs the step; returns the upper directory holding its changes.
pub fn execute(step: &RunStep) -> Result<PathBuf, BuildError> {
    let upper = step.dir.join("upper");
    let work = step.dir.join("work");
    let bundle = step.dir.join("bundle");
    for d in [&upper, &work, &bundle] {
        fs::create_dir_all(d).map_err(|e| BuildError::Io(d.clone(), e))?;
    }
    let args = argv(step.config, step.cmd, step.heredocs);
    let overrides = Overrides {
        args: args.clone(),
        env_defaults: step.args_env.to_vec(),
        env: step.mount_env.clone(),
        ..Default::default()
    };
    // One stack for the user's lookup and the mount points: its layers
    // are opened once.
    let stack = step.lowers.stack();
    let mut derived =
        ContainerSpec::from_image_in(step.config, &stack, overrides).map_err(|e| match e {
            SpecError::User { user, message } => {
                BuildError::Invalid(format!("USER {user}: {message}"))
            }
            e => BuildError::Invalid(e.to_string()),
        })?;
    // BuildKit's name for the build container's host: a step that records
    // it (`hostname > f`) gives the same file.
    derived.params.hostname = Some("buildkitsandbox".into());
    derived.params.network = step.network;
    let bridged = match step.bridge {
        Some(store) => Some(Bridged::attach(store, step)?),
        None => None,
    };
    if let Some(b) = &bridged {
        derived.params.network = Network::None;
        derived.params.netns = Some(b.attachment.netns.clone());
    }
    derived.params.mounts = step.mounts.clone();
    derived.params.rlimits = step.host.ulimits.clone();
    let params = &derived.params;
    let mut spec = derived
        .oci()
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    if let Some(size) = step.host.shm_size {
        containers::security::set_shm_size(&mut spec, size);
    }
    let stubs = MountPoints::missing(&stack, &[], &mountpoints::BUILD_FILES, &step.mounts);
    // BuildKit names the build container's host but sets no HOSTNAME
    // variable (unless the image or a build arg does).
    if !params.env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        if let Some(p) = spec.process_mut().as_mut() {
            let env = p.env().clone().map(|v| {
                v.into_iter()
                    .filter(|e| !e.starts_with("HOSTNAME="))
                    .collect::<Vec<_>>()
            });
            p.set_env(env);
        }
    }
    let mut opts = runner::RunOptions::new(
        step.id.clone(),
        &bundle,
        runner::Rootfs::Overlay {
            lower: step.lowers.dirs.clone(),
            upper: upper.clone(),
            work,
        },
    );
    // A RUN step sees BuildKit's /etc files, not `docker run`'s.
    opts.etc_style = runner::EtcStyle::BuildKit;
    // The upper directory becomes a layer blob (synced when it is stored)
    // and the unpacked copy of that layer, which is a cache as every
    // unpacked layer (rebuilt from the blob when missing): no sync of the
    // store's filesystem at every step's end.
    opts.overlay_volatile = true;
    // The upper directory is the step's layer: a run on a copy of the
    // layers would leave it empty and lose the step's changes.
    opts.copy_fallback = false;
    // On the bridge, the resolver netavark's network gives.
    let bridged_resolv = bridged
        .as_ref()
        .and_then(|b| b.attachment.etc.as_ref())
        .map(|e| e.resolv_conf.clone());
    if !step.host.add_hosts.is_empty() || bridged_resolv.is_some() {
        opts.etc_network = Some(runner::EtcNetwork {
            hosts: step
                .host
                .add_hosts
                .iter()
                .map(|(host, ip)| format!("{ip}\t{host}\n"))
                .collect(),
            resolv_conf: bridged_resolv
                .unwrap_or_else(|| fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
        });
    }
    if let Some(rt) = step.runtime {
        opts.runtime = runner::Runtime::External(rt.to_path_buf());
    }
    // The step's output always goes through a pipe, whatever the progress
    // mode (a quiet build must not change what the command sees): it is
    // shown (standard error, or the progress display), and its last lines
    // are kept for the error message if the step fails.
    // Lines for a progress display come with their stream (BuildKit's log
    // stream 1 or 2), so standard error then has a pipe of its own; plain
    // output shares one, which keeps the two in the order they were written.
    let devnull = fs::File::open("/dev/null").map_err(|e| BuildError::Io("/dev/null".into(), e))?;
    let pipe = || std::io::pipe().map_err(|e| BuildError::Io("pipe".into(), e));
    let (r, w) = pipe()?;
    let show = match (step.quiet, step.output) {
        (true, _) => Show::Nothing,
        (false, Some(sink)) => Show::Lines(sink),
        (false, None) => Show::Stderr,
    };
    let split = match show {
        Show::Lines(_) => Some(pipe()?),
        _ => None,
    };
    opts.stdio = runner::Stdio::Fds {
        stdin: devnull.as_raw_fd(),
        stdout: w.as_raw_fd(),
        stderr: split
            .as_ref()
            .map_or(w.as_raw_fd(), |(_, w2)| w2.as_raw_fd()),
    };
    let (r2, w2) = split.unzip();
    let (result, tail) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || match (show, r2) {
            (Show::Lines(sink), Some(r2)) => output::forward_split(r, r2, sink),
            _ => output::forward(r, show),
        });
        let result = runner::run(&spec, &opts);
        // The reader ends once the container's copies close too.
        drop(w);
        drop(w2);
        let tail = reader.join().unwrap_or_default();
        (result, tail)
    });
    let status = result.map_err(|e| {
        let reason = if e.is_overlay_mount() {
            // Most often a store on overlayfs itself (kiln inside a
            // container), which the kernel refuses as an upper directory.
            format!(
                "{e} (the step's layers are mounted with overlayfs, with their \
                 changes in {}: that filesystem cannot hold an overlay upper \
                 directory; use a store (--root) on ext4, xfs, btrfs or tmpfs)",
                upper.display()
            )
        } else {
            e.to_string()
        };
        BuildError::RunFailed {
            command: output::truncate_command(&args.join(" ")),
            code: e.exit_code() as i32,
            reason: Some(reason),
            output: tail.clone(),
        }
    })?;
    if !status.success() {
        return Err(BuildError::RunFailed {
            command: output::truncate_command(&shown(step.cmd)),
            code: status.code() as i32,
            reason: None,
            output: tail,
        });
    }
    // Mount points the runner had to create (files and directories absent
    // from the image) are not part of the layer.
    stubs.remove_from(&upper, &stack);
    Ok(upper)
}

/// A step on the default bridge: detached (netavark teardown, address
/// freed) when dropped, whatever the step's outcome.
struct Bridged<'a> {
    store: &'a image_store::Store,
    dir: PathBuf,
    attachment: containers::network::Attachment,
}

impl<'a> Bridged<'a> {
    fn attach(store: &'a image_store::Store, step: &RunStep) -> Result<Bridged<'a>, BuildError> {
        let req = containers::network::NetworkRequest {
            network: containers::network::DEFAULT_NETWORK.into(),
            ..Default::default()
        };
        let who = containers::network::attach::Identity {
            id: &step.id,
            name: &step.id,
            hostname: "buildkitsandbox",
            dir: step.dir,
        };
        let attachment = containers::network::attach(store, who, &req, &[])
            .map_err(|e| BuildError::Invalid(format!("RUN on --network bridge: {e}")))?;
        Ok(Bridged {
            store,
            dir: step.dir.to_path_buf(),
            attachment,
        })
    }
}

impl Drop for Bridged<'_> {
    fn drop(&mut self) {
        if let Err(e) = containers::network::detach(self.store, &self.dir) {
            eprintln!("kiln: WARNING: tearing down a RUN step's network: {e}");
        }
    }
}

/// The command as the user wrote it, for error messages.
pub fn shown(cmd: &ShellOrExec) -> String {
    match cmd {
        ShellOrExec::Shell(s) => s.clone(),
        ShellOrExec::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}
