//! Applying a layer tar to a directory without ever writing outside it.
//!
//! `tar`'s own `unpack` follows symlinks planted by earlier entries and
//! trusts names; here every parent directory is opened with
//! `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative)
//! resolve inside the target as they would in a chroot, and each entry is
//! created with `*at` calls relative to that parent.

mod small_files;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};

use crate::layer::{
    max_layer_size, not_tar, show_name, EntryCheck, EntryName, LayerError, SizeLimit, TarStats,
};
use crate::layer_files::{DirFacts, Fact, FileFacts, LayerFiles, Vouched, RECORD_MAX};
use sha2::Digest as _;
use small_files::{LinkSource, SmallFile, SmallFiles};
use std::os::unix::ffi::OsStrExt;

/// What a whiteout entry (`.wh.NAME`, `.wh..wh..opq`) turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Overlayfs form, for a layer unpacked as a lower directory: a 0/0
    /// character device, and the `trusted.overlay.opaque` xattr.
    Overlay,
    /// Applied: the named files are deleted from the target, as when layers
    /// are flattened into one tree.
    Delete,
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    pub whiteouts: Whiteouts,
    /// Set owners from the tar (needs root or a user namespace).
    pub same_owner: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            whiteouts: Whiteouts::Overlay,
            same_owner: rustix::process::geteuid().is_root(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    pub entries: u64,
    /// Device nodes that could not be created (no CAP_MKNOD).
    pub skipped_devices: u64,
}

/// The error of a syscall for the entry named `entry` (as the tar has
/// it), shown when it happens.
fn io_err<'a>(entry: &'a [u8], what: &'a str) -> impl FnOnce(rustix::io::Errno) -> LayerError + 'a {
    move |e| LayerError::BadEntry {
        entry: show_name(entry),
        reason: format!("{what}: {}", io::Error::from(e)),
    }
}

