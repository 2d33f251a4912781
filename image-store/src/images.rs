//! Images as `index.json` entries: lookup by name, ID or ID prefix, tagging,
//! removal with docker's untag rules, and garbage collection of blobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::model::{media, Descriptor, ImageConfig, Index, Manifest};
use crate::reference::Reference;
use crate::store::Store;

/// One image in the store: a manifest, its config, and the names it has.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// Fully normalized names (`localhost/busybox:latest`) of this manifest.
    pub names: Vec<String>,
}

impl Image {
    /// The image ID: the digest of the config blob.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }

    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest_descriptor.digest
    }

    /// Bytes of all layers as stored locally (uncompressed tars).
    pub fn size(&self) -> u64 {
        self.manifest.layers.iter().map(|l| l.size).sum()
    }
}

/// An image whose manifest or config blob cannot be read (missing or
/// corrupt). Listed apart, so that one damaged image does not hide the
/// others; `system check --repair` removes it.
#[derive(Debug, Clone)]
pub struct BrokenImage {
    pub manifest: Digest,
    /// The image ID, when the manifest could be read.
    pub id: Option<Digest>,
    pub names: Vec<String>,
    /// `manifest` or `config`.
    pub what: &'static str,
    pub blob: Digest,
    /// `is missing`, `is corrupt: …`, `does not parse: …`.
    pub reason: String,
}

