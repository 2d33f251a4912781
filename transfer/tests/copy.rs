//! copy() between the store, `oci:` directories and archives: what it
//! writes, what it skips, and what it refuses (leaving the store as it was).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use image_store::{Digest, ImageConfig, Store};
use oci_model::Platform;
use transfer::archive::{self, ArchiveFormat};
use transfer::oci_dir::{self, OciDirSource};
use transfer::{copy, BlobProgress, CopyOptions, Progress, Silent, StoreDest, StoreSource};

/// A one-file layer tar.
fn layer_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// A store at `dir` holding a two-layer image named `name`.
fn store_with_image(dir: &Path, name: &str) -> (Store, Digest) {
    let store = Store::open(dir).unwrap();
    let ingest = store.ingest().unwrap();
    let mut config = ImageConfig::for_host();
    let mut layers = Vec::new();
    for (f, d) in [("a", &b"first"[..]), ("b", &b"second"[..])] {
        let l = ingest.store_layer_from_tar(&layer_tar(f, d)[..]).unwrap();
        config.rootfs.diff_ids.push(l.diff_id().clone());
        layers.push(l.descriptor);
    }
    let names = vec![name.parse().unwrap()];
    let c = ingest.commit_image(&config, layers, &names).unwrap();
    ingest.commit().unwrap();
    (store, c.id)
}

fn blob_count(store: &Store) -> usize {
    let any = Digest::of_bytes(b"");
    let dir = store.blob_path(&any).parent().unwrap().to_path_buf();
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Records how each blob ended.
#[derive(Default)]
struct Record(Arc<Mutex<BTreeMap<String, String>>>);

struct RecordBlob(Arc<Mutex<BTreeMap<String, String>>>, String);

impl Progress for Record {
    fn line(&self, _msg: &str) {}
    fn warn(&self, _msg: &str) {}
    fn blob(&self, _verb: &'static str, digest: &Digest, _size: u64) -> Arc<dyn BlobProgress> {
        Arc::new(RecordBlob(self.0.clone(), digest.to_string()))
    }
}

impl BlobProgress for RecordBlob {
    fn finish(&self, msg: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(self.1.clone(), msg.to_string());
    }
    fn fail(&self) {
        self.0
            .lock()
            .unwrap()
            .insert(self.1.clone(), "failed".into());
    }
}

#[test]
fn store_to_oci_dir_to_store_keeps_the_image_and_skips_what_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, id) = store_with_image(&tmp.path().join("a"), "localhost/x:1");
    let img = a.resolve("localhost/x:1").unwrap();
    let layout = tmp.path().join("layout");

    let dest = oci_dir::dest(&layout).unwrap();
    let src = StoreSource::new(&a, img.clone()).with_names(vec!["one".into()]);
    copy(&src, &dest, &CopyOptions::default(), &Silent).unwrap();
    dest.finish().unwrap();

    let b = Store::open(tmp.path().join("b")).unwrap();
    let name = oci_dir::layout_name(&layout, Some("one")).unwrap();
    let dest = StoreDest::new(&b, vec![name]).unwrap();
    let copied = copy(
        &OciDirSource::new(&layout, Some("one")),
        &dest,
        &CopyOptions::default(),
        &Silent,
    )
    .unwrap();
    dest.commit().unwrap();
    assert_eq!(copied.id, id);
    assert_eq!(&copied.manifest, img.manifest_digest());
    let got = b.resolve("localhost/layout:one").unwrap();
    assert_eq!(got.id(), &id);

    // Again: every blob is already there.
    let record = Record::default();
    let dest = StoreDest::new(&b, vec!["localhost/again:1".parse().unwrap()]).unwrap();
    copy(
        &OciDirSource::new(&layout, Some("one")),
        &dest,
        &CopyOptions::default(),
        &record,
    )
    .unwrap();
    dest.commit().unwrap();
    let ends = record.0.lock().unwrap();
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert!(
        ends.values().all(|m| m == "skipped: already exists"),
        "{ends:?}"
    );
}

#[test]
fn a_tampered_layer_is_refused_and_the_store_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = store_with_image(&tmp.path().join("a"), "localhost/x:1");
    let img = a.resolve("localhost/x:1").unwrap();
    let layout = tmp.path().join("layout");
    let dest = oci_dir::dest(&layout).unwrap();
    copy(
        &StoreSource::new(&a, img.clone()).with_names(vec!["t".into()]),
        &dest,
        &CopyOptions::default(),
        &Silent,
    )
    .unwrap();
    dest.finish().unwrap();
    // The second layer's bytes change; its name (digest) does not.
    let victim = &img.manifest.layers[1].digest;
    let path = layout.join("blobs/sha256").join(victim.hex());
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(&path, data).unwrap();

    let b = Store::open(tmp.path().join("b")).unwrap();
    let before = blob_count(&b);
    let dest = StoreDest::new(&b, vec!["localhost/t:1".parse().unwrap()]).unwrap();
    let err = copy(
        &OciDirSource::new(&layout, Some("t")),
        &dest,
        &CopyOptions::default(),
        &Silent,
    )
    .unwrap_err();
    drop(dest);
    let msg = err.render();
    assert!(msg.contains(&victim.to_string()), "{msg}");
    assert_eq!(blob_count(&b), before, "a refused copy left blobs");
    assert!(b.resolve("localhost/t:1").is_err());
}

