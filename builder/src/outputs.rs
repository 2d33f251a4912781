//! Where a built image goes besides the store (`--output`, `--push`) and
//! what buildx's `--metadata-file` says about it. Images move through the
//! transfer crate (registry pushes, the archive writers of `kiln save`);
//! a filesystem goes out through [`containers::export`].

use std::path::{Path, PathBuf};

use image_store::compressed::LayerFormat;
use image_store::{Digest, Image, Reference, Store};
use transfer::archive::{self, ArchiveFormat};
use transfer::registry::RegistryDest;
use transfer::{CopyOptions, Progress, RegistryAccess, StoreSource};

use crate::error::BuildError;

/// One `--output` (buildx's forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=image` (the store; `push=true` also pushes) or `type=registry`
    /// (store and push). `names` empty: the `-t` names.
    Image { names: Vec<String>, push: bool },
    /// `type=local,dest=DIR`: the final stage's filesystem as files.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the final stage's filesystem as a tar.
    Tar(PathBuf),
    /// `type=oci|docker,dest=FILE[,name=NAME]`: the image as an archive.
    Archive {
        format: ArchiveFormat,
        dest: PathBuf,
        names: Vec<String>,
    },
}

/// `--output` / `-o`: `type=…,key=value,…`, or a bare `DIR` (local).
pub fn parse(raw: &str) -> Result<Output, BuildError> {
    let invalid = |why: String| BuildError::Invalid(format!("invalid --output {raw:?}: {why}"));
    if !raw.contains('=') {
        if raw == "-" {
            return Err(invalid(
                "writing to standard output is not built; use type=tar,dest=FILE".into(),
            ));
        }
        return Ok(Output::Local(raw.into()));
    }
    let mut kind = None;
    let mut dest = None;
    let mut names = Vec::new();
    let mut push = None;
    for part in raw.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| invalid(format!("{part:?} is not KEY=VALUE")))?;
        match k {
            "type" => kind = Some(v),
            "dest" => dest = Some(PathBuf::from(v)),
            "name" => names.extend(v.split(';').filter(|n| !n.is_empty()).map(String::from)),
            "push" => {
                push = Some(match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(format!("push={v}: use true or false"))),
                })
            }
            _ => return Err(invalid(format!("unsupported option {k}={v}"))),
        }
    }
    let named = !names.is_empty();
    let need_dest = |t: &str| {
        dest.clone()
            .filter(|d| d.as_os_str() != "-")
            .ok_or_else(|| invalid(format!("type={t} needs dest=PATH")))
    };
    let out = match kind {
        Some("image") => Output::Image {
            names,
            push: push.unwrap_or(false),
        },
        Some("registry") => Output::Image { names, push: true },
        Some("local") => Output::Local(need_dest("local")?),
        Some("tar") => Output::Tar(need_dest("tar")?),
        Some(t @ ("oci" | "docker")) => Output::Archive {
            format: if t == "oci" {
                ArchiveFormat::OciArchive
            } else {
                ArchiveFormat::DockerArchive
            },
            dest: need_dest(t)?,
            names,
        },
        Some(t) => return Err(invalid(format!("unsupported type={t}"))),
        None => {
            return Err(invalid(
                "no type= (image, registry, local, tar, oci, docker)".into(),
            ))
        }
    };
    let image_like = matches!(out, Output::Image { .. } | Output::Archive { .. });
    if (push.is_some() && !matches!(out, Output::Image { .. })) || (named && !image_like) {
        return Err(invalid(
            "name= and push= go with type=image|registry|oci|docker".into(),
        ));
    }
    Ok(out)
}

impl Output {
    /// Names the image is stored under besides the `-t` ones.
    pub fn extra_names(&self) -> &[String] {
        match self {
            Output::Image { names, .. } => names,
            _ => &[],
        }
    }

    /// Names this output gives the image (`name=`), as buildx lists them
    /// in `image.name`.
    pub fn names(&self) -> &[String] {
        match self {
            Output::Image { names, .. } | Output::Archive { names, .. } => names,
            _ => &[],
        }
    }
}

/// What the outputs wrote, for `--metadata-file`.
#[derive(Debug, Default)]
pub struct Written {
    /// The manifest digest the registry has (a push compresses layers, so
    /// it differs from the store's).
    pub pushed: Option<Digest>,
    /// Every name pushed.
    pub pushed_names: Vec<String>,
}