impl BrokenImage {
    /// How to refer to it: its first name, else its manifest digest.
    pub fn label(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.manifest.to_string())
    }

    /// The error for a lookup of this image under `name`.
    pub fn error(&self, name: &str) -> StoreError {
        StoreError::BrokenImage {
            name: name.to_string(),
            what: self.what,
            blob: self.blob.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// The store's images: those that can be read, and those that cannot.
#[derive(Debug, Default)]
pub struct ImageList {
    pub images: Vec<Image>,
    pub broken: Vec<BrokenImage>,
}

impl ImageList {
    /// [`Store::resolve`] over this list: a name that only a broken image
    /// answers to fails naming its blob.
    pub fn find(&self, name: &str) -> Result<Image> {
        match find(&self.images, name) {
            Err(StoreError::NoSuchImage(n)) => match find_broken(&self.broken, name) {
                Some(b) => Err(b.error(name)),
                None => Err(StoreError::NoSuchImage(n)),
            },
            r => r,
        }
    }
}

/// Why a blob could not be read, in a few words.
fn blob_fault(e: &StoreError) -> String {
    match e {
        StoreError::MissingBlob(_) => "is missing".into(),
        StoreError::CorruptBlob { reason, .. } => format!("is corrupt: {reason}"),
        StoreError::Json { source, .. } => format!("does not parse: {source}"),
        e => format!("cannot be read: {e}"),
    }
}

/// What `rmi` did, in docker's words.
#[derive(Debug, Default)]
pub struct RemoveReport {
    pub untagged: Vec<String>,
    pub deleted: Vec<Digest>,
}

impl Store {
    /// Every image in the store, one per distinct manifest, names merged.
    /// Read under the shared collector lock, so no `rmi` deletes a blob of
    /// an image between reading `index.json` and reading the blob.
    /// Images whose manifest or config cannot be read are left out (see
    /// [`Store::image_list`]).
    pub fn images(&self) -> Result<Vec<Image>> {
        Ok(self.image_list()?.images)
    }

    /// [`Store::images`] for a caller that holds a lock on the collector
    /// (shared or exclusive) already.
    pub(crate) fn images_locked(&self) -> Result<Vec<Image>> {
        Ok(self.image_list_locked()?.images)
    }

    /// Every image, the readable ones and the broken ones apart.
    pub fn image_list(&self) -> Result<ImageList> {
        let _r = self.reader_lock()?;
        self.image_list_locked()
    }

    /// [`Store::image_list`] for a caller that holds a collector lock.
    pub(crate) fn image_list_locked(&self) -> Result<ImageList> {
        let index = self.read_index()?;
        let mut by_manifest: BTreeMap<Digest, (Descriptor, Vec<String>)> = BTreeMap::new();
        let mut order = Vec::new();
        for d in &index.manifests {
            if !is_image_manifest(d) {
                continue;
            }
            let slot = by_manifest.entry(d.digest.clone()).or_insert_with(|| {
                order.push(d.digest.clone());
                (d.clone(), Vec::new())
            });
            if let Some(n) = d.ref_name() {
                if is_full_reference(n) {
                    slot.1.push(n.to_string());
                }
            }
        }
        let mut out = ImageList::default();
        for digest in order {
            let (desc, names) = by_manifest.remove(&digest).expect("inserted above");
            match self.load_image(desc, names) {
                Ok(img) => out.images.push(img),
                Err(b) => out.broken.push(*b),
            }
        }
        Ok(out)
    }

    fn load_image(&self, desc: Descriptor, names: Vec<String>) -> Result<Image, Box<BrokenImage>> {
        let broken = |id: Option<&Digest>, what, blob: &Digest, e: StoreError| {
            Box::new(BrokenImage {
                manifest: desc.digest.clone(),
                id: id.cloned(),
                names: names.clone(),
                what,
                blob: blob.clone(),
                reason: blob_fault(&e),
            })
        };
        let manifest: Manifest = self
            .read_json(&desc.digest)
            .map_err(|e| broken(None, "manifest", &desc.digest, e))?;
        let cfg = &manifest.config.digest;
        let config: ImageConfig = self
            .read_json(cfg)
            .map_err(|e| broken(Some(cfg), "config", cfg, e))?;
        let mut desc = desc;
        desc.set_ref_name(None);
        Ok(Image {
            manifest_descriptor: desc,
            manifest,
            config,
            names,
        })
    }

    /// Finds the image a user named: a reference (short names try
    /// `localhost/` then `docker.io/`), a full ID (`sha256:…` or 64 hex
    /// digits) or a unique ID prefix of at least 4 hex digits.
    /// Takes the shared collector lock while it reads; a caller that goes
    /// on to write holds a [`Store::ingest`] (the writer lock) around both.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        let _r = self.reader_lock()?;
        self.resolve_locked(name)
    }

    /// [`Store::resolve`] for a caller that holds a collector lock already.
    pub fn resolve_locked(&self, name: &str) -> Result<Image> {
        if let Some(img) = self.resolve_by_name(name)? {
            return Ok(img);
        }
        self.image_list_locked()?.find(name)
    }

    /// The image stored under manifest `digest` (as a build or a pull just
    /// stored it), read from `index.json` and its own two blobs: lookups
    /// by ID read every image's config. For a caller that holds a
    /// collector lock.
    pub fn image_by_manifest_locked(&self, digest: &Digest) -> Result<Image> {
        let index = self.read_index()?;
        self.load_indexed(&index, digest)
            .ok_or_else(|| StoreError::NoSuchImage(digest.to_string()))?
            .map_err(|b| b.error(&digest.to_string()))
    }

    /// The image of manifest `digest` as `index` lists it (its first
    /// entry, and the full names of all its entries, in index order, as
    /// [`Store::image_list`] has them); `None` when no entry has it.
    fn load_indexed(
        &self,
        index: &Index,
        digest: &Digest,
    ) -> Option<Result<Image, Box<BrokenImage>>> {
        let mut entries = index
            .manifests
            .iter()
            .filter(|d| d.digest == *digest && is_image_manifest(d));
        let first = entries.next()?.clone();
        let names = std::iter::once(&first)
            .chain(entries)
            .filter_map(|d| d.ref_name())
            .filter(|n| is_full_reference(n))
            .map(str::to_string)
            .collect();
        Some(self.load_image(first, names))
    }

    /// A plain name's image read from `index.json` and its own two blobs,
    /// not from every image's: a build's `FROM busybox` in a store of a
    /// thousand images reads two blobs, not two thousand. `None` leaves
    /// the lookup to [`find`] over the whole list: a name that could be
    /// an ID prefix, one with a digest, one no index entry carries, or
    /// one whose image cannot be read (a later candidate may answer).
    fn resolve_by_name(&self, name: &str) -> Result<Option<Image>> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Ok(r) = name.parse::<Reference>() else {
            return Ok(None);
        };
        let index = self.read_index()?;
        for cand in r.candidates() {
            if cand.digest().is_some() {
                return Ok(None);
            }
            let want = cand.to_string();
            let hit = index
                .manifests
                .iter()
                .find(|d| is_image_manifest(d) && d.ref_name() == Some(want.as_str()));
            if let Some(hit) = hit {
                return Ok(self.load_indexed(&index, &hit.digest).and_then(Result::ok));
            }
        }
        Ok(None)
    }

    /// `kiln tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<Image> {
        let target: Reference = target.parse()?;
        // Resolved under the lock: an `rmi` cannot delete the source's
        // blobs between the lookup and the new name.
        let ingest = self.ingest()?;
        let img = self.resolve_locked(source)?;
        ingest.add_image(&img.manifest_descriptor, &[target]);
        ingest.commit()?;
        Ok(img)
    }

    /// `kiln rmi [-f] NAME`, with docker's rules: a name that is one of
    /// several tags only untags; removing by ID an image with tags in more
    /// than one repository needs `force`; blobs nothing references any more
    /// are deleted. `in_use` names the container using an image, if any.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<RemoveReport> {
        let _gc = self.collector_lock()?;
        let list = self.image_list_locked()?;
        let img = list.find(name)?;
        let all = list.images;
        let id = img.id().clone();
        // Was it named by one of its tags?
        let by_tag = name.parse::<Reference>().ok().and_then(|r| {
            r.candidates()
                .into_iter()
                .map(|c| c.to_string())
                .find(|c| img.names.contains(c))
        });
        let mut report = RemoveReport::default();
        // All manifests that share this image ID are the same image.
        let same_id: Vec<&Image> = all.iter().filter(|i| *i.id() == id).collect();
        let all_names: Vec<String> = same_id.iter().flat_map(|i| i.names.clone()).collect();

        if let Some(tag) = by_tag {
            if all_names.len() > 1 {
                self.update_index(|index| {
                    untag_in(index, &tag);
                    Ok(())
                })?;
                report.untagged.push(tag);
                return Ok(report);
            }
        } else {
            let repos: BTreeSet<&str> = all_names.iter().map(|n| repo_of(n)).collect();
            if repos.len() > 1 && !force {
                return Err(StoreError::MultipleRepositories {
                    id: id.short().to_string(),
                });
            }
        }
        if !force {
            if let Some(c) = in_use(&id) {
                return Err(StoreError::InUse {
                    id: id.short().to_string(),
                    container: c,
                });
            }
        }
        let manifests: BTreeSet<Digest> = same_id
            .iter()
            .map(|i| i.manifest_digest().clone())
            .collect();
        self.update_index(|index| {
            index.manifests.retain(|d| !manifests.contains(&d.digest));
            Ok(())
        })?;
        report.untagged = all_names;
        report.deleted.push(id);
        self.collect_garbage_locked()?;
        Ok(report)
    }

    /// Removes every untagged image (and, with `all`, every tagged one too)
    /// for which `keep` is false. Returns the deleted image IDs and bytes freed.
    pub fn prune(&self, all: bool, keep: &dyn Fn(&Image) -> bool) -> Result<(Vec<Digest>, u64)> {
        let _gc = self.collector_lock()?;
        let images = self.images_locked()?;
        let doomed: Vec<&Image> = images
            .iter()
            .filter(|i| (i.names.is_empty() || all) && !keep(i))
            .collect();
        let manifests: BTreeSet<Digest> =
            doomed.iter().map(|i| i.manifest_digest().clone()).collect();
        let mut ids: Vec<Digest> = doomed.iter().map(|i| i.id().clone()).collect();
        ids.sort();
        ids.dedup();
        if !manifests.is_empty() {
            self.update_index(|index| {
                index.manifests.retain(|d| !manifests.contains(&d.digest));
                Ok(())
            })?;
        }
        let freed = self.collect_garbage_locked()?;
        Ok((ids, freed))
    }

    /// Deletes blobs that no `index.json` entry or root reaches, and stale
    /// temp files; returns the bytes freed. The caller holds
    /// [`Store::collector_lock`].
    pub fn collect_garbage_locked(&self) -> Result<u64> {
        let index = self.read_index()?;
        let mut live = BTreeSet::new();
        let whole = self.mark(&index.manifests, &mut live);
        if !whole {
            // An unreadable manifest hides which blobs it keeps alive:
            // delete nothing until `system check --repair` removed it.
            self.clean_stale_temps_locked(true);
            return Ok(0);
        }
        for extra in self.pinned_by_roots(&live)? {
            live.insert(extra);
        }
        let dead: Vec<Digest> = self
            .list_blobs()?
            .into_iter()
            .filter(|d| !live.contains(d))
            .collect();
        let freed = self.remove_blobs(&dead)?;
        // The roots and maps of compressed forms just collected.
        self.sweep_compressed_locked()?;
        self.remove_unused_layer_dirs(&live)?;
        self.clean_stale_temps_locked(true);
        Ok(freed)
    }

    /// Deletes unpacked layers that no live image or root uses any more.
    fn remove_unused_layer_dirs(&self, live: &BTreeSet<Digest>) -> Result<()> {
        let dir = self.layers_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        // Local layers are uncompressed, so a live layer blob's digest is
        // its diff ID; configs cover layers stored compressed.
        let mut diff_ids: BTreeSet<Digest> = live.clone();
        for img in self.images_locked()? {
            diff_ids.extend(img.config.rootfs.diff_ids);
        }
        // A delta kept keeps its base (bases are whole: one step).
        let bases: Vec<Digest> = diff_ids
            .iter()
            .filter_map(|d| crate::unpacked::layer_base(&dir.join(d.hex())))
            .collect();
        diff_ids.extend(bases);
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(d) = Digest::from_hex(name) {
                if !diff_ids.contains(&d) {
                    let p = e.path();
                    std::fs::remove_dir_all(&p).map_err(StoreError::io(&p))?;
                }
            }
        }
        self.remove_unused_layer_files(&|d| diff_ids.contains(d));
        // Short links whose layer is gone go too.
        if let Ok(links) = std::fs::read_dir(dir.join("l")) {
            for l in links.flatten() {
                if std::fs::metadata(l.path()).is_err() {
                    let _ = std::fs::remove_file(l.path());
                }
            }
        }
        Ok(())
    }

    /// Adds what `descs` reach to `live`; false when a manifest or index
    /// could not be read (so what it reaches is unknown).
    fn mark(&self, descs: &[Descriptor], live: &mut BTreeSet<Digest>) -> bool {
        let mut whole = true;
        for d in descs {
            if !live.insert(d.digest.clone()) {
                continue;
            }
            match d.media_type.as_str() {
                media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
                    match self.read_json::<Manifest>(&d.digest) {
                        Ok(m) => {
                            live.insert(m.config.digest.clone());
                            live.extend(m.layers.iter().map(|l| l.digest.clone()));
                        }
                        Err(_) => whole = false,
                    }
                }
                media::OCI_INDEX | media::DOCKER_LIST => match self.read_json::<Index>(&d.digest) {
                    Ok(i) => whole &= self.mark(&i.manifests, live),
                    Err(_) => whole = false,
                },
                _ => {}
            }
        }
        whole
    }
}

