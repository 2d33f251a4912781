//! `RUN --mount`: cache, tmpfs, secret, ssh and bind mounts translated
//! into the runner's mount list.

use std::path::Path;

use dockerfile_parser::instructions::{Command, MountType};
use runner::spec::MountSpec;

use crate::cache;
use crate::error::BuildError;
use crate::stages::plan::Base;
use crate::stages::{StageRun, State};
use crate::steps::{bind_view, view};

/// A step's mounts for the runner, the variables they set, and the views
/// they come from.
pub(crate) struct StepMounts {
    pub specs: Vec<MountSpec>,
    pub env: Vec<String>,
    /// Mounted until dropped: keep them until the step has run.
    pub views: Vec<view::View>,
}

impl StageRun<'_, '_> {
    /// The mounts, the variables they set (`SSH_AUTH_SOCK`), and the views
    /// the bind mounts come from, which must stay mounted until the step
    /// ends.
    pub(crate) fn run_mounts(
        &self,
        r: &dockerfile_parser::instructions::Run,
        state: &State,
        cmd: &Command,
        dir: &Path,
    ) -> Result<StepMounts, BuildError> {
        let mounts = r
            .expand_mounts(&self.lexer, &self.expansion_env(state))
            .map_err(|e| BuildError::caused_at(cmd, e))?;
        let mut out = Vec::new();
        let mut env = Vec::new();
        let mut views = Vec::new();
        let mut ssh_mounts = 0;
        for (n, m) in mounts.iter().enumerate() {
            let target = m.target.clone();
            match m.kind {
                MountType::Cache => {
                    let target =
                        target.ok_or_else(|| BuildError::at(cmd, "cache mount needs a target"))?;
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let hex = cache::KeyHasher::new("cache-mount")
                        .part("id", id.as_bytes())
                        .clone_finish();
                    let mount = self.store.cache_mount(&hex[..32])?;
                    // The mount's owner and mode (BuildKit: 0:0, 0755 unless
                    // uid/gid/mode say otherwise), set at every use.
                    mount
                        .set_owner(
                            m.uid.unwrap_or(0),
                            m.gid.unwrap_or(0),
                            m.mode.unwrap_or(0o755),
                        )
                        .map_err(|e| BuildError::Io(mount.path().to_path_buf(), e))?;
                    let src = mount.path().to_path_buf();
                    out.push(MountSpec::Bind {
                        source: src,
                        destination: target,
                        readonly: false,
                    });
                }
                MountType::Tmpfs => {
                    let target =
                        target.ok_or_else(|| BuildError::at(cmd, "tmpfs mount needs a target"))?;
                    let mut options = vec![];
                    if let Some(s) = m.size {
                        options.push(format!("size={s}"));
                    }
                    out.push(MountSpec::Tmpfs {
                        destination: target,
                        options,
                    });
                }
                MountType::Secret => {
                    let id = m.id.clone().or_else(|| {
                        target.as_ref().and_then(|t| {
                            Path::new(t)
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                        })
                    });
                    let id = id.ok_or_else(|| BuildError::at(cmd, "secret mount needs an id"))?;
                    match self.opts.secrets.get(&id) {
                        Some(src) => out.push(MountSpec::Bind {
                            source: src.clone(),
                            destination: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                            readonly: true,
                        }),
                        None if m.required => {
                            return Err(BuildError::at(
                                cmd,
                                format!(
                                    "secret {id} not found: pass it with --secret id={id},src=PATH"
                                ),
                            ))
                        }
                        None => {}
                    }
                }
                MountType::Bind => {
                    let target =
                        target.ok_or_else(|| BuildError::at(cmd, "bind mount needs a target"))?;
                    let rel = m.source.clone().unwrap_or_default();
                    let scratch = bind_view::scratch(dir, n);
                    let writable = !m.readonly;
                    // The context (or a directory context) as its
                    // `.dockerignore` filters it; a stage or an image as
                    // its layers.
                    let owned;
                    let (root, ctx) = match &m.from {
                        None => {
                            let ctx = self.context.as_ref().ok_or_else(|| {
                                BuildError::at(cmd, "bind mount needs a build context")
                            })?;
                            (ctx.root().to_path_buf(), Some(ctx))
                        }
                        Some(f) => match self.plan.base(f, self.stage.index, true) {
                            Base::Dir(d, ignore) => {
                                owned = crate::context::BuildContext::new(&d, &ignore)
                                    .map_err(|e| BuildError::Invalid(e.to_string()))?;
                                (d, Some(&owned))
                            }
                            _ => {
                                let (_, lowers) = self.source_of(f, cmd)?;
                                let v = view::View::for_bind(&lowers.dirs, &scratch, writable)?;
                                let root = v.root.clone();
                                views.push(v);
                                (root, None)
                            }
                        },
                    };
                    // Resolved inside the context or the image, as
                    // BuildKit does: an image's `etc -> /etc` must not
                    // bind the host's /etc.
                    let found = runner::inroot::Root::dir(&root)
                        .and_then(|r| r.lookup(Path::new(&rel), true))
                        .map_err(|e| {
                            BuildError::at(cmd, format!("bind mount source {rel:?}: {e}"))
                        })?;
                    let mut source = root.join(&found.path);
                    if let Some(ctx) = ctx {
                        match bind_view::context_view(ctx, &found.path, &scratch, writable)? {
                            Some(bind_view::BindSource::Mounted(v)) => {
                                source = v.root.join(&found.path);
                                views.push(v);
                            }
                            Some(copied) => source = copied.root().join(&found.path),
                            None => {}
                        }
                    }
                    out.push(MountSpec::Bind {
                        source,
                        destination: target,
                        readonly: !writable,
                    });
                }
                MountType::Ssh => {
                    // The agent's socket itself, bound for this step only:
                    // the mount point is not part of the layer, and nothing
                    // of the agent is in the key.
                    ssh_mounts += 1;
                    if m.uid.is_some() || m.gid.is_some() || m.mode.is_some() {
                        return Err(BuildError::at(
                            cmd,
                            "ssh mount uid, gid and mode are not supported: the agent's socket is mounted as it is",
                        ));
                    }
                    let id = m.id.clone().unwrap_or_else(|| "default".into());
                    let Some(socket) = self.opts.ssh.get(&id) else {
                        if m.required {
                            return Err(BuildError::at(
                                cmd,
                                format!(
                                    "ssh agent {id} not found: pass it with --ssh {id}[=SOCKET]"
                                ),
                            ));
                        }
                        continue;
                    };
                    let target = target
                        .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{}", ssh_mounts - 1));
                    // BuildKit points SSH_AUTH_SOCK at the first one.
                    if !env.iter().any(|e: &String| e.starts_with("SSH_AUTH_SOCK=")) {
                        env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                    out.push(MountSpec::Bind {
                        source: socket.clone(),
                        destination: target,
                        readonly: true,
                    });
                }
            }
        }
        Ok(StepMounts {
            specs: out,
            env,
            views,
        })
    }
}

impl StageRun<'_, '_> {
    /// Feeds the content of every bind mount read from the build context or
    /// a directory context into the RUN's key, as BuildKit keys a step on
    /// its mounts' checksums: a changed file the command reads through the
    /// mount is a miss. Files are hashed through the same stat index and
    /// `.dockerignore` filter as COPY's; a stage or image source adds its
    /// key. Returns (path, hash) of each file, to
    /// explain a miss.
    pub(crate) fn bind_mounts_key(
        &self,
        r: &dockerfile_parser::instructions::Run,
        state: &State,
        cmd: &Command,
        key: &mut cache::KeyHasher,
    ) -> Result<Vec<(String, String)>, BuildError> {
        let mounts = r
            .expand_mounts(&self.lexer, &self.expansion_env(state))
            .map_err(|e| BuildError::caused_at(cmd, e))?;
        let mut inputs = Vec::new();
        for (n, m) in mounts.iter().enumerate() {
            if m.kind != MountType::Bind {
                continue;
            }
            let owned;
            let dir_index;
            let (ctx, index) = match &m.from {
                None => match self.context.as_ref() {
                    Some(ctx) => (ctx, self.index.as_ref()),
                    None => continue,
                },
                Some(f) => match self.plan.base(f, self.stage.index, true) {
                    Base::Dir(d, ignore) => {
                        owned = crate::context::BuildContext::new(&d, &ignore)
                            .map_err(|e| BuildError::Invalid(e.to_string()))?;
                        dir_index = cache::StatIndex::open_at(
                            self.scratch_for("dir-index").join(format!("bind-{n}")),
                        );
                        (&owned, Some(&dir_index))
                    }
                    // A stage or image: keyed by the content under the
                    // mount's source, as BuildKit's content checksums key
                    // it (a stage that ran again and made the same files
                    // leaves the step cached).
                    _ => {
                        let rel = m.source.clone().unwrap_or_default();
                        let digest = self.bind_source_digest(f, &rel, n, cmd, &mut inputs)?;
                        key.part("bind-mount", n.to_string().as_bytes())
                            .part("bind-from-content", digest.as_bytes());
                        continue;
                    }
                },
            };
            let rel = m.source.clone().unwrap_or_default();
            key.part("bind-mount", n.to_string().as_bytes())
                .part("bind-source", rel.as_bytes());
            tree_key(ctx, index, &rel, false, key, &mut inputs, cmd)?;
        }
        Ok(inputs)
    }