/// Unpacks an uncompressed layer tar into `dest` (which must exist). Every
/// entry is checked as on ingest ([`EntryCheck`]: names, whiteouts, types,
/// the size limit) before anything is written for it. The input is read to
/// its end, so a hashing reader underneath sees the whole layer.
pub fn unpack<R: Read>(
    input: R,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<UnpackStats, LayerError> {
    unpack_layer(input, dest, opts, None)
}

/// [`unpack`] that also records the facts of the paths it writes
/// ([`crate::layer_files`]), and uses `reuse`, an earlier layer of the
/// same build step: links from it the files whose facts match instead of
/// writing them, or (a [`Reuse::delta`]) writes only what differs from it.
/// `vouched`: digests the stream's writer gives for some files' data (see
/// [`Vouched`]).
pub fn unpack_recording<R: Read>(
    input: R,
    dest: &Path,
    opts: UnpackOptions,
    reuse: Option<Reuse>,
    vouched: Option<std::sync::Arc<Vouched>>,
) -> Result<(UnpackStats, LayerFiles), LayerError> {
    // An edit's layer has about the files of the one it links from: sized
    // once, the map does not hold its old and new tables at once while it
    // grows (5.8 MB of a 100k-file build's peak).
    let expected = reuse.as_ref().map_or(0, Reuse::len);
    let mut files = Files {
        reuse,
        record: Some(LayerFiles::with_capacity(expected)),
        vouched,
    };
    let stats = unpack_layer(input, dest, opts, Some(&mut files))?;
    Ok((stats, files.record.unwrap_or_default()))
}

/// [`unpack`] that makes the layer's small files on threads of their
/// own ([`small_files`]), as [`unpack_recording`] does, recording nothing:
/// for a layer a container's root is stacked from (a pulled or loaded
/// image's first `run`), where creating its many small files is most of
/// the time and a single thread leaves the machine's other cores idle.
pub(crate) fn unpack_threaded<R: Read>(
    input: R,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<UnpackStats, LayerError> {
    let mut files = Files {
        reuse: None,
        record: None,
        vouched: None,
    };
    unpack_layer(input, dest, opts, Some(&mut files))
}

fn unpack_layer<R: Read>(
    input: R,
    dest: &Path,
    opts: UnpackOptions,
    files: Option<&mut Files>,
) -> Result<UnpackStats, LayerError> {
    let limit = max_layer_size()?;
    let mut input = SizeLimit::new(input, limit);
    let res = unpack_limited(&mut input, dest, opts, limit, true, files);
    if let Some(e) = input.exceeded() {
        return Err(e);
    }
    let stats = res?;
    io::copy(&mut input, &mut io::sink())?;
    if let Some(e) = input.exceeded() {
        return Err(e);
    }
    Ok(stats)
}

/// An unpacked layer made by the same build step before (the previous
/// content of a COPY), whose files an unpack links when their facts
/// match: an edit of one file among many then creates one inode, not all.
/// Or, as a delta, whose paths it does not make at all.
pub struct Reuse {
    files: LayerFiles,
    /// `None` for a delta: nothing is linked.
    src: Option<LinkSource>,
}

impl Reuse {
    /// Files recorded for the layer linked from.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The layer directory `dir` and the facts recorded when it was
    /// unpacked.
    pub fn open(dir: &Path, files: LayerFiles) -> io::Result<Reuse> {
        let root = rfs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(Reuse {
            files,
            src: Some(LinkSource::new(root)),
        })
    }

    /// The facts recorded for an unpacked layer `files` (which must list
    /// every path of it): the unpack writes only the paths it lacks or
    /// whose facts differ, and directories above them, so that the
    /// directory made, stacked as a lower directory right above that
    /// layer's own, shows the new layer. An edit of one file among 100,000
    /// then makes four inodes, not 100,000 links. Only a layer that keeps
    /// every path of the earlier one and has no whiteouts or hard links is
    /// such a delta; for any other the unpack stops with
    /// [`LayerError::NotDelta`]. Needs owners set from the tar (root).
    pub fn delta(files: LayerFiles) -> Reuse {
        Reuse { files, src: None }
    }
}

/// A delta unpack's view of the layer below ([`Reuse::delta`]).
struct Delta {
    base: LayerFiles,
    /// Paths of `base` the new layer has (each counted once: a path named
    /// twice ends the delta).
    seen: usize,
    /// Directories with the facts they have in `base`, made only when
    /// something below them is.
    deferred: std::collections::HashMap<Box<[u8]>, DirFacts>,
}

impl Delta {
    /// Makes the deferred directories among `dir` and its ancestors, top
    /// down, as the tar gave them.
    fn make_ancestors(
        &mut self,
        root: &OwnedFd,
        dir: &[u8],
        dir_times: &mut Vec<(PathBuf, u64)>,
        entry: &[u8],
    ) -> Result<(), LayerError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let ends = dir
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| i)
            .chain((!dir.is_empty()).then_some(dir.len()));
        for end in ends {
            let rel = &dir[..end];
            let Some(facts) = self.deferred.remove(rel) else {
                continue;
            };
            let (parent_bytes, name) = split_rel(rel);
            let parent = ensure_dir(root, Path::new(OsStr::from_bytes(parent_bytes)), entry)?;
            let name = OsStr::from_bytes(name);
            let mode = Mode::from_raw_mode(facts.mode);
            rfs::mkdirat(&parent, name, mode).map_err(io_err(entry, "mkdir"))?;
            set_dir_facts(&parent, name, &facts, entry)?;
            dir_times.push((PathBuf::from(OsStr::from_bytes(rel)), facts.mtime));
        }
        Ok(())
    }
}

/// Owner, then mode (after chown, which clears set-id bits) of the
/// directory `name` just made in `parent`.
fn set_dir_facts(
    parent: &OwnedFd,
    name: &OsStr,
    facts: &DirFacts,
    entry: &[u8],
) -> Result<(), LayerError> {
    let (u, g) = (rfs::Uid::from_raw(facts.uid), rfs::Gid::from_raw(facts.gid));
    rfs::chownat(parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io_err(entry, "chown"))?;
    let fd = rfs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(entry, "open"))?;
    rfs::chmod(proc_path(&fd), Mode::from_raw_mode(facts.mode)).map_err(io_err(entry, "chmod"))
}

/// File facts an unpack records and reuses.
struct Files {
    reuse: Option<Reuse>,
    /// `None` once the layer turned out to have whiteouts: what they
    /// remove is not tracked, so nothing is recorded.
    record: Option<LayerFiles>,
    vouched: Option<std::sync::Arc<Vouched>>,
}

