//! RUN: the command runs in a container over the current layers; the
//! container's upper directory is the new layer.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use dockerfile_parser::instructions::ShellOrExec;
use dockerfile_parser::Heredoc;
use image_store::ContainerConfig;
use runner::spec::{MountSpec, Network, SpecParams};

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
    pub mounts: Vec<MountSpec>,
    /// Scratch directory of this step (upper, work, bundle).
    pub dir: &'a Path,
    /// The runner id, which names the step's cgroups
    /// ([`image_store::Store::build_step_id`]).
    pub id: String,
    pub quiet: bool,
    pub runtime: Option<&'a Path>,
    /// Receives the output line by line instead of standard error.
    pub output: Option<&'a (dyn Fn(&str) + Sync)>,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    let c = step.config;
    let mut env: Vec<String> = step
        .args_env
        .iter()
        .filter(|(k, _)| c.get_env(k).is_none())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend(c.env.iter().flatten().cloned());
    if c.get_env("PATH").is_none() && !step.args_env.iter().any(|(k, _)| k == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    let user =
        runner::user::resolve(&step.lowers.dirs, c.user.as_deref().unwrap_or("")).map_err(|e| {
            BuildError::Invalid(format!("USER {}: {e}", c.user.as_deref().unwrap_or("")))
        })?;
    let args = argv(c, step.cmd, step.heredocs);
    let params = SpecParams {
        args: args.clone(),
        env,
        cwd: c.working_dir.clone().unwrap_or_else(|| "/".into()),
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        home: Some(user.home),
        // BuildKit's name for the build container's host: a step that
        // records it (`hostname > f`) gives the same file.
        hostname: Some("buildkitsandbox".into()),
        network: step.network,
        mounts: step.mounts.clone(),
        ..Default::default()
    };
    let mut spec = runner::spec::build(&params).map_err(|e| BuildError::Invalid(e.to_string()))?;
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
    if let Some(rt) = step.runtime {
        opts.runtime = runner::Runtime::External(rt.to_path_buf());
    }
    // The step's output always goes through a pipe, whatever the progress
    // mode (a quiet build must not change what the command sees): it is
    // shown (standard error, or the progress display), and its last lines
    // are kept for the error message if the step fails.
    let devnull = fs::File::open("/dev/null").map_err(|e| BuildError::Io("/dev/null".into(), e))?;
    let (r, w) = std::io::pipe().map_err(|e| BuildError::Io("pipe".into(), e))?;
    opts.stdio = runner::Stdio::Fds {
        stdin: devnull.as_raw_fd(),
        stdout: w.as_raw_fd(),
        stderr: w.as_raw_fd(),
    };
    let show = match (step.quiet, step.output) {
        (true, _) => Show::Nothing,
        (false, Some(sink)) => Show::Lines(sink),
        (false, None) => Show::Stderr,
    };
    let (result, tail) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || output::forward(r, show));
        let result = runner::run(&spec, &opts);
        // The reader ends once the container's copies close too.
        drop(w);
        let tail = reader.join().unwrap_or_default();
        (result, tail)
    });
    let status = result.map_err(|e| BuildError::RunFailed {
        command: output::truncate_command(&args.join(" ")),
        code: e.exit_code() as i32,
        reason: Some(e.to_string()),
        output: tail.clone(),
    })?;
    if !status.success() {
        return Err(BuildError::RunFailed {
            command: output::truncate_command(&shown(step.cmd)),
            code: status.code() as i32,
            reason: None,
            output: tail,
        });
    }
    let mut stubs: Vec<String> = ["etc/hosts", "etc/resolv.conf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in &step.mounts {
        let d = match m {
            MountSpec::Bind { destination, .. } | MountSpec::Tmpfs { destination, .. } => {
                destination
            }
        };
        stubs.push(d.trim_start_matches('/').to_string());
    }
    remove_mount_stubs(&upper, step.lowers, &stubs);
    Ok(upper)
}

/// Mount points the runner had to create (files and directories absent
/// from the image) are not part of the layer; neither is what a mount
/// showed there (a secret, a cache).
fn remove_mount_stubs(upper: &Path, lowers: &Lowers, stubs: &[String]) {
    for s in stubs {
        if s.is_empty() || lowers.stat(s).is_some() {
            continue;
        }
        let p = upper.join(s);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let empty = if m.is_dir() {
            fs::read_dir(&p)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
        } else {
            m.len() == 0
        };
        if empty {
            let _ = if m.is_dir() {
                fs::remove_dir(&p)
            } else {
                fs::remove_file(&p)
            };
            // Parents made only to hold the mount point go too.
            let mut rel = Path::new(s).parent();
            while let Some(r) = rel.filter(|r| !r.as_os_str().is_empty()) {
                let rs = r.to_string_lossy();
                if lowers.stat(&rs).is_some() || fs::remove_dir(upper.join(r)).is_err() {
                    break;
                }
                rel = r.parent();
            }
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