    /// The digest of what a bind mount from the stage or image `from`
    /// shows under `rel`: each entry's path, mode and owner, a symlink's
    /// target and a file's sha256. The source's layers never change, so
    /// the digest is remembered by them (a content alias): an unchanged
    /// source is neither mounted nor read again.
    fn bind_source_digest(
        &self,
        from: &str,
        rel: &str,
        n: usize,
        cmd: &Command,
        inputs: &mut Vec<(String, String)>,
    ) -> Result<String, BuildError> {
        let alias = self.source_layers(from, cmd)?.map(|layers| {
            let list: Vec<String> = layers.iter().map(|d| d.to_string()).collect();
            let mut a = cache::KeyHasher::new("bind-source-content");
            a.part("layers", list.join(",").as_bytes())
                .part("source", rel.as_bytes());
            a.finish()
        });
        if let Some(d) = alias.as_ref().and_then(|a| self.cache.content_alias(a)) {
            return Ok(d);
        }
        let (_, lowers) = self.source_of(from, cmd)?;
        let target = self.scratch_for(&format!("bind-key-{n}"));
        let v = view::View::mount(&lowers.dirs, &target)?;
        let ctx = crate::context::BuildContext::new(&v.root, &[] as &[&str])
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        let index = cache::StatIndex::default();
        let mut h = cache::KeyHasher::new("bind-content");
        tree_key(&ctx, Some(&index), rel, true, &mut h, inputs, cmd)?;
        let digest = h.finish();
        if let Some(a) = &alias {
            self.cache.put_content_alias(a, &digest);
        }
        Ok(digest)
    }
}

/// Feeds the tree under `rel` in `ctx` into `key`: each entry's path and
/// mode (and owner, with `owners`), a symlink's target, a file's sha256
/// (also pushed to `inputs`, to explain a miss). Symlinks on the way to
/// `rel` are resolved inside `ctx`, as the mount itself resolves them.
fn tree_key(
    ctx: &crate::context::BuildContext,
    index: Option<&cache::StatIndex>,
    rel: &str,
    owners: bool,
    key: &mut cache::KeyHasher,
    inputs: &mut Vec<(String, String)>,
    cmd: &Command,
) -> Result<(), BuildError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let failed =
        |e: &dyn std::fmt::Display| BuildError::at(cmd, format!("bind mount source {rel:?}: {e}"));
    let found = runner::inroot::Root::dir(ctx.root())
        .and_then(|r| r.lookup(Path::new(rel), true))
        .map_err(|e| failed(&e))?;
    let walk = ctx.walk_from(&found.path).map_err(|e| failed(&e))?;
    for entry in walk {
        let e = entry.map_err(|e| failed(&e))?;
        let name = e.path.as_os_str().as_bytes();
        let md = &e.metadata;
        key.part("path", name)
            .part("mode", md.mode().to_string().as_bytes());
        if owners {
            key.part("owner", format!("{}:{}", md.uid(), md.gid()).as_bytes());
        }
        let abs = ctx.absolute(&e.path);
        if md.file_type().is_symlink() {
            let t = std::fs::read_link(&abs).map_err(|e| BuildError::Io(abs.clone(), e))?;
            key.part("link", t.as_os_str().as_bytes());
        } else if md.is_file() {
            let shown = String::from_utf8_lossy(name).into_owned();
            let sha = match index {
                Some(idx) => idx.hash(name, &abs, md),
                None => cache::hash_file(&abs),
            }
            .map_err(|e| BuildError::Io(abs.clone(), e))?;
            key.part("sha", sha.as_bytes());
            inputs.push((shown, sha));
        }
    }
    Ok(())
}