/// Unpacks a tar of plain files (a build context sent as an archive) into
/// `dest` with the same checks as a layer, but as a tree, not a layer:
/// owners are not set, whiteout names delete as when layers are applied,
/// and device nodes are refused, naming the entry: a context is the
/// user's files, and a device node in it would reach the host's device.
/// Stops at the end of the tar (the input may go on, as a pipe does).
pub fn unpack_tree<R: Read>(input: R, dest: &Path) -> Result<UnpackStats, LayerError> {
    let limit = max_layer_size()?;
    let mut input = SizeLimit::new(input, limit);
    let opts = UnpackOptions {
        whiteouts: Whiteouts::Delete,
        same_owner: false,
    };
    let res = unpack_limited(&mut input, dest, opts, limit, false, None);
    if let Some(e) = input.exceeded() {
        return Err(e);
    }
    res
}

fn unpack_limited<R: Read>(
    input: R,
    dest: &Path,
    opts: UnpackOptions,
    limit: u64,
    devices: bool,
    mut files: Option<&mut Files>,
) -> Result<UnpackStats, LayerError> {
    let root = rfs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    // The facts to link by stay here; the layer to link from goes with
    // the small files to the thread that makes them.
    let (reuse, src, mut delta) = match files.as_deref_mut().and_then(|f| f.reuse.take()) {
        Some(Reuse {
            files,
            src: Some(src),
        }) => (Some(files), Some(src), None),
        Some(Reuse { files, src: None }) => {
            if !opts.same_owner {
                return Err(LayerError::NotDelta("owners are not set from the tar"));
            }
            let delta = Delta {
                base: files,
                seen: 0,
                deferred: Default::default(),
            };
            (None, None, Some(delta))
        }
        None => (None, None, None),
    };
    let mut small = SmallFiles::new(src);
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    let res = unpack_entries(
        input,
        &root,
        opts,
        limit,
        devices,
        files,
        reuse.as_ref(),
        delta.as_mut(),
        &mut small,
        &mut dir_times,
    );
    // The files handed over come before the entry that failed, if one did.
    small.finish()?;
    let stats = res?;
    if delta.is_some_and(|d| d.seen != d.base.len()) {
        return Err(LayerError::NotDelta("it removes paths of the layer below"));
    }

    // Directory times last: creating their children changed them. A later
    // entry may have replaced a directory, or one above it, with a
    // symlink: each directory is reached again inside the root
    // (RESOLVE_IN_ROOT), and its own name is not followed.
    for (rel, secs) in dir_times.into_iter().rev() {
        let Some(name) = rel.file_name() else {
            continue;
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let Ok(parent) = open_in_root(&root, parent_rel) else {
            continue; // gone, or no longer a directory
        };
        let _ = rfs::utimensat(&parent, name, &times(secs), AtFlags::SYMLINK_NOFOLLOW);
    }
    Ok(stats)
}

/// The entries of the tar, each made in `root` or (a small file, when
/// `files` is given) handed to `small`.
#[allow(clippy::too_many_arguments)]
fn unpack_entries<R: Read>(
    input: R,
    root: &OwnedFd,
    opts: UnpackOptions,
    limit: u64,
    devices: bool,
    mut files: Option<&mut Files>,
    reuse: Option<&LayerFiles>,
    mut delta: Option<&mut Delta>,
    small: &mut SmallFiles,
    dir_times: &mut Vec<(PathBuf, u64)>,
) -> Result<UnpackStats, LayerError> {
    let mut archive = tar::Archive::new(input);
    let mut stats = UnpackStats::default();
    // Hard links may point into lower layers when a layer is applied onto
    // a tree, so they need not be earlier in this archive.
    let mut check = EntryCheck::new(limit, false);
    let mut tar_stats = TarStats::default();
    let mut parents: Option<OpenParent> = None;
    let own_ids = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );

    let vouched = files.as_ref().and_then(|f| f.vouched.clone());
    let entries = archive.entries().map_err(|e| not_tar(e, tar_stats))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_tar(e, tar_stats))?;
        tar_stats.entries += 1;
        let Some(checked) = check.check(&entry)? else {
            continue;
        };
        let raw = checked.raw.as_slice();
        let kind = checked.kind;
        if delta.is_some() {
            let refused = if !matches!(checked.name, EntryName::Path(_)) {
                Some("it has whiteouts")
            } else if kind == tar::EntryType::Link {
                Some("it has hard links")
            } else if checked.again {
                Some("it names a path twice")
            } else {
                None
            };
            if let Some(why) = refused {
                return Err(LayerError::NotDelta(why));
            }
        }
        // What may touch a path a small file still to be made has: the
        // same path again, a whiteout, a hard link (to it, maybe).
        if checked.again
            || kind == tar::EntryType::Link
            || !matches!(checked.name, EntryName::Path(_))
        {
            small.sync()?;
        }
        if !matches!(checked.name, EntryName::Path(_)) {
            // Whiteouts may remove directories, a remembered parent too.
            parents = None;
            if let Some(f) = files.as_deref_mut() {
                f.record = None;
            }
        }
        let rel = match &checked.name {
            EntryName::Opaque { dir } => {
                let parent = ensure_dir(root, dir, raw)?;
                match opts.whiteouts {
                    Whiteouts::Overlay => rfs::fsetxattr(
                        &parent,
                        "trusted.overlay.opaque",
                        b"y",
                        rfs::XattrFlags::empty(),
                    )
                    .map_err(io_err(raw, "marking the directory opaque"))?,
                    Whiteouts::Delete => clear_dir_except(&parent, dir, &check, raw)?,
                }
                continue;
            }
            EntryName::Whiteout { dir, hidden } => {
                let parent = ensure_dir(root, dir, raw)?;
                remove_existing(&parent, hidden, raw)?;
                if opts.whiteouts == Whiteouts::Overlay {
                    rfs::mknodat(&parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
                        .map_err(io_err(raw, "creating a whiteout"))?;
                }
                continue;
            }
            EntryName::Path(p) => p.as_path(),
        };
        let rel_bytes = rel.as_os_str().as_bytes();
        let (parent_bytes, name) = split_rel(rel_bytes);
        let name = OsStr::from_bytes(name);
        if let Some(f) = files.as_deref_mut() {
            // A path the layer names again: a directory again is only its
            // metadata, but anything else replaces what was there, maybe a
            // directory with recorded files below: nothing is recorded.
            if checked.again {
                if kind.is_dir() {
                    if let Some(r) = f.record.as_mut() {
                        r.exclude(rel_bytes);
                    }
                } else {
                    f.record = None;
                }
            }
            // Hard links share an inode: not one path's own.
            if let (Some(r), tar::EntryType::Link) = (f.record.as_mut(), kind) {
                r.exclude(rel_bytes);
                if let Some(t) = &checked.link_target {
                    r.exclude(t.as_os_str().as_bytes());
                }
            }
        }
        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode()? & 0o7777);
        let recording = files.as_ref().is_some_and(|f| f.record.is_some());
        let plain_file =
            files.is_some() && kind == tar::EntryType::Regular && !has_xattrs(&mut entry)?;
        // A small plain file: read whole (and hashed, when facts are
        // recorded), and made (or linked from the earlier layer if that
        // has the same) beside this thread. A larger one is hashed as it
        // is written, for a later delta over this layer: only when facts
        // are recorded and owners are set from the tar, as deltas need
        // (else it is listed only).
        let small_file = plain_file && entry.size() <= RECORD_MAX;
        let large_file = recording && plain_file && !small_file && opts.same_owner;
        let header_ids = || -> Result<(u32, u32), LayerError> {
            Ok((header.uid()? as u32, header.gid()? as u32))
        };
        // The owner the unpack gives what it makes (but a small file, whose
        // directory may hand it its group).
        let ids = if opts.same_owner {
            header_ids()?
        } else {
            own_ids
        };
        let dir_facts = if recording && kind.is_dir() && !has_xattrs(&mut entry)? {
            Some(DirFacts {
                mtime: header.mtime().unwrap_or(0),
                mode: mode.as_raw_mode(),
                uid: ids.0,
                gid: ids.1,
            })
        } else {
            None
        };
        let link_facts = (recording && kind == tar::EntryType::Symlink).then(|| {
            let target = entry.link_name_bytes().unwrap_or_default();
            FileFacts {
                size: target.len() as u64,
                mtime: header.mtime().unwrap_or(0),
                mode: mode.as_raw_mode(),
                uid: ids.0,
                gid: ids.1,
                sha: sha2::Sha256::digest(&target).into(),
            }
        });
        // A delta leaves out what the layer below has the same (and
        // records only what it makes); above anything else it makes the
        // directories it left out.
        let mut read = None;
        if let Some(d) = delta.as_deref_mut() {
            // One lookup of the path in the layer below, whatever it is.
            let known = d.base.fact(rel_bytes).copied();
            if known.is_some() {
                d.seen += 1;
            }
            if let Some(f) = dir_facts.filter(|f| known == Some(Fact::Dir(*f))) {
                d.deferred.insert(rel_bytes.into(), f);
                stats.entries += 1;
                continue;
            }
            if link_facts.is_some_and(|f| known == Some(Fact::Symlink(f))) {
                stats.entries += 1;
                continue;
            }
            if small_file || (large_file && entry.size() <= DELTA_READ_MAX) {
                // Compared first: by the digest the writer vouched for
                // without reading the bytes, else read whole and hashed.
                // A larger file is compared once written, and removed if
                // the same.
                let sha = vouched
                    .as_deref()
                    .and_then(|v| v.take(entry.raw_file_position(), entry.size()));
                let size = entry.size();
                let same = |sha| known == Some(Fact::File(file_facts(&header, size, ids, sha)));
                if sha.is_some_and(same) {
                    stats.entries += 1;
                    continue;
                }
                let (data, sha) = read_hashed(&mut entry, raw, sha)?;
                if same(sha) {
                    stats.entries += 1;
                    continue;
                }
                read = Some((data, file_facts(&header, size, ids, sha)));
            }
            d.make_ancestors(root, parent_bytes, dir_times, raw)?;
        }
        if let Some(r) = files.as_deref_mut().and_then(|f| f.record.as_mut()) {
            // Files are recorded once read; every other path is listed,
            // directories and symlinks with their facts.
            if let Some(f) = dir_facts {
                r.insert_dir(rel_bytes, f);
            } else if let Some(f) = link_facts {
                r.insert_symlink(rel_bytes, f);
            } else if !small_file && !large_file {
                r.exclude(rel_bytes);
            }
        }
        let parent_rel = Path::new(OsStr::from_bytes(parent_bytes));
        let is_file = matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
        );
        // A run of regular files in one directory (most of any layer)
        // reuses the parent opened for the first: creating or replacing a
        // file does not move its parent. Any other entry may, so it drops
        // the descriptor and the next entry resolves its parent again.
        let mut parent = match parents.take() {
            Some(p) if is_file && p.rel.as_os_str().as_bytes() == parent_bytes => p,
            _ => OpenParent::open(root, parent_rel.to_path_buf(), raw)?,
        };

        let mut existing_is_dir = false;
        if !is_file {
            let existing = rfs::statat(&*parent.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok();
            existing_is_dir = existing
                .as_ref()
                .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if existing.is_some() && !(kind.is_dir() && existing_is_dir) {
                // It may hold small files still to be made.
                small.sync()?;
                remove_existing(&parent.fd, name, raw)?;
            }
        }
        // A mode the create can give (no set-id or sticky bit, which chown
        // would clear, nothing the umask takes away) saves the chmod.
        let mode_at_create = is_file && created_mode_is(mode);
        if small_file {
            let owner = if opts.same_owner {
                Some(header_ids()?)
            } else if !parent.set_gid()? {
                Some(own_ids)
            } else {
                None // the directory's group, not ours
            };
            match owner {
                Some((uid, gid)) => {
                    let (data, facts) = match read.take() {
                        Some(read) => read,
                        None => {
                            let sha = vouched
                                .as_deref()
                                .and_then(|v| v.take(entry.raw_file_position(), entry.size()))
                                // Nothing is recorded: no digest is needed.
                                .or((!recording).then_some([0; 32]));
                            let (data, sha) = read_hashed(&mut entry, raw, sha)?;
                            (data, file_facts(&header, entry.size(), (uid, gid), sha))
                        }
                    };
                    if let Some(r) = files.as_deref_mut().and_then(|f| f.record.as_mut()) {
                        r.insert(rel_bytes, facts);
                    }
                    // A file just created already belongs to our ids,
                    // unless its directory is set-group-ID and handed it
                    // the directory's group.
                    let chown = (opts.same_owner && ((uid, gid) != own_ids || parent.set_gid()?))
                        .then_some((uid, gid));
                    let link = reuse.is_some_and(|r| r.get(rel_bytes) == Some(&facts));
                    let EntryName::Path(rel) = checked.name else {
                        unreachable!("a path entry")
                    };
                    small.push(SmallFile {
                        parent: parent.fd.clone(),
                        rel,
                        raw: checked.raw,
                        link,
                        facts,
                        data,
                        mode,
                        mode_at_create,
                        chown,
                    })?;
                    stats.entries += 1;
                    parents = Some(parent);
                    continue;
                }
                // Written below, listed without facts.
                None => {
                    if let Some(r) = files.as_deref_mut().and_then(|f| f.record.as_mut()) {
                        r.exclude(rel_bytes);
                    }
                }
            }
        }
        // The entry itself, opened without following a symlink, for
        // chmod and times (chmodat cannot refuse to follow one).
        let mut node_fd: Option<OwnedFd> = None;
        let mut file_fd: Option<OwnedFd> = None;
        match kind {
            tar::EntryType::Directory => {
                if !existing_is_dir {
                    rfs::mkdirat(&*parent.fd, name, mode).map_err(io_err(raw, "mkdir"))?;
                }
                dir_times.push((rel.to_path_buf(), header.mtime().unwrap_or(0)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = create_file(
                    &parent.fd,
                    name,
                    mode_at_create.then_some(mode),
                    raw,
                    || small.sync(),
                )?;
                let mut f = File::from(fd);
                match read.take() {
                    // A delta's, read to be compared.
                    Some((data, facts)) => {
                        f.write_all(&data).map_err(|e| read_fault(e, raw))?;
                        if let Some(r) = files.as_deref_mut().and_then(|f| f.record.as_mut()) {
                            r.insert(rel_bytes, facts);
                        }
                    }
                    None if large_file => {
                        let mut w = HashingFile {
                            file: &mut f,
                            sha: sha2::Sha256::new(),
                            n: 0,
                        };
                        io::copy(&mut entry, &mut w).map_err(|e| read_fault(e, raw))?;
                        let facts = file_facts(&header, w.n, ids, w.sha.finalize().into());
                        if delta
                            .as_ref()
                            .is_some_and(|d| d.base.get(rel_bytes) == Some(&facts))
                        {
                            // The layer below has it: not part of the delta.
                            drop(f);
                            rfs::unlinkat(&*parent.fd, name, AtFlags::empty())
                                .map_err(io_err(raw, "unlink"))?;
                            stats.entries += 1;
                            continue;
                        }
                        if let Some(r) = files.as_deref_mut().and_then(|f| f.record.as_mut()) {
                            r.insert(rel_bytes, facts);
                        }
                    }
                    None => {
                        io::copy(&mut entry, &mut f).map_err(|e| read_fault(e, raw))?;
                    }
                }
                file_fd = Some(f.into());
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                rfs::symlinkat(target.as_slice(), &*parent.fd, name)
                    .map_err(io_err(raw, "symlink"))?;
            }
            tar::EntryType::Link => {
                let target = checked
                    .link_target
                    .as_deref()
                    .expect("checked hard links have a target");
                let tparent = ensure_dir(root, target.parent().unwrap_or(Path::new("")), raw)?;
                let tname = target.file_name().expect("clean paths end in a name");
                rfs::linkat(&tparent, tname, &*parent.fd, name, AtFlags::empty())
                    .map_err(io_err(raw, "hard link"))?;
                // A hard link shares the target's inode and metadata.
                stats.entries += 1;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block if !devices => {
                return Err(LayerError::BadEntry {
                    entry: show_name(raw),
                    reason: "device nodes are not allowed here".into(),
                });
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Char => (FileType::CharacterDevice, device(&header)),
                    tar::EntryType::Block => (FileType::BlockDevice, device(&header)),
                    _ => (FileType::Fifo, 0),
                };
                match rfs::mknodat(&*parent.fd, name, ft, mode, dev) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::PERM) if ft != FileType::Fifo => {
                        stats.skipped_devices += 1;
                        continue;
                    }
                    Err(e) => return Err(io_err(raw, "mknod")(e)),
                }
            }
            _ => unreachable!("EntryCheck admits only the types above"),
        }
        if file_fd.is_none() && kind != tar::EntryType::Symlink {
            node_fd = Some(
                rfs::openat(
                    &*parent.fd,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err(raw, "open"))?,
            );
        }

        if opts.same_owner {
            let uid = header.uid()? as u32;
            let gid = header.gid()? as u32;
            // A file just created already belongs to our ids, unless its
            // directory is set-group-ID and handed it the directory's group.
            let ours = is_file && (uid, gid) == own_ids && !parent.set_gid()?;
            if !ours {
                let (u, g) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
                rfs::chownat(
                    &*parent.fd,
                    name,
                    Some(u),
                    Some(g),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io_err(raw, "chown"))?;
            }
        }
        // After chown, which clears set-id bits.
        match (&file_fd, &node_fd) {
            (Some(_), _) if mode_at_create => {}
            (Some(fd), _) => rfs::fchmod(fd, mode).map_err(io_err(raw, "chmod"))?,
            // An O_PATH descriptor of a node that is not a symlink: its
            // /proc link reaches exactly that inode.
            (None, Some(fd)) => rfs::chmod(proc_path(fd), mode).map_err(io_err(raw, "chmod"))?,
            (None, None) => {}
        }
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts.flatten() {
                let Some(key) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
                    continue;
                };
                if let Some(fd) = &file_fd {
                    // Best effort, as docker: some filesystems refuse xattrs.
                    let _ = rfs::fsetxattr(fd, key, ext.value_bytes(), rfs::XattrFlags::empty());
                }
            }
        }
        if !kind.is_dir() {
            let t = times(header.mtime().unwrap_or(0));
            let r = match &file_fd {
                Some(fd) => rfs::futimens(fd, &t),
                None => rfs::utimensat(&*parent.fd, name, &t, AtFlags::SYMLINK_NOFOLLOW),
            };
            r.map_err(io_err(raw, "set times"))?;
        }
        stats.entries += 1;
        if is_file {
            parents = Some(parent);
        }
    }
    Ok(stats)
}