/// Sends the built `image` where `outputs` say. `tags` are the `-t` names.
pub fn write(
    store: &Store,
    image: &Image,
    tags: &[Reference],
    outputs: &[Output],
    access: &RegistryAccess,
    progress: &dyn Progress,
) -> Result<Written, BuildError> {
    let mut written = Written::default();
    let tag_names: Vec<String> = tags.iter().map(|t| t.normalized().to_string()).collect();
    for out in outputs {
        match out {
            Output::Image { names, push } => {
                if !push {
                    continue;
                }
                let names = if names.is_empty() { &tag_names } else { names };
                if names.is_empty() {
                    return Err(BuildError::Invalid(
                        "pushing needs a name: -t NAME or --output type=registry,name=NAME".into(),
                    ));
                }
                for n in names {
                    let d = push_one(store, image, n, access, progress)?;
                    written.pushed = Some(d);
                    written.pushed_names.push(n.clone());
                }
            }
            Output::Local(dir) => containers::export::image_to_dir(store, image, dir)
                .map_err(|e| output_error(dir, e))?,
            Output::Tar(file) => containers::export::image_to_file(store, image, file)
                .map_err(|e| output_error(file, e))?,
            Output::Archive {
                format,
                dest,
                names,
            } => {
                let names = if names.is_empty() { &tag_names } else { names };
                let images = [(image.clone(), names.clone())];
                archive::save_to_file(store, &images, *format, false, dest, 0o644).map_err(
                    |e| BuildError::Invalid(format!("writing {}: {}", dest.display(), e.render())),
                )?;
            }
        }
    }
    Ok(written)
}

fn output_error(path: &Path, e: containers::Error) -> BuildError {
    BuildError::Invalid(format!("writing {}: {e}", path.display()))
}

/// Pushes `image` as `name` (as `kiln push` does: gzip layers, kept for
/// the next push); returns the manifest digest the registry has.
fn push_one(
    store: &Store,
    image: &Image,
    name: &str,
    access: &RegistryAccess,
    progress: &dyn Progress,
) -> Result<Digest, BuildError> {
    let fail = |e: transfer::Error| BuildError::Invalid(format!("pushing {name}: {}", e.render()));
    let reference = name
        .parse::<registry_client::Reference>()
        .map_err(|e| BuildError::Invalid(format!("pushing {name}: {e}")))?
        .remote();
    let client = access.client().map_err(fail)?;
    let to = RegistryDest::new(&client, &reference, None, &image.names).map_err(fail)?;
    let src = StoreSource::new(store, image.clone()).compressing(LayerFormat::Gzip);
    let copied = transfer::copy(&src, &to, &CopyOptions::default(), progress).map_err(fail)?;
    Ok(copied.manifest)
}

/// buildx's `--metadata-file` document.
pub fn metadata(image: &Image, names: &[String], written: &Written) -> serde_json::Value {
    let desc = &image.manifest_descriptor;
    let digest = written.pushed.as_ref().unwrap_or(&desc.digest);
    let mut m = serde_json::Map::new();
    m.insert(
        "containerimage.config.digest".into(),
        image.id().to_string().into(),
    );
    m.insert("containerimage.digest".into(), digest.to_string().into());
    if written.pushed.is_none() {
        m.insert(
            "containerimage.descriptor".into(),
            serde_json::json!({
                "mediaType": desc.media_type,
                "digest": desc.digest.to_string(),
                "size": desc.size,
            }),
        );
    }
    if !names.is_empty() {
        m.insert("image.name".into(), names.join(",").into());
    }
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_output_forms_parse() {
        assert_eq!(parse("out").unwrap(), Output::Local("out".into()));
        assert_eq!(
            parse("type=tar,dest=f.tar").unwrap(),
            Output::Tar("f.tar".into())
        );
        assert_eq!(
            parse("type=registry,name=r/a:1").unwrap(),
            Output::Image {
                names: vec!["r/a:1".into()],
                push: true
            }
        );
        assert!(matches!(
            parse("type=docker,dest=x.tar").unwrap(),
            Output::Archive {
                format: ArchiveFormat::DockerArchive,
                ..
            }
        ));
        assert!(parse("type=local").is_err());
        assert!(parse("type=tar,dest=-").is_err());
        assert!(parse("type=local,dest=d,push=true").is_err());
        assert!(parse("type=cacheonly").is_err());
    }
}
