//! Image → container: the process a container or a build's RUN step runs,
//! derived from the image config and what the caller overrides (docker's
//! rules: `-e` over ENV over build args, `-u` over USER, `-w` over
//! WORKDIR), as the runner's [`SpecParams`]. `kiln run` and the builder's
//! RUN both start here.

use image_store::ContainerConfig;
use runner::spec::SpecParams;

use crate::layers::LayerStack;
use runner::RunError;

/// The PATH a container gets when its image sets none (docker's and
/// BuildKit's; the runner adds it first in the environment).
pub use runner::spec::DEFAULT_PATH;

/// What the caller sets over the image config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The command line, already decided ([`command`] for `kiln run`, the
    /// shell form for RUN).
    pub args: Vec<String>,
    /// `KEY=VALUE` set over the image's ENV, in order (`-e`, `--env-file`).
    pub env: Vec<String>,
    /// Variables that apply only where the image's ENV does not set the
    /// name, placed before it (a build's ARGs).
    pub env_defaults: Vec<(String, String)>,
    /// `-u`: replaces the image's USER.
    pub user: Option<String>,
    /// `-w`: replaces the image's WORKDIR.
    pub workdir: Option<String>,
}

/// Why no spec could be derived.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The user (from `-u` or USER) is not in the image, or malformed.
    #[error("{message}")]
    User { user: String, message: String },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A container's process as the runner takes it. What the image does not
/// decide (host name, terminal, network, mounts, limits) the caller sets
/// in `params` after [`ContainerSpec::from_image`].
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub params: SpecParams,
}

impl ContainerSpec {
    /// Derives the process from the image config `config`, whose layers
    /// are `layers` (base first: the user is looked up in their
    /// `/etc/passwd` and `/etc/group`), and the caller's overrides.
    pub fn from_image(
        config: &ContainerConfig,
        layers: &[std::path::PathBuf],
        o: Overrides,
    ) -> Result<ContainerSpec, SpecError> {
        ContainerSpec::from_image_in(config, &LayerStack::new(layers.to_vec()), o)
    }

