//! The owner BuildKit gives what COPY/ADD `--chown` and WORKDIR create
//! (`llb.WithUser` read by the file op): `USER[:GROUP]`, each part a number
//! or a name looked up in the image's /etc/passwd and /etc/group. A number
//! alone means that uid and the same gid; a name alone takes the gid of its
//! passwd entry; a name that is not found means 0 (BuildKit does not fail).

use super::lower::Lowers;

pub fn resolve(lowers: &Lowers, spec: &str) -> (u64, u64) {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (mut uid, mut gid) = match number(user) {
        Some(n) => (n, n),
        None => lookup(lowers, "etc/passwd", user)
            .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
            .unwrap_or((0, 0)),
    };
    if let Some(g) = group {
        match number(g) {
            Some(n) => gid = n,
            None => {
                if let Some(n) = lookup(lowers, "etc/group", g).and_then(|f| f.get(2)?.parse().ok())
                {
                    gid = n;
                }
            }
        }
    }
    if user.is_empty() && group.is_none() {
        uid = 0;
        gid = 0;
    }
    (uid, gid)
}

/// `root` is 0, as in BuildKit's parseUID; otherwise a decimal int32.
fn number(s: &str) -> Option<u64> {
    if s == "root" {
        return Some(0);
    }
    s.parse::<i32>().ok().and_then(|n| u64::try_from(n).ok())
}

/// The fields of the line of `file` (colon-separated) whose first field is
/// `name`.
fn lookup(lowers: &Lowers, file: &str, name: &str) -> Option<Vec<String>> {
    if name.is_empty() {
        return None;
    }
    let text = lowers.read(file)?;
    String::from_utf8_lossy(&text).lines().find_map(|l| {
        let f: Vec<String> = l.split(':').map(str::to_string).collect();
        (f.first().map(String::as_str) == Some(name)).then_some(f)
    })
}
