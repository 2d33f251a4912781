//! Docker's `--user name|uid[:group|gid]` resolved against the image's
//! /etc/passwd and /etc/group, for callers that fill the spec's numeric ids.

use crate::error::RunError;
use std::fs;
use std::path::{Path, PathBuf};

/// A resolved user: what goes into `process.user` plus `HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups the user is listed in, primary group excluded.
    pub additional_gids: Vec<u32>,
    pub home: String,
    /// The passwd name, when the user has one.
    pub name: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 6 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The text of the file `rel` as the overlay of `roots` (layers in image
/// order, base first; a plain rootfs is a single root) shows it, symlinks
/// followed inside it: an image's `etc -> /etc` must not read the host's.
fn read_top(roots: &[PathBuf], rel: &str) -> Option<String> {
    let file = crate::inroot::Root::layers(roots)
        .ok()?
        .open(Path::new(rel))
        .ok()?;
    read_text(file)
}

/// At most 4 MiB of `file` (a passwd or group file), when it is a regular
/// file.
fn read_text(file: fs::File) -> Option<String> {
    use std::io::Read;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = Vec::new();
    file.take(4 << 20).read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) against
/// the rootfs directories `roots` (base first; the topmost file wins).
pub fn resolve(roots: &[PathBuf], spec: &str) -> Result<ResolvedUser, RunError> {
    let passwd = read_top(roots, "etc/passwd");
    let group = read_top(roots, "etc/group");
    resolve_from(passwd.as_deref(), group.as_deref(), spec)
}

/// Resolves `spec` against the texts of `/etc/passwd` and `/etc/group`
/// (`None`: the image has no such file), for callers that read them
/// through their own view of the layers (whiteouts honoured).
pub fn resolve_from(
    passwd: Option<&str>,
    group: Option<&str>,
    spec: &str,
) -> Result<ResolvedUser, RunError> {
    let passwd = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    resolve_with(&passwd, &groups, spec)
}

/// Resolves `spec` against the single rootfs directory `rootfs`.
pub fn resolve_in(rootfs: &Path, spec: &str) -> Result<ResolvedUser, RunError> {
    let read = |rel: &str| {
        crate::inroot::open_in_root(rootfs, Path::new(rel))
            .ok()
            .and_then(read_text)
    };
    let (passwd, group) = (read("etc/passwd"), read("etc/group"));
    resolve_from(passwd.as_deref(), group.as_deref(), spec)
}

fn resolve_with(
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
    spec: &str,
) -> Result<ResolvedUser, RunError> {
    let err = |m: String| RunError::User {
        user: spec.to_string(),
        message: m,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let mut out = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
        name: None,
    };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => {
            out.uid = uid;
            passwd.iter().find(|p| p.uid == uid)
        }
        Err(_) => {
            let e = passwd
                .iter()
                .find(|p| p.name == user_part)
                .ok_or_else(|| err(format!("no user {user_part:?} in the image's /etc/passwd")))?;
            out.uid = e.uid;
            Some(e)
        }
    };
    if let Some(e) = entry {
        out.gid = e.gid;
        out.home = e.home.clone();
        out.name = Some(e.name.clone());
    }
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        out.gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| err(format!("no group {g:?} in the image's /etc/group")))?
                    .gid
            }
        };
    }
    if let Some(name) = &out.name {
        for g in groups {
            if g.gid != out.gid
                && g.members.iter().any(|m| m == name)
                && !out.additional_gids.contains(&g.gid)
            {
                out.additional_gids.push(g.gid);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:app,root\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n";

    fn r(spec: &str) -> Result<ResolvedUser, RunError> {
        resolve_with(&parse_passwd(PASSWD), &parse_group(GROUP), spec)
    }

    #[test]
    fn names_and_ids() {
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1000, "/home/app")
        );
        assert_eq!(app.additional_gids, vec![10, 50]);
        assert_eq!(r("").unwrap().additional_gids, vec![10]);
        let n = r("65534").unwrap();
        assert_eq!((n.uid, n.gid), (65534, 65534));
        let unknown = r("4242:7").unwrap();
        assert_eq!(
            (unknown.uid, unknown.gid, unknown.home.as_str()),
            (4242, 7, "/")
        );
        assert_eq!(r("app:staff").unwrap().gid, 50);
        assert_eq!(r("app:staff").unwrap().additional_gids, vec![10]);
    }

    #[test]
    fn unknown_names_fail() {
        assert!(r("ghost").is_err());
        assert!(r("app:ghosts").is_err());
    }

    /// `etc -> /etc` in an image is the image's own /etc: the host's users
    /// (`root` is always there) are never found through it.
    #[test]
    fn the_hosts_passwd_is_never_read() {
        assert!(fs::read_to_string("/etc/passwd").unwrap().contains("root:"));
        let t = tempfile::tempdir().unwrap();
        for (i, target) in ["/etc", "../../../../../../../../../../etc"]
            .iter()
            .enumerate()
        {
            let root = t.path().join(format!("r{i}"));
            fs::create_dir_all(&root).unwrap();
            std::os::unix::fs::symlink(target, root.join("etc")).unwrap();
            assert!(resolve_in(&root, "root").is_err(), "{target}");
            assert!(
                resolve(std::slice::from_ref(&root), "root").is_err(),
                "{target}"
            );
        }
    }

    /// A passwd the image links elsewhere inside itself is still read.
    #[test]
    fn a_linked_passwd_inside_the_image_is_read() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        fs::create_dir_all(low.join("usr/lib")).unwrap();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(low.join("usr/lib/passwd"), PASSWD).unwrap();
        std::os::unix::fs::symlink("/usr/lib/passwd", up.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/passwd", low.join("passwd")).unwrap();
        let app = resolve(&[low.clone(), up], "app").unwrap();
        assert_eq!((app.uid, app.home.as_str()), (1000, "/home/app"));
        fs::create_dir_all(low.join("etc")).unwrap();
        std::os::unix::fs::symlink("../passwd", low.join("etc/passwd")).unwrap();
        assert_eq!(resolve_in(&low, "app").unwrap().uid, 1000);
    }
}