/// Removes `name` from whichever entry holds it; an image left with no
/// name keeps one unnamed entry (dangling), as docker keeps `<none>` images.
/// Names `manifest` in `index` under `names` (see [`Store::add_image`]).
pub(crate) fn name_in(index: &mut Index, manifest: &Descriptor, names: &[Reference]) {
    let names: Vec<String> = names.iter().map(|r| r.normalized().to_string()).collect();
    for n in &names {
        untag_in(index, n);
    }
    if names.is_empty() {
        if !index.manifests.iter().any(|d| d.digest == manifest.digest) {
            let mut d = manifest.clone();
            d.set_ref_name(None);
            index.manifests.push(d);
        }
    } else {
        // The image is named now: a dangling entry for it is redundant.
        index
            .manifests
            .retain(|d| !(d.digest == manifest.digest && d.ref_name().is_none()));
        for n in &names {
            let mut d = manifest.clone();
            d.set_ref_name(Some(n));
            index.manifests.push(d);
        }
    }
}

fn untag_in(index: &mut Index, name: &str) {
    let Some(pos) = index
        .manifests
        .iter()
        .position(|d| d.ref_name() == Some(name))
    else {
        return;
    };
    let digest = index.manifests[pos].digest.clone();
    let others = index
        .manifests
        .iter()
        .enumerate()
        .any(|(i, d)| i != pos && d.digest == digest);
    if others {
        index.manifests.remove(pos);
    } else {
        index.manifests[pos].set_ref_name(None);
    }
}