    /// [`ContainerSpec::from_image`] on a layer stack the caller looks
    /// into again (its layers are opened once).
    pub fn from_image_in(
        config: &ContainerConfig,
        stack: &LayerStack,
        o: Overrides,
    ) -> Result<ContainerSpec, SpecError> {
        let mut env: Vec<String> = o
            .env_defaults
            .iter()
            .filter(|(k, _)| config.get_env(k).is_none())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.extend(config.env.iter().flatten().cloned());
        for e in o.env {
            set_env(&mut env, e);
        }
        let user_spec = o.user.or_else(|| config.user.clone()).unwrap_or_default();
        // Read through the stack, so a passwd file a layer deleted (or hid
        // under an opaque /etc) is gone, as in the container.
        let text = |rel| {
            stack
                .read(rel)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let (passwd, group) = (text("etc/passwd"), text("etc/group"));
        let user = runner::user::resolve_from(passwd.as_deref(), group.as_deref(), &user_spec);
        let user = user.map_err(|e| SpecError::User {
            user: user_spec.clone(),
            message: e.to_string(),
        })?;
        let cwd = o
            .workdir
            .or_else(|| config.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        Ok(ContainerSpec {
            params: SpecParams {
                args: o.args,
                env,
                cwd,
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids,
                home: Some(user.home),
                ..Default::default()
            },
        })
    }

    /// The OCI runtime spec (docker's defaults around the process).
    pub fn oci(&self) -> Result<runner::Spec, RunError> {
        runner::spec::build(&self.params)
    }
}

/// Why `kiln run` has nothing to execute.
#[derive(Debug, thiserror::Error)]
#[error("no command specified: the image has no ENTRYPOINT or CMD and none was given")]
pub struct NoCommand;

/// docker's ENTRYPOINT + CMD combination: `--entrypoint` replaces the
/// image's ENTRYPOINT and clears its CMD (an empty one clears both), and a
/// command given on the command line replaces CMD.
pub fn command(
    config: &ContainerConfig,
    entrypoint: Option<&[String]>,
    cmd: &[String],
) -> Result<Vec<String>, NoCommand> {
    let (entry, cmd) = entrypoint_and_cmd(config, entrypoint, cmd);
    let all: Vec<String> = entry.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(NoCommand);
    }
    Ok(all)
}

/// The container's ENTRYPOINT and CMD apart (docker's `Config.Entrypoint`
/// and `Config.Cmd`): `--entrypoint` replaces the image's and clears its
/// CMD; arguments replace the CMD.
pub fn entrypoint_and_cmd(
    config: &ContainerConfig,
    entrypoint: Option<&[String]>,
    cmd: &[String],
) -> (Vec<String>, Vec<String>) {
    let entry: Vec<String> = match entrypoint {
        Some(e) => e.to_vec(),
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !cmd.is_empty() {
        cmd.to_vec()
    } else if entrypoint.is_some() {
        Vec::new()
    } else {
        config.cmd.clone().unwrap_or_default()
    };
    (entry, cmd)
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Sets `entry` (`KEY=VALUE`) in `env`, replacing the variable in place
/// when it is there.
pub fn set_env(env: &mut Vec<String>, entry: String) {
    let k = env_key(&entry).to_string();
    match env.iter_mut().find(|e| env_key(e) == k) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[&str], user: Option<&str>, workdir: Option<&str>) -> ContainerConfig {
        ContainerConfig {
            env: Some(env.iter().map(|s| s.to_string()).collect()),
            user: user.map(str::to_string),
            working_dir: workdir.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn env_layers_build_args_under_env_under_overrides() {
        let c = config(&["A=image", "B=image"], None, None);
        let s = ContainerSpec::from_image(
            &c,
            &[],
            Overrides {
                args: vec!["true".into()],
                env: vec!["B=flag".into(), "C=flag".into()],
                env_defaults: vec![("A".into(), "arg".into()), ("D".into(), "arg".into())],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.params.env, ["D=arg", "A=image", "B=flag", "C=flag"]);
        assert_eq!(s.params.cwd, "/");
        assert_eq!((s.params.uid, s.params.gid), (0, 0));
    }

    #[test]
    fn workdir_and_user_overrides() {
        let c = config(&[], Some("0:0"), Some("/srv"));
        let p = |o: Overrides| ContainerSpec::from_image(&c, &[], o).unwrap().params;
        assert_eq!(p(Overrides::default()).cwd, "/srv");
        let o = Overrides {
            workdir: Some("/tmp".into()),
            user: Some("5:6".into()),
            ..Default::default()
        };
        let got = p(o);
        assert_eq!((got.cwd.as_str(), got.uid, got.gid), ("/tmp", 5, 6));
        let blank = config(&[], None, Some(""));
        let got = ContainerSpec::from_image(&blank, &[], Overrides::default()).unwrap();
        assert_eq!(got.params.cwd, "/");
    }

    /// The runner's own lookup takes the topmost passwd file it can read,
    /// so a passwd a layer deleted still named users; through the stack it
    /// is gone, as in the container.
    #[test]
    fn users_come_from_the_passwd_the_container_sees() {
        use crate::layers::tests::{layer, root, whiteout};
        let t = tempfile::tempdir().unwrap();
        let base = layer(t.path(), "l1", &["etc/passwd", "etc/group"]);
        std::fs::write(base.join("etc/passwd"), "app:x:5:6::/home/app:/bin/sh\n").unwrap();
        std::fs::write(base.join("etc/group"), "extra:x:9:app\n").unwrap();
        let c = config(&[], Some("app"), None);
        let got = ContainerSpec::from_image(&c, std::slice::from_ref(&base), Overrides::default())
            .unwrap()
            .params;
        assert_eq!((got.uid, got.gid, got.additional_gids), (5, 6, vec![9]));
        assert_eq!(got.home.as_deref(), Some("/home/app"));
        if !root() {
            return;
        }
        let top = layer(t.path(), "l2", &[]);
        whiteout(&top, "etc/passwd");
        let err = ContainerSpec::from_image(&c, &[base, top], Overrides::default()).unwrap_err();
        assert!(matches!(err, SpecError::User { .. }), "{err}");
    }

    /// A hostile image's `etc -> /etc` must not lend it the host's users:
    /// `root` is in the host's /etc/passwd, not in the image.
    #[test]
    fn users_never_come_from_the_host() {
        use crate::layers::tests::layer;
        let t = tempfile::tempdir().unwrap();
        let c = config(&[], Some("root"), None);
        for target in ["/etc", "../../../../../../../../../../etc"] {
            let l = layer(t.path(), &format!("l{}", target.len()), &[]);
            std::os::unix::fs::symlink(target, l.join("etc")).unwrap();
            let err = ContainerSpec::from_image(&c, &[l], Overrides::default()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("no user \"root\" in the image's /etc/passwd"),
                "{target}: {err}"
            );
        }
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_docker() {
        let mut c = config(&[], None, None);
        c.entrypoint = Some(vec!["/ep".into()]);
        c.cmd = Some(vec!["a".into()]);
        let v = |e: Option<&str>, cmd: &[&str]| {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            let e = e.map(crate::run::entrypoint_flag);
            command(&c, e.as_deref(), &cmd).ok()
        };
        assert_eq!(v(None, &[]).unwrap(), ["/ep", "a"]);
        assert_eq!(v(None, &["b"]).unwrap(), ["/ep", "b"]);
        assert_eq!(v(Some("/x"), &[]).unwrap(), ["/x"]);
        assert_eq!(v(Some(""), &["sh"]).unwrap(), ["sh"]);
        assert!(v(Some(""), &[]).is_none());
    }
}