#[test]
fn both_archive_formats_round_trip_through_save_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, id) = store_with_image(&tmp.path().join("a"), "localhost/x:1");
    let img = a.resolve("localhost/x:1").unwrap();
    for format in [ArchiveFormat::DockerArchive, ArchiveFormat::OciArchive] {
        let mut out = Vec::new();
        let images = [(img.clone(), vec!["localhost/x:1".to_string()])];
        archive::save(&a, &images, format, &mut out).unwrap();
        let b = Store::open(tmp.path().join(format!("{format:?}"))).unwrap();
        let loaded = archive::load(&b, &out[..]).unwrap();
        assert_eq!(loaded.images.len(), 1);
        let (got, names, layers) = &loaded.images[0];
        assert_eq!(got, &id, "{format:?}");
        assert_eq!(names, &["localhost/x:1".to_string()], "{format:?}");
        assert_eq!(*layers, 2);
        assert_eq!(b.resolve("localhost/x:1").unwrap().id(), &id);
    }
}

#[test]
fn gzip_layers_are_saved_plain_in_a_docker_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, id) = store_with_image(&tmp.path().join("a"), "localhost/x:1");
    let img = a.resolve("localhost/x:1").unwrap();
    // Through an `oci:` layout with gzip layers, into a store that keeps them so.
    let layout = tmp.path().join("layout");
    let dest = oci_dir::dest(&layout).unwrap();
    let src = StoreSource::new(&a, img)
        .with_names(vec!["gz".into()])
        .compressing(image_store::compressed::LayerFormat::Gzip);
    copy(&src, &dest, &CopyOptions::default(), &Silent).unwrap();
    dest.finish().unwrap();
    let b = Store::open(tmp.path().join("b")).unwrap();
    let dest = StoreDest::new(&b, vec!["localhost/gz:1".parse().unwrap()]).unwrap();
    copy(
        &OciDirSource::new(&layout, Some("gz")),
        &dest,
        &CopyOptions::default(),
        &Silent,
    )
    .unwrap();
    dest.commit().unwrap();
    let gz = b.resolve("localhost/gz:1").unwrap();
    assert!(
        gz.manifest
            .layers
            .iter()
            .all(|l| l.media_type.ends_with("gzip")),
        "{:?}",
        gz.manifest.layers
    );

    let mut out = Vec::new();
    archive::save(&b, &[(gz, vec![])], ArchiveFormat::DockerArchive, &mut out).unwrap();
    let c = Store::open(tmp.path().join("c")).unwrap();
    let loaded = archive::load(&c, &out[..]).unwrap();
    assert_eq!(loaded.images[0].0, id);
    let plain = c.resolve(&id.to_string()).unwrap();
    assert!(plain
        .manifest
        .layers
        .iter()
        .all(|l| !l.media_type.ends_with("gzip")));
}

#[test]
fn an_index_is_resolved_to_the_platform_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, host_id) = store_with_image(&tmp.path().join("a"), "localhost/host:1");
    let layout = tmp.path().join("layout");
    // Another image (other layers) plays the foreign platform's.
    let other = Store::open(tmp.path().join("o")).unwrap();
    let ingest = other.ingest().unwrap();
    let l = ingest
        .store_layer_from_tar(&layer_tar("s390x", b"other")[..])
        .unwrap();
    let mut config = ImageConfig::for_host();
    config.architecture = "s390x".into();
    config.rootfs.diff_ids.push(l.diff_id().clone());
    let names = ["localhost/other:1".parse().unwrap()];
    let other_id = ingest
        .commit_image(&config, vec![l.descriptor], &names)
        .unwrap()
        .id;
    ingest.commit().unwrap();

    let dest = oci_dir::dest(&layout).unwrap();
    let mut manifests = Vec::new();
    for (store, name, platform) in [
        (&other, "localhost/other:1", "linux/s390x"),
        (&a, "localhost/host:1", &*Platform::host().to_string()),
    ] {
        let img = store.resolve(name).unwrap();
        let mut d = img.manifest_descriptor.clone();
        d.platform = Some(platform.parse().unwrap());
        manifests.push(d);
        copy(
            &StoreSource::new(store, img),
            &dest,
            &CopyOptions::default(),
            &Silent,
        )
        .unwrap();
    }
    dest.finish().unwrap();
    // index.json names one index listing both manifests.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = Digest::of_bytes(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": bytes.len(),
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    for (platform, want) in [
        (Platform::host(), &host_id),
        ("linux/s390x".parse().unwrap(), &other_id),
    ] {
        let b = Store::open(tmp.path().join(format!("b-{}", platform.architecture))).unwrap();
        let dest = StoreDest::new(&b, vec!["localhost/picked:1".parse().unwrap()]).unwrap();
        let opts = CopyOptions {
            platform: platform.clone(),
            ..CopyOptions::default()
        };
        let copied = copy(&OciDirSource::new(&layout, None), &dest, &opts, &Silent).unwrap();
        dest.commit().unwrap();
        assert_eq!(&copied.id, want, "{platform:?}");
    }

    // A platform the index lacks is refused, naming what it has.
    let b = Store::open(tmp.path().join("none")).unwrap();
    let dest = StoreDest::new(&b, vec!["localhost/none:1".parse().unwrap()]).unwrap();
    let opts = CopyOptions {
        platform: "linux/mips64le".parse().unwrap(),
        ..CopyOptions::default()
    };
    let err = copy(&OciDirSource::new(&layout, None), &dest, &opts, &Silent).unwrap_err();
    assert!(err.render().contains("s390x"), "{}", err.render());
}