/// An `index.json` entry that names an image (not a nested index).
fn is_image_manifest(d: &Descriptor) -> bool {
    d.media_type == media::OCI_MANIFEST || d.media_type == media::DOCKER_MANIFEST
}

fn is_full_reference(n: &str) -> bool {
    n.parse::<Reference>().is_ok_and(|r| r.is_qualified())
}

/// `localhost/busybox:latest` → `localhost/busybox`.
pub fn repo_of(name: &str) -> &str {
    let no_digest = name.split('@').next().unwrap_or(name);
    let slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[slash..].rfind(':') {
        Some(i) => &no_digest[..slash + i],
        None => no_digest,
    }
}

/// Splits a stored name into (repository, tag or `<none>`).
pub fn split_name(name: &str) -> (String, String) {
    let repo = repo_of(name);
    let rest = &name[repo.len()..];
    let tag = rest
        .strip_prefix(':')
        .map(|t| t.split('@').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "<none>".to_string());
    (repo.to_string(), tag)
}

/// Groups images by ID, for callers that show one row per image.
pub fn by_id(images: &[Image]) -> HashMap<Digest, Vec<&Image>> {
    let mut m: HashMap<Digest, Vec<&Image>> = HashMap::new();
    for i in images {
        m.entry(i.id().clone()).or_default().push(i);
    }
    m
}

