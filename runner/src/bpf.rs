//! The cgroup v2 device program: device rules compiled to eBPF by hand,
//! loaded with bpf(2) and attached to the container's cgroup.
//!
//! cgroup v2 has no `devices` files; the kernel instead runs every
//! `BPF_CGROUP_DEVICE` program attached to a task's cgroup (and its
//! ancestors) on each open and mknod of a device node. It also does so on
//! hybrid hosts for the tasks' cgroup in the unified hierarchy.
//!
//! The program reads the request (`struct bpf_cgroup_dev_ctx`: access and
//! type packed in one word, then major, then minor), tries the rules from the
//! last to the first, and returns 1 (allow) or 0 (deny) for the first that
//! matches: the last matching rule wins, as with runc's filter. No rule
//! matching means deny.

use crate::devices::{Kind, Rule, ALL_ACCESS};
use crate::error::RunError;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction, as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    /// dst register in the low nibble, src register in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_MOV_X: u8 = 0x07 | 0xb0 | 0x08;
const ALU64_MOV_K: u8 = 0x07 | 0xb0;
const ALU64_AND_K: u8 = 0x07 | 0x50;
const ALU64_RSH_K: u8 = 0x07 | 0x70;
const JMP_JNE_K: u8 = 0x05 | 0x50;
const JMP_JNE_X: u8 = 0x05 | 0x50 | 0x08;
const JMP_EXIT: u8 = 0x05 | 0x90;

// Device types and access bits in the request (BPF_DEVCG_*).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// Registers: r1 the context, then r2 access bits, r3 device type,
/// r4 major, r5 minor; r1 is reused as scratch once read.
pub(crate) fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_MOV_X, 3, 2, 0, 0),
        insn(ALU64_AND_K, 3, 0, 0, 0xffff),
        insn(ALU64_RSH_K, 2, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each test jumps past the end of this rule's block on a mismatch;
        // offsets are patched once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        match r.kind {
            Kind::All => {}
            Kind::Char => block.push(insn(JMP_JNE_K, 3, 0, 0, DEV_CHAR)),
            Kind::Block => block.push(insn(JMP_JNE_K, 3, 0, 0, DEV_BLOCK)),
        }
        if r.access != ALL_ACCESS {
            // Matches when every requested bit is one the rule grants.
            block.push(insn(ALU64_MOV_X, 1, 2, 0, 0));
            block.push(insn(ALU64_AND_K, 1, 0, 0, r.access as i32));
            block.push(insn(JMP_JNE_X, 1, 2, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JMP_JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JMP_JNE_K, 5, 0, 0, m as i32));
        }
        let unconditional = block.is_empty();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, r.allow as i32));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        if unconditional {
            // Earlier rules can never be reached (and the verifier
            // refuses unreachable code).
            return p;
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

// bpf(2) commands, program and attach types.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of ancestors and descendants all run; a nested runtime can
/// restrict further but never loosen ours.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix of the given size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

fn load(prog: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    attr.prog_name[..4].copy_from_slice(b"kiln");
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = buf.len() as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a fresh descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Programs this process loaded, kept for the next container with the
/// same rules: a build's RUN steps all have the same ones, and the
/// verifier's pass over a program costs more than attaching it again.
/// A few at most (kiln run's options vary the rules little).
static LOADED: std::sync::Mutex<Vec<(Vec<Insn>, std::sync::Arc<OwnedFd>)>> =
    std::sync::Mutex::new(Vec::new());
const KEPT_PROGRAMS: usize = 4;

/// The loaded program for `prog`: kept from an earlier container, or
/// loaded now (and kept).
fn loaded(prog: Vec<Insn>) -> Result<std::sync::Arc<OwnedFd>, RunError> {
    let mut kept = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, fd)) = kept.iter().find(|(p, _)| *p == prog) {
        return Ok(fd.clone());
    }
    let fd = std::sync::Arc::new(load_or_explain(&prog)?);
    if kept.len() >= KEPT_PROGRAMS {
        kept.remove(0);
    }
    kept.push((prog, fd.clone()));
    Ok(fd)
}

/// Loads the program for `rules` (or takes the one loaded for the same
/// rules before) and attaches it to the cgroup v2 directory `cgroup`. The
/// cgroup keeps the program alive.
pub(crate) fn attach(cgroup: &std::path::Path, rules: &[Rule]) -> Result<(), RunError> {
    let fd = loaded(program(rules))?;
    let dir = std::fs::File::open(cgroup)
        .map_err(|e| RunError::io(format!("open {}", cgroup.display()), e))?;
    let mut attr = ProgAttach {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| {
        RunError::io(
            format!("attach the device program to {}", cgroup.display()),
            e,
        )
    })?;
    Ok(())
}