/// A large file of a delta is read whole to be compared with the layer
/// below up to this size; a larger one is written, hashed as it is, and
/// removed again if the same.
const DELTA_READ_MAX: u64 = 1 << 20;

/// A file being written, and the sha256 of what was written to it.
struct HashingFile<'a> {
    file: &'a mut File,
    sha: sha2::Sha256,
    n: u64,
}

impl io::Write for HashingFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A regular file's bytes, read whole, and their sha256: `vouched`, the
/// one the stream's writer gave ([`Vouched`]), else hashed here.
fn read_hashed<R: Read>(
    entry: &mut tar::Entry<R>,
    raw: &[u8],
    vouched: Option<[u8; 32]>,
) -> Result<(Vec<u8>, [u8; 32]), LayerError> {
    let mut data = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut data)
        .map_err(|e| read_fault(e, raw))?;
    let sha = vouched.unwrap_or_else(|| sha2::Sha256::digest(&data).into());
    Ok((data, sha))
}

/// The facts of a regular file of `size` bytes with this `sha` that the
/// entry of `header` makes, owned by `ids`.
fn file_facts(header: &tar::Header, size: u64, (uid, gid): (u32, u32), sha: [u8; 32]) -> FileFacts {
    FileFacts {
        size,
        mtime: header.mtime().unwrap_or(0),
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid,
        gid,
        sha,
    }
}

