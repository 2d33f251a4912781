//! OCI seccomp profiles compiled to a classic BPF filter (x86_64 only), and
//! kiln's default profile.
//!
//! Rules are checked in order of action severity (kill, trap, errno, log,
//! allow), so the first matching rule is the one libseccomp would pick.
//! Argument conditions support `SCMP_CMP_EQ`, `SCMP_CMP_NE` and
//! `SCMP_CMP_MASKED_EQ`; other operators are refused rather than ignored.
//! Syscalls from another ABI (i386, x32) are answered with ENOSYS.

mod x86_64;

use crate::error::RunError;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: usize, hi: bool) -> u32 {
    16 + 8 * i as u32 + if hi { 4 } else { 0 }
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A compiled filter, ready for seccomp(SECCOMP_SET_MODE_FILTER).
#[derive(Debug)]
pub(crate) struct Filter {
    pub prog: Vec<libc::sock_filter>,
    pub flags: libc::c_uint,
}

fn unsupported(what: String) -> RunError {
    RunError::Unsupported(format!("seccomp: {what}"))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<(u32, u8), RunError> {
    use LinuxSeccompAction::*;
    // The second value orders rules: lower is more severe and checked first.
    Ok(match a {
        ScmpActKillProcess => (RET_KILL_PROCESS, 0),
        ScmpActKill | ScmpActKillThread => (RET_KILL_THREAD, 1),
        ScmpActTrap => (RET_TRAP, 2),
        ScmpActErrno => (
            RET_ERRNO | (errno.unwrap_or(libc::EPERM as u32) & 0xffff),
            3,
        ),
        ScmpActLog => (RET_LOG, 5),
        ScmpActAllow => (RET_ALLOW, 6),
        ScmpActNotify | ScmpActTrace => return Err(unsupported(format!("action {a:?}"))),
    })
}

pub(crate) fn syscall_number(name: &str) -> Option<u32> {
    x86_64::SYSCALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// How a condition instruction leaves the rule when the condition fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// Not a failure point (or a fixed jump inside the condition).
    Never,
    /// A JEQ whose false branch means the condition does not hold.
    IfFalse,
    /// A JEQ whose true branch means the condition does not hold.
    IfTrue,
}

/// Instructions that fall through when the argument condition holds.
fn condition(
    arg: &oci_spec::runtime::LinuxSeccompArg,
) -> Result<Vec<(libc::sock_filter, Fail)>, RunError> {
    let i = arg.index();
    if i > 5 {
        return Err(RunError::InvalidSpec(format!("seccomp argument index {i}")));
    }
    let (lo, hi) = (arg.value() as u32, (arg.value() >> 32) as u32);
    Ok(match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => vec![
            (stmt(LD_W_ABS, off_arg(i, false)), Fail::Never),
            (jump(JEQ_K, lo, 0, 0), Fail::IfFalse),
            (stmt(LD_W_ABS, off_arg(i, true)), Fail::Never),
            (jump(JEQ_K, hi, 0, 0), Fail::IfFalse),
        ],
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            // OCI: `value` is the mask, `valueTwo` the expected result.
            let want = arg.value_two().unwrap_or(0);
            vec![
                (stmt(LD_W_ABS, off_arg(i, false)), Fail::Never),
                (stmt(AND_K, lo), Fail::Never),
                (jump(JEQ_K, want as u32, 0, 0), Fail::IfFalse),
                (stmt(LD_W_ABS, off_arg(i, true)), Fail::Never),
                (stmt(AND_K, hi), Fail::Never),
                (jump(JEQ_K, (want >> 32) as u32, 0, 0), Fail::IfFalse),
            ]
        }
        // Holds when either half differs: a differing low half skips the
        // high-half check; equal halves mean the condition fails.
        LinuxSeccompOperator::ScmpCmpNe => vec![
            (stmt(LD_W_ABS, off_arg(i, false)), Fail::Never),
            (jump(JEQ_K, lo, 0, 2), Fail::Never),
            (stmt(LD_W_ABS, off_arg(i, true)), Fail::Never),
            (jump(JEQ_K, hi, 0, 0), Fail::IfTrue),
        ],
        op => return Err(unsupported(format!("argument operator {op:?}"))),
    })
}

/// One rule: check nr, then the conditions, then return the action; every
/// failure jumps just past the return.
fn rule_block(
    nr: u32,
    args: &[oci_spec::runtime::LinuxSeccompArg],
    ret: u32,
) -> Result<Vec<libc::sock_filter>, RunError> {
    let mut conds = Vec::new();
    for a in args {
        conds.extend(condition(a)?);
    }
    let too_long = || unsupported("rule too long".into());
    let n = conds.len();
    let mut out = vec![
        stmt(LD_W_ABS, OFF_NR),
        jump(JEQ_K, nr, 0, u8::try_from(n + 1).map_err(|_| too_long())?),
    ];
    for (pos, (mut ins, fail)) in conds.into_iter().enumerate() {
        // Instructions after this one up to and including the return.
        let to_end = u8::try_from(n - pos).map_err(|_| too_long())?;
        match fail {
            Fail::Never => {}
            Fail::IfFalse => ins.jf = to_end,
            Fail::IfTrue => ins.jt = to_end,
        }
        out.push(ins);
    }
    out.push(stmt(RET_K, ret));
    Ok(out)
}

pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Filter, RunError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(unsupported("only x86_64 is supported".into()));
    }
    if profile.listener_path().is_some() {
        return Err(unsupported("notify listeners".into()));
    }
    let mut flags = 0;
    for f in profile.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // The container process is single-threaded when the filter loads.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
        } as libc::c_uint;
    }
    let (default_ret, _) = action(profile.default_action(), profile.default_errno_ret())?;
    let mut rules: Vec<(u8, u32, u32, &LinuxSyscall)> = Vec::new();
    for sc in profile.syscalls().iter().flatten() {
        let (ret, rank) = action(sc.action(), sc.errno_ret())?;
        for name in sc.names() {
            // Like runc: a name this kernel ABI lacks cannot be called anyway.
            if let Some(nr) = syscall_number(name) {
                rules.push((rank, nr, ret, sc));
            }
        }
    }
    rules.sort_by_key(|(rank, ..)| *rank);
    let mut prog = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32),
    ];
    for (_, nr, ret, sc) in rules {
        prog.extend(rule_block(nr, sc.args().as_deref().unwrap_or(&[]), ret)?);
    }
    prog.push(stmt(RET_K, default_ret));
    if prog.len() > 4096 {
        return Err(unsupported(format!(
            "filter of {} instructions exceeds the kernel's 4096",
            prog.len()
        )));
    }
    Ok(Filter { prog, flags })
}

/// Syscalls kiln's default profile refuses with EPERM: docker's default
/// profile withholds these from containers without extra capabilities
/// (kernel modules, keyrings, bpf, perf, namespaces and mounts, clock and
/// reboot, swap, process memory access, and obsolete calls).
pub const DEFAULT_DENIED: [&str; 52] = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
];

/// Namespace flags `clone` may not carry (docker filters them the same way).
const CLONE_NS_FLAGS: [i32; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// kiln's default profile: allow everything except [`DEFAULT_DENIED`],
/// `clone` with namespace flags (EPERM), and `clone3` (ENOSYS, so libc falls
/// back to `clone`, whose flags can be checked).
pub fn default_profile() -> Result<LinuxSeccomp, RunError> {
    let err = |e: oci_spec::OciSpecError| RunError::InvalidSpec(e.to_string());
    let mut syscalls = vec![LinuxSyscallBuilder::default()
        .names(
            DEFAULT_DENIED
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EPERM as u32)
        .build()
        .map_err(err)?];
    for flag in CLONE_NS_FLAGS {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::EPERM as u32)
                .args(vec![LinuxSeccompArgBuilder::default()
                    .index(0usize)
                    .value(flag as u64)
                    .value_two(flag as u64)
                    .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                    .build()
                    .map_err(err)?])
                .build()
                .map_err(err)?,
        );
    }
    syscalls.push(
        LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(libc::ENOSYS as u32)
            .build()
            .map_err(err)?,
    );
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![oci_spec::runtime::Arch::ScmpArchX86_64])
        .syscalls(syscalls)
        .build()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_from_the_table() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("clone3"), Some(435));
        assert_eq!(syscall_number("nope"), None);
        for name in DEFAULT_DENIED {
            assert!(
                syscall_number(name).is_some(),
                "{name} missing from the table"
            );
        }
    }

    #[test]
    fn default_profile_compiles() {
        let f = compile(&default_profile().unwrap()).unwrap();
        // Arch/ABI prologue, one 3-instruction block per plain name, a
        // 9-instruction block per clone flag, clone3, and the default.
        assert_eq!(f.prog.len(), 6 + 3 * DEFAULT_DENIED.len() + 9 * 7 + 3 + 1);
        assert_eq!(f.prog.last().unwrap().k, RET_ALLOW);
    }

    #[test]
    fn conditions_jump_past_the_return() {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(7u64)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()
            .unwrap();
        let b = rule_block(1, &[arg], RET_ERRNO | 1).unwrap();
        // ld nr, jeq nr (false → skip 5), ld lo, jeq lo (false → skip 3),
        // ld hi, jeq hi (false → skip 1), ret.
        assert_eq!(b.len(), 7);
        assert_eq!((b[1].jt, b[1].jf), (0, 5));
        assert_eq!((b[3].jt, b[3].jf), (0, 3));
        assert_eq!((b[5].jt, b[5].jf), (0, 1));

        let ne = LinuxSeccompArgBuilder::default()
            .index(1usize)
            .value(7u64)
            .op(LinuxSeccompOperator::ScmpCmpNe)
            .build()
            .unwrap();
        let b = rule_block(1, &[ne], RET_ERRNO | 1).unwrap();
        // A differing low half skips to ret; equal high half skips past it.
        assert_eq!((b[3].jt, b[3].jf), (0, 2));
        assert_eq!((b[5].jt, b[5].jf), (1, 0));
        assert_eq!(b[6].code, RET_K);
    }
}