/// Loads `prog`; if the kernel refuses, says why in the verifier's words.
fn load_or_explain(prog: &[Insn]) -> Result<OwnedFd, RunError> {
    match load(prog, None) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            // Load again with the verifier's log, to say why.
            let mut log = vec![0u8; 16 * 1024];
            let _ = load(prog, Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            let detail = if text.is_empty() {
                String::new()
            } else {
                format!(" (verifier: {})", text.lines().last().unwrap_or(""))
            };
            Err(RunError::io(
                format!("load the cgroup device program{detail}"),
                e,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{rules_from_spec, MKNOD, READ, WRITE};

    fn rule(allow: bool, kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn rules_become_blocks_tried_last_first() {
        let rules = [
            rule(false, Kind::All, None, None, ALL_ACCESS),
            rule(true, Kind::Block, None, None, MKNOD),
            rule(true, Kind::Char, Some(1), Some(3), READ | WRITE | MKNOD),
        ];
        let p = program(&rules);
        let prologue = 6;
        // c 1:3 rwm: type, major, minor tests, then allow.
        let c13 = &p[prologue..prologue + 5];
        assert_eq!(c13[0], insn(JMP_JNE_K, 3, 0, 4, DEV_CHAR));
        assert_eq!(c13[1], insn(JMP_JNE_K, 4, 0, 3, 1));
        assert_eq!(c13[2], insn(JMP_JNE_K, 5, 0, 2, 3));
        assert_eq!(c13[3], insn(ALU64_MOV_K, 0, 0, 0, 1));
        assert_eq!(c13[4], insn(JMP_EXIT, 0, 0, 0, 0));
        // b *:* m: type, then the access subset test, then allow.
        let bm = &p[prologue + 5..prologue + 11];
        assert_eq!(bm[0], insn(JMP_JNE_K, 3, 0, 5, DEV_BLOCK));
        assert_eq!(bm[1], insn(ALU64_MOV_X, 1, 2, 0, 0));
        assert_eq!(bm[2], insn(ALU64_AND_K, 1, 0, 0, MKNOD as i32));
        assert_eq!(bm[3], insn(JMP_JNE_X, 1, 2, 2, 0));
        // The deny-all matches everything: it ends the program, with no
        // unreachable default after it.
        assert_eq!(
            &p[prologue + 11..],
            &[insn(ALU64_MOV_K, 0, 0, 0, 0), insn(JMP_EXIT, 0, 0, 0, 0)]
        );
    }

    #[test]
    fn without_a_catch_all_the_default_is_deny() {
        let p = program(&[rule(true, Kind::Char, Some(1), None, ALL_ACCESS)]);
        assert_eq!(p.len(), 6 + 4 + 2);
        assert_eq!(p[p.len() - 2], insn(ALU64_MOV_K, 0, 0, 0, 0));
        // Every jump lands inside the program.
        for (i, ins) in p.iter().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                assert!(i + 1 + (ins.off as usize) < p.len());
            }
        }
    }

    /// Loads the default program into the kernel, attaches it to a fresh
    /// cgroup in the unified hierarchy and checks what a shell moved there
    /// may do. Root and a cgroup2 mount only.
    #[test]
    fn kernel_enforces_the_default_program() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: needs root");
            return;
        }
        let Some(base) = crate::cgroup::unified_base() else {
            eprintln!("skipping: no cgroup2 hierarchy");
            return;
        };
        let cg = base.join(format!("kiln-bpf-test-{}", std::process::id()));
        std::fs::create_dir_all(&cg).unwrap();
        let rules = rules_from_spec(None).unwrap();
        attach(&cg, &rules).unwrap();
        let t = tempfile::tempdir().unwrap();
        let script = format!(
            "echo 0 > {cg}/cgroup.procs || exit 90
             head -c1 /dev/zero >/dev/null || exit 91
             mknod {t}/blk b 7 0 || exit 92
             head -c1 {t}/blk 2>{t}/err && exit 93
             grep -q 'Operation not permitted' {t}/err || exit 94
             mknod {t}/null c 1 3 || exit 95
             echo x > {t}/null || exit 96
             mknod {t}/mem c 1 1 || exit 97
             head -c1 {t}/mem 2>/dev/null && exit 98
             exit 0",
            cg = cg.display(),
            t = t.path().display()
        );
        let st = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        let _ = std::fs::remove_dir(&cg);
        assert_eq!(st.code(), Some(0), "device program check failed: {st:?}");
    }
}
