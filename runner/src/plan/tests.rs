//! Unit tests of plan building: no root, no processes.

use super::*;
use crate::spec::{build as build_spec, Network, SpecParams};

fn plan_for(p: &SpecParams) -> Result<Plan, RunError> {
    let spec = build_spec(p)?;
    build(PlanInputs {
        spec: &spec,
        root: RootMount::Bind {
            path: CString::new("/nonexistent").unwrap(),
        },
        rootless: false,
        detach: false,
        needs_parent_sync: false,
    })
}

fn args(a: &[&str]) -> SpecParams {
    SpecParams {
        args: a.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn namespaces_follow_the_network_mode() {
    let none = plan_for(&args(&["true"])).unwrap();
    assert_ne!(none.clone_flags & libc::CLONE_NEWNET, 0);
    assert!(none.loopback_up);
    assert_eq!(none.clone_flags & libc::CLONE_NEWUSER, 0);
    assert!(
        !none.wait_for_parent,
        "no sync round-trip on the plain path"
    );
    let host = plan_for(&SpecParams {
        network: Network::Host,
        ..args(&["true"])
    })
    .unwrap();
    assert_eq!(host.clone_flags & libc::CLONE_NEWNET, 0);
    assert!(!host.loopback_up);
    assert!(host.join_netns.is_none());
    // A namespace set up by a network backend is joined, not created.
    let joined = plan_for(&SpecParams {
        netns: Some("/run/kiln/netns/x".into()),
        ..args(&["true"])
    })
    .unwrap();
    assert_eq!(joined.clone_flags & libc::CLONE_NEWNET, 0);
    assert!(!joined.loopback_up);
    assert_eq!(joined.join_netns.as_deref(), Some(c"/run/kiln/netns/x"));
    for f in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
    ] {
        assert_ne!(host.clone_flags & f, 0);
    }
}

#[test]
fn default_mounts_become_ops() {
    let p = plan_for(&args(&["true"])).unwrap();
    let dests: Vec<&str> = p.mounts.iter().map(|m| m.display.as_str()).collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/dev/mqueue",
            "/dev/shm"
        ]
    );
    assert!(p.mounts.iter().find(|m| m.display == "/dev").unwrap().dev);
    assert!(p.mounts.iter().find(|m| m.display == "/sys").unwrap().sysfs);
    assert_eq!(p.exec_candidates[0].to_bytes(), b"/usr/local/sbin/true");
    assert!(p.seccomp.is_some());
}

#[test]
fn bad_specs_are_refused() {
    assert!(matches!(
        plan_for(&SpecParams {
            cwd: "rel".into(),
            ..args(&["true"])
        }),
        Err(RunError::InvalidSpec(_))
    ));
    assert!(matches!(
        plan_for(&args(&[""])),
        Err(RunError::InvalidSpec(_))
    ));
    let mut spec = build_spec(&args(&["true"])).unwrap();
    let hook = oci_spec::runtime::HookBuilder::default()
        .path("/bin/true")
        .build()
        .unwrap();
    spec.set_hooks(Some(
        oci_spec::runtime::HooksBuilder::default()
            .prestart(vec![hook])
            .build()
            .unwrap(),
    ));
    let r = build(PlanInputs {
        spec: &spec,
        root: RootMount::Bind {
            path: CString::new("/x").unwrap(),
        },
        rootless: false,
        detach: false,
        needs_parent_sync: false,
    });
    assert!(matches!(r, Err(RunError::Unsupported(_))));
}

#[test]
fn relative_paths_stay_inside() {
    assert_eq!(
        relative_in_root(Path::new("/a/../../b/./c")).unwrap(),
        b"b/c"
    );
    assert_eq!(relative_in_root(Path::new("/")).unwrap(), b"");
}

#[test]
fn options_split_into_flags_and_data() {
    let o: Vec<String> = ["nosuid", "ro", "rbind", "mode=755", "rprivate"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = parse_options(&o);
    assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_RDONLY);
    assert!(p.bind && p.recursive);
    assert_eq!(p.data, vec!["mode=755".to_string()]);
    assert_eq!(p.propagation, libc::MS_PRIVATE | libc::MS_REC);
}

#[test]
fn exec_candidates_follow_container_path() {
    let env = vec!["PATH=/x:/y/".to_string()];
    assert_eq!(
        exec_candidates("sh", &env),
        vec![b"/x/sh".to_vec(), b"/y/sh".to_vec()]
    );
    assert_eq!(exec_candidates("./a", &env), vec![b"./a".to_vec()]);
}