/// Extended attributes in the entry's PAX header (the linked inode of an
/// earlier layer would not have them set the same way).
fn has_xattrs<R: Read>(entry: &mut tar::Entry<R>) -> Result<bool, LayerError> {
    Ok(match entry.pax_extensions()? {
        Some(exts) => exts
            .flatten()
            .any(|e| e.key().is_ok_and(|k| k.starts_with("SCHILY.xattr."))),
        None => false,
    })
}

/// An error while reading an entry's data: a decompression fault or the
/// size limit, else the entry's data is corrupt or cut short.
fn read_fault(e: io::Error, entry: &[u8]) -> LayerError {
    if let Some(LayerError::TooLarge { limit }) =
        e.get_ref().and_then(|i| i.downcast_ref::<LayerError>())
    {
        return LayerError::TooLarge { limit: *limit };
    }
    crate::layer::truncated(e, &show_name(entry))
}

fn device(h: &tar::Header) -> u64 {
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    rustix::fs::makedev(major, minor)
}

/// Access and modification times of `secs` (a tar's mtime).
fn times(secs: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The directory a run of entries is created in, opened inside the root.
struct OpenParent {
    rel: PathBuf,
    /// Shared with the small files made in it on another thread.
    fd: Arc<OwnedFd>,
    /// Whether it is set-group-ID, asked once per directory.
    set_gid: Option<bool>,
}

impl OpenParent {
    fn open(root: &OwnedFd, rel: PathBuf, entry: &[u8]) -> Result<OpenParent, LayerError> {
        let fd = ensure_dir(root, &rel, entry)?;
        Ok(OpenParent {
            rel,
            fd: Arc::new(fd),
            set_gid: None,
        })
    }

    fn set_gid(&mut self) -> Result<bool, LayerError> {
        if let Some(s) = self.set_gid {
            return Ok(s);
        }
        let st = rfs::fstat(&*self.fd).map_err(io::Error::from)?;
        let s = Mode::from_raw_mode(st.st_mode).contains(Mode::SGID);
        self.set_gid = Some(s);
        Ok(s)
    }
}

/// Does a file created with `mode` get exactly `mode`? Not when it has a
/// set-id or sticky bit (chown clears set-id bits, so they come after it),
/// nor when the process umask removes any of its bits (read once from
/// /proc; unknown means no).
fn created_mode_is(mode: Mode) -> bool {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let umask = UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    });
    let m = mode.as_raw_mode();
    umask.is_some_and(|u| m & 0o7000 == 0 && m & u == 0)
}