/// The broken image `name` refers to: by name, manifest digest, or (when
/// its manifest was read) full ID or ID prefix.
fn find_broken<'a>(broken: &'a [BrokenImage], name: &str) -> Option<&'a BrokenImage> {
    if let Ok(r) = name.parse::<Reference>() {
        for cand in r.candidates() {
            let want = cand.to_string();
            if let Some(b) = broken.iter().find(|b| b.names.contains(&want)) {
                return Some(b);
            }
        }
    }
    let hex = name
        .strip_prefix("sha256:")
        .unwrap_or(name)
        .to_ascii_lowercase();
    if hex.len() < 4 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    broken.iter().find(|b| {
        b.manifest.hex() == hex || b.id.as_ref().is_some_and(|i| i.hex().starts_with(&hex))
    })
}

/// [`Store::resolve`] over an already-read list of images.
fn find(images: &[Image], name: &str) -> Result<Image> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let is_hex = hex.len() >= 4 && hex.bytes().all(|c| c.is_ascii_hexdigit());
    if is_hex && hex.len() == 64 {
        if let Some(img) = images.iter().find(|i| i.id().hex() == hex) {
            return Ok(img.clone());
        }
    }
    if let Ok(r) = name.parse::<Reference>() {
        for cand in r.candidates() {
            let want = cand.to_string();
            if let Some(img) = images.iter().find(|i| i.names.contains(&want)) {
                return Ok(img.clone());
            }
            if let Some(d) = cand.digest() {
                let repo = cand.name();
                if let Some(img) = images.iter().find(|i| {
                    i.manifest_digest() == d && i.names.iter().any(|n| repo_of(n) == repo)
                }) {
                    return Ok(img.clone());
                }
            }
        }
    }
    if is_hex && (name.starts_with("sha256:") || !name.contains(':')) {
        let hex = hex.to_ascii_lowercase();
        let mut ids: Vec<&Image> = images
            .iter()
            .filter(|i| i.id().hex().starts_with(&hex))
            .collect();
        ids.dedup_by(|a, b| a.id() == b.id());
        match ids.len() {
            0 => {}
            1 => return Ok(ids[0].clone()),
            n => {
                return Err(StoreError::Ambiguous {
                    name: name.to_string(),
                    count: n,
                })
            }
        }
    }
    Err(StoreError::NoSuchImage(name.to_string()))
}
