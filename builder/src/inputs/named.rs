//! `--build-context NAME=VALUE` (buildx's named contexts): VALUE is a
//! directory, `docker-image://REF`, `oci-layout://DIR[:TAG]`, an http(s)
//! archive or a git URL. Images become what NAME means in FROM and
//! `--from`; the others are directories of files.

use std::path::Path;

use image_store::Store;

use crate::error::BuildError;
use crate::stages::NamedContext;
use crate::steps::git::GitRef;

/// A prepared named context; a downloaded or checked-out one lives in a
/// temp directory removed when this drops.
#[derive(Debug)]
pub struct Named {
    pub name: String,
    pub context: NamedContext,
    _temp: Option<tempfile::TempDir>,
}

/// Prepares every `--build-context` value; `oci-layout://` ones last, so
/// a bad value of another kind leaves the store as it was.
pub fn named_all(specs: &[String], store: &Store) -> Result<Vec<Named>, BuildError> {
    let is_layout = |s: &&String| {
        s.split_once('=')
            .is_some_and(|(_, v)| v.starts_with("oci-layout://"))
    };
    let (layouts, others): (Vec<&String>, Vec<&String>) = specs.iter().partition(is_layout);
    others
        .into_iter()
        .chain(layouts)
        .map(|s| named(s, store))
        .collect()
}

/// Prepares one `--build-context` value. An `oci-layout://` image is
/// copied into `store` (unnamed, as a base image is) so FROM can use it.
pub fn named(spec: &str, store: &Store) -> Result<Named, BuildError> {
    let bad = |why: String| BuildError::Invalid(format!("--build-context {spec}: {why}"));
    let (name, value) = spec
        .split_once('=')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| bad("expected NAME=VALUE".into()))?;
    let done = |context, temp| Named {
        name: name.to_string(),
        context,
        _temp: temp,
    };
    if let Some(r) = value.strip_prefix("docker-image://") {
        r.parse::<image_store::Reference>()
            .map_err(|e| bad(format!("invalid image reference: {e}")))?;
        return Ok(done(NamedContext::Image(r.to_string()), None));
    }
    if let Some(layout) = value.strip_prefix("oci-layout://") {
        let id = oci_layout(layout, store).map_err(|e| bad(e.render()))?;
        return Ok(done(NamedContext::Image(id), None));
    }
    if let Some(g) = GitRef::parse(value) {
        let (temp, root) = super::remote::git_dir(value, &g, false)?;
        let ignore = ignore_patterns(&root, spec)?;
        return Ok(done(NamedContext::Dir(root, ignore), Some(temp)));
    }
    if value.starts_with("http://") || value.starts_with("https://") {
        let temp = super::remote::url_dir(value)?;
        let root = temp.path().to_path_buf();
        let ignore = ignore_patterns(&root, spec)?;
        return Ok(done(NamedContext::Dir(root, ignore), Some(temp)));
    }
    if let Some((scheme, _)) = value.split_once("://") {
        return Err(bad(format!(
            "unsupported source {scheme}://: use a directory, docker-image://, \
             oci-layout://, an http(s) archive or a git URL"
        )));
    }
    let dir = Path::new(value);
    if !dir.is_dir() {
        return Err(bad(format!("{value} is not a directory")));
    }
    let dir = std::fs::canonicalize(dir).map_err(|e| BuildError::Io(dir.to_path_buf(), e))?;
    let ignore = ignore_patterns(&dir, spec)?;
    Ok(done(NamedContext::Dir(dir, ignore), None))
}

/// The directory's own `.dockerignore` (buildx reads it for a local named
/// context), read inside it.
fn ignore_patterns(dir: &Path, spec: &str) -> Result<Vec<String>, BuildError> {
    let bad =
        |e: String| BuildError::Invalid(format!("--build-context {spec}: .dockerignore: {e}"));
    match super::in_root::open(dir, ".dockerignore") {
        Ok(f) => crate::dockerignore::read(f).map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Copies the image `DIR[:TAG]` of an OCI layout into the store; its ID.
fn oci_layout(layout: &str, store: &Store) -> transfer::Result<String> {
    use transfer::oci_dir::OciDirSource;
    let transfer::Location::OciDir { dir, reference } =
        transfer::Location::parse(&format!("oci:{layout}"))?
    else {
        unreachable!("an oci: location parses as one");
    };
    let src = OciDirSource::new(&dir, reference.as_deref());
    let dest = transfer::StoreDest::new(store, Vec::new())?;
    let copied = transfer::copy(&src, &dest, &Default::default(), &transfer::Silent)?;
    dest.commit()?;
    Ok(copied.id.to_string())
}