/// Opens `rel` (a directory inside the root), creating missing components.
/// `RESOLVE_IN_ROOT` keeps every symlink and `..` inside the root.
fn ensure_dir(root: &OwnedFd, rel: &Path, entry: &[u8]) -> Result<OwnedFd, LayerError> {
    match open_in_root(root, rel) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) => {
            let parent = ensure_dir(root, rel.parent().unwrap_or(Path::new("")), entry)?;
            let name = rel.file_name().expect("non-empty path has a name");
            match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_err(entry, "creating a parent directory")(e)),
            }
            open_in_root(root, rel).map_err(io_err(entry, "opening its parent directory"))
        }
        Err(e) => Err(io_err(entry, "opening its parent directory")(e)),
    }
}

/// A cleaned relative path's directory (empty for the root) and name:
/// `Path::parent` and `file_name` parse components, twice per entry.
fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b"", rel),
    }
}

/// Opens the directory `rel` as if `root` were `/`.
fn open_in_root(root: &OwnedFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let target = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rfs::openat2(root, target, flags, Mode::empty(), resolve)
}

/// Removes `name` in `parent` (recursively for a directory) without
/// following a symlink at `name`.
/// Creates the regular file `name` in `parent`, never following a link:
/// with `mode` when the create gives it exactly, else 0600 until a chmod.
/// Most names are new: created first, and only on EEXIST is what is there
/// removed (after `before_remove`), then created again.
fn create_file(
    parent: &OwnedFd,
    name: &OsStr,
    mode: Option<Mode>,
    entry: &[u8],
    before_remove: impl FnOnce() -> Result<(), LayerError>,
) -> Result<OwnedFd, LayerError> {
    let create = || {
        rfs::openat(
            parent,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode.unwrap_or(Mode::from_raw_mode(0o600)),
        )
    };
    match create() {
        Err(rustix::io::Errno::EXIST) => {
            before_remove()?;
            remove_existing(parent, name, entry)?;
            create()
        }
        r => r,
    }
    .map_err(io_err(entry, "create"))
}

