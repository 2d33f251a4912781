//! Volumes: directories under the store root (`kiln/volumes/<name>/_data`,
//! its record `volume.json` beside it) that containers mount and that
//! outlive them. A named volume is made by `kiln volume create` or on its
//! first use; an anonymous one (`-v /path`, an image's VOLUME) gets a
//! random name and goes with its container under `rm -v` and `--rm`.
//!
//! A volume is in use while a container record names it; `volume rm`
//! checks that under `kiln/locks/volumes.lock`, which [`plan`] holds from
//! making a container's volumes until its record is written, so a volume
//! cannot be removed between the two. An empty volume is filled from the
//! image's content at the mount point when mounted (docker's copy-up),
//! read through the layer stack ([`crate::merged`]) and written with
//! descriptors only ([`crate::rootwrite`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use image_store::Store;
use runner::spec::MountSpec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::merged::{Merged, Node};
use crate::mountopts::{self, MountRequest};
use crate::records::{Container, Containers};
use crate::rootwrite::{Attrs, RootWriter};

/// A volume's files, inside its directory.
pub const DATA_DIR: &str = "_data";
const RECORD: &str = "volume.json";

/// A volume's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for one container (`-v /path`, VOLUME): removed with it by
    /// `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
}

/// What a container has mounted, kept in its record (for `--volumes-from`,
/// for the in-use check, and for removing its anonymous volumes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host directory (a bind's source, a volume's data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    pub destination: String,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Checks a volume name against docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`):
/// names become directory names.
pub fn volume_name(name: &str) -> Result<&str> {
    let ok = name.strip_prefix('/').is_none() && crate::records::container_name(name).is_ok();
    match ok {
        true => Ok(name),
        false => Err(Error::Invalid(format!(
            "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters"
        ))),
    }
}

/// The volumes of one store.
#[derive(Debug, Clone, Copy)]
pub struct Volumes<'s> {
    store: &'s Store,
}