fn remove_existing(parent: &OwnedFd, name: &OsStr, entry: &[u8]) -> Result<(), LayerError> {
    let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err(entry, "stat")(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        // The /proc link names the parent we already opened safely; the last
        // component is a real directory, not a symlink, so nothing outside.
        let p = proc_path(parent).join(name);
        std::fs::remove_dir_all(&p).map_err(|e| LayerError::BadEntry {
            entry: show_name(entry),
            reason: format!("removing {}: {e}", show_name(name.as_bytes())),
        })
    } else {
        rfs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err(entry, "unlink"))
    }
}

/// Deletes every child of the directory not made by this layer (an
/// opaque whiteout applied onto a tree).
fn clear_dir_except(
    dir: &OwnedFd,
    dir_rel: &Path,
    made: &EntryCheck,
    entry: &[u8],
) -> Result<(), LayerError> {
    let listing = std::fs::read_dir(proc_path(dir)).map_err(|e| LayerError::BadEntry {
        entry: show_name(entry),
        reason: format!("listing its directory: {e}"),
    })?;
    for child in listing {
        let child = child?;
        let name = child.file_name();
        if !made.made(dir_rel.join(&name).as_os_str().as_bytes()) {
            remove_existing(dir, &name, entry)?;
        }
    }
    Ok(())
}

fn proc_path(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}