/// The exclusive volumes lock, released on drop.
#[derive(Debug)]
pub struct VolumesLock(#[allow(dead_code)] image_store::LockGuard);

impl<'s> Volumes<'s> {
    pub fn new(store: &'s Store) -> Volumes<'s> {
        Volumes { store }
    }

    pub fn dir(&self) -> PathBuf {
        self.store.kiln_dir().join("volumes")
    }

    /// Volume `name`'s data directory (what is mounted).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir().join(name).join(DATA_DIR)
    }

    /// An exclusive flock on `kiln/locks/volumes.lock`.
    pub fn lock(&self) -> Result<VolumesLock> {
        Ok(VolumesLock(self.store.exclusive_lock("volumes")?))
    }

    /// `kiln volume create`: makes volume `name` (docker: an existing one
    /// is fine and kept as it is).
    pub fn create(&self, name: &str, labels: BTreeMap<String, String>) -> Result<Volume> {
        volume_name(name)?;
        let _g = self.lock()?;
        self.ensure(name, labels, false).map(|(v, _)| v)
    }

    /// Volume `name`, made if missing (the lock held). The second value
    /// says whether it was made now.
    fn ensure(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(Volume, bool)> {
        match self.get(name) {
            Ok(v) => return Ok((v, false)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let v = Volume {
            name: name.to_string(),
            created: image_store::model::now(),
            labels,
            anonymous,
        };
        // Made complete beside its place, then renamed into it: a volume
        // is there with its record or not at all.
        let root = self.dir();
        fs::create_dir_all(&root).map_err(Error::io(&root))?;
        let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let res = (|| {
            let data = tmp.join(DATA_DIR);
            fs::create_dir_all(&data).map_err(Error::io(&data))?;
            let json = serde_json::to_vec_pretty(&v).expect("plain data serializes");
            let p = tmp.join(RECORD);
            image_store::fsutil::write_atomic(&p, &json).map_err(Error::io(&p))?;
            let dest = root.join(name);
            fs::rename(&tmp, &dest).map_err(Error::io(&dest))?;
            image_store::fsutil::sync_dir(&root).map_err(Error::io(&root))
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res.map(|()| (v, true))
    }

    /// Volume `name`'s record.
    pub fn get(&self, name: &str) -> Result<Volume> {
        volume_name(name)?;
        let p = self.dir().join(name).join(RECORD);
        let data = fs::read(&p).map_err(Error::io(&p))?;
        serde_json::from_slice(&data).map_err(Error::json(p))
    }

    /// Volume `name`, or a one-line "no such volume".
    pub fn find(&self, name: &str) -> Result<Volume> {
        self.get(name).map_err(|e| match e.is_not_found() {
            true => Error::Invalid(format!("no such volume: {name}")),
            false => e,
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The names of the containers whose records mount volume `name`.
    pub fn users(&self, name: &str) -> Result<Vec<String>> {
        Ok(Containers::new(self.store)
            .containers()?
            .into_iter()
            .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(name)))
            .map(|c| c.name)
            .collect())
    }

    /// The names of the volumes some container record mounts.
    pub fn used(&self) -> Result<std::collections::HashSet<String>> {
        Ok(Containers::new(self.store)
            .containers()?
            .into_iter()
            .flat_map(|c| c.mounts.into_iter().filter_map(|m| m.name))
            .collect())
    }

    /// `kiln volume rm`: refused while a container uses the volume;
    /// `force` only makes a missing volume no error.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let _g = self.lock()?;
        self.remove_locked(name, force)
    }

    fn remove_locked(&self, name: &str, force: bool) -> Result<()> {
        match self.find(name) {
            Ok(_) => {}
            Err(_) if force => return Ok(()),
            Err(e) => return Err(e),
        }
        let users = self.users(name)?;
        if !users.is_empty() {
            return Err(Error::Invalid(format!(
                "volume {name} is in use by container {}",
                users.join(", ")
            )));
        }
        // Renamed away first: the volume disappears at once, its files
        // after.
        let dir = self.dir().join(name);
        let gone = self
            .dir()
            .join(format!(".rm-{name}-{}", std::process::id()));
        fs::rename(&dir, &gone).map_err(Error::io(&dir))?;
        fs::remove_dir_all(&gone).map_err(Error::io(&gone))
    }

    /// `kiln volume prune`: removes the volumes no container uses
    /// (anonymous ones only, unless `all`, as docker 23 does). Returns
    /// their names.
    pub fn prune(&self, all: bool) -> Result<Vec<String>> {
        let _g = self.lock()?;
        let used = self.used()?;
        let mut out = Vec::new();
        for v in self.list()? {
            if used.contains(&v.name) || !(all || v.anonymous) {
                continue;
            }
            self.remove_locked(&v.name, true)?;
            out.push(v.name);
        }
        Ok(out)
    }

    /// Removes the anonymous volumes of container `c` (after it was
    /// removed) that no other container uses; best effort.
    pub fn remove_anonymous(&self, c: &Container) {
        let Ok(_g) = self.lock() else { return };
        for m in c.mounts.iter().filter(|m| m.anonymous) {
            if let Some(n) = &m.name {
                let _ = self.remove_locked(n, true);
            }
        }
    }
}

impl Volumes<'_> {
    /// `system check`: every volume directory has a record that parses
    /// and its data directory; no half-made or half-removed volume of a
    /// kiln process that is gone is left (`repair` removes those); every
    /// volume a container record names exists.
    pub fn check(&self, repair: bool, rep: &mut image_store::check::CheckReport) {
        use image_store::check::Problem;
        let Ok(_g) = self.lock() else { return };
        let mut problem =
            |object: String, message: String, fixable: bool, path: Option<PathBuf>| {
                let repaired =
                    fixable && repair && path.is_some_and(|p| fs::remove_dir_all(p).is_ok());
                rep.problems.push(Problem {
                    kind: "volume",
                    object,
                    message,
                    repaired,
                    action: "removed",
                });
            };
        if let Ok(entries) = fs::read_dir(self.dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if let Some(rest) = name
                    .strip_prefix(".tmp-")
                    .or_else(|| name.strip_prefix(".rm-"))
                {
                    // `.tmp-NAME-PID`, `.rm-NAME-PID`: its process may be at work.
                    let pid = rest
                        .rsplit_once('-')
                        .and_then(|(_, p)| p.parse::<i32>().ok());
                    if !pid.is_some_and(crate::records::pid_alive) {
                        problem(
                            name,
                            "a volume partly made or removed by a kiln process that is gone".into(),
                            true,
                            Some(path),
                        );
                    }
                    continue;
                }
                let fault = match self.get(&name) {
                    Err(e) => Some(format!("its record cannot be read: {e}")),
                    Ok(v) if v.name != name => Some(format!("its record names {:?}", v.name)),
                    Ok(_) if !self.data_dir(&name).is_dir() => Some("has no data directory".into()),
                    Ok(_) => None,
                };
                if let Some(f) = fault {
                    // Not removed: its files may be someone's data.
                    problem(
                        name,
                        format!("{f} (not repairable: inspect and remove it)"),
                        false,
                        None,
                    );
                }
            }
        }
        let Ok(all) = Containers::new(self.store).containers() else {
            return;
        };
        for c in all {
            for m in c.mounts.iter().filter(|m| m.kind == "volume") {
                let name = m.name.as_deref().unwrap_or("");
                if self.get(name).is_err() {
                    problem(
                        c.id[..12].to_string(),
                        format!("container {} mounts volume {name}, which is gone", c.name),
                        false,
                        None,
                    );
                }
            }
        }
    }
}

/// Removes an `--rm` container and its anonymous volumes.
pub fn auto_remove(containers: &Containers, c: &Container) -> Result<()> {
    containers.remove(&c.id)?;
    Volumes::new(containers.store()).remove_anonymous(c);
    Ok(())
}

/// A container's mounts, decided: what the runner mounts, what the record
/// keeps, and the volumes lock, to hold until the record is written.
#[derive(Debug)]
pub struct Planned {
    pub mounts: Vec<MountSpec>,
    pub records: Vec<MountRecord>,
    made: Vec<String>,
    lock: Option<VolumesLock>,
}

impl Planned {
    /// Undoes the anonymous volumes made for a container that was not
    /// recorded after all.
    pub fn discard(mut self, store: &Store) {
        let v = Volumes::new(store);
        drop(self.lock.take());
        for n in &self.made {
            let _ = v.remove(n, true);
        }
    }

    /// Releases the volumes lock (the record is written).
    pub fn done(mut self) {
        self.lock.take();
    }
}

/// Decides a container's mounts: those of the `--volumes-from`
/// containers, then `requests` (which replace them at the same
/// destination), then an anonymous volume for each of the image's
/// `image_volumes` no mount covers. Missing volumes are made and empty
/// ones filled from the image's layers `lowers` (base first).
pub fn plan(
    store: &Store,
    lowers: &[PathBuf],
    requests: Vec<MountRequest>,
    volumes_from: &[String],
    image_volumes: &[String],
) -> Result<Planned> {
    let vols = Volumes::new(store);
    let lock = vols.lock()?;
    let mut planned = Planned {
        mounts: Vec::new(),
        records: Vec::new(),
        made: Vec::new(),
        lock: Some(lock),
    };
    match fill_plan(
        store,
        lowers,
        requests,
        volumes_from,
        image_volumes,
        &mut planned,
    ) {
        Ok(()) => Ok(planned),
        Err(e) => {
            planned.discard(store);
            Err(e)
        }
    }
}

fn fill_plan(
    store: &Store,
    lowers: &[PathBuf],
    requests: Vec<MountRequest>,
    volumes_from: &[String],
    image_volumes: &[String],
    planned: &mut Planned,
) -> Result<()> {
    let vols = Volumes::new(store);
    let containers = Containers::new(store);
    let mut inherited: Vec<MountRecord> = Vec::new();
    for spec in volumes_from {
        let (name, ro) = mountopts::parse_volumes_from(spec)?;
        let c = containers.container(&name)?;
        for m in c.mounts.into_iter().filter(|m| m.kind != "tmpfs") {
            let mut m = m;
            if let Some(ro) = ro {
                m.readonly = ro;
            }
            // The other container's anonymous volume is not this one's
            // to remove.
            m.anonymous = false;
            inherited.retain(|o| o.destination != m.destination);
            inherited.push(m);
        }
    }
    let mut explicit: Vec<MountRecord> = Vec::new();
    for r in requests {
        if explicit.iter().any(|m| m.destination == r.destination()) {
            return Err(Error::Invalid(format!(
                "duplicate mount point: {}",
                r.destination()
            )));
        }
        explicit.push(match r {
            MountRequest::Bind {
                source,
                destination,
                readonly,
            } => MountRecord {
                kind: "bind".into(),
                name: None,
                source: Some(source),
                destination,
                readonly,
                anonymous: false,
                options: Vec::new(),
            },
            MountRequest::Volume {
                name,
                destination,
                readonly,
                nocopy,
            } => {
                let anonymous = name.is_none();
                let name = match name {
                    Some(n) => n,
                    None => crate::names::new_id()?,
                };
                MountRecord {
                    kind: "volume".into(),
                    name: Some(name),
                    source: None,
                    destination,
                    readonly,
                    anonymous,
                    options: if nocopy {
                        vec!["nocopy".into()]
                    } else {
                        Vec::new()
                    },
                }
            }
            MountRequest::Tmpfs {
                destination,
                options,
            } => MountRecord {
                kind: "tmpfs".into(),
                name: None,
                source: None,
                destination,
                readonly: false,
                anonymous: false,
                options,
            },
        });
    }
    inherited.retain(|m| !explicit.iter().any(|e| e.destination == m.destination));
    let mut all: Vec<MountRecord> = inherited.into_iter().chain(explicit).collect();
    for v in image_volumes {
        let dest = crate::options::clean_abs(v);
        if all.iter().any(|m| m.destination == dest) {
            continue;
        }
        all.push(MountRecord {
            kind: "volume".into(),
            name: Some(crate::names::new_id()?),
            source: None,
            destination: dest,
            readonly: false,
            anonymous: true,
            options: Vec::new(),
        });
    }
    let image = Merged::new(lowers);
    for m in &mut all {
        match m.kind.as_str() {
            "volume" => {
                let name = m.name.clone().expect("a volume has a name");
                let (_, made) = vols.ensure(&name, BTreeMap::new(), m.anonymous)?;
                if made {
                    planned.made.push(name.clone());
                }
                let data = vols.data_dir(&name);
                if !m.options.iter().any(|o| o == "nocopy") {
                    copy_up(&image, &m.destination, &data).map_err(|e| {
                        Error::Invalid(format!(
                            "filling volume {name} from the image's {}: {e}",
                            m.destination
                        ))
                    })?;
                }
                m.source = Some(data.clone());
                planned.mounts.push(MountSpec::Bind {
                    source: data,
                    destination: m.destination.clone(),
                    readonly: m.readonly,
                });
            }
            "bind" => planned.mounts.push(MountSpec::Bind {
                source: m.source.clone().expect("a bind has a source"),
                destination: m.destination.clone(),
                readonly: m.readonly,
            }),
            _ => planned.mounts.push(MountSpec::Tmpfs {
                destination: m.destination.clone(),
                options: m.options.clone(),
            }),
        }
    }
    planned.records = all;
    Ok(())
}

/// docker's copy-up: an empty volume mounted at `dest` gets what the
/// image has there (owners, modes, times, xattrs; symlinks copied as
/// links, and `dest` itself resolved inside the image's root), and the
/// mode and owner of the image's directory.
fn copy_up(image: &Merged, dest: &str, data: &Path) -> std::io::Result<()> {
    if fs::read_dir(data)?.next().is_some() {
        return Ok(());
    }
    let found = match image.resolve(dest, true) {
        Ok((_, Some(f))) => f,
        // Nothing there (or not reachable): the volume stays empty.
        _ => return Ok(()),
    };
    let Node::Dir(dirs) = &found.node else {
        return Ok(());
    };
    let w = RootWriter::open(data, false)?;
    w.copy_merged_children(image, w.root(), dirs)?;
    let attrs = Attrs::of(&dirs[0], &found.meta);
    let root = fs::File::open(data)?;
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::fchown(&root, Some(attrs.uid), Some(attrs.gid))?;
    root.set_permissions(fs::Permissions::from_mode(attrs.mode))?;
    Ok(())
}
