"""The sandbox's seccomp filter: classic BPF assembled by hand, handed to bubblewrap (``--seccomp FD``).

No library builds it: libseccomp's own Python binding is Debian's ``python3-seccomp``, for Debian's
Python only, and PyPI's ctypes wrappers (``pyseccomp``) are unmaintained; the program is twenty
instructions, written out below. The kernel runs it on every
system call of the sandboxed process and its children (seccomp(2), "SECCOMP_SET_MODE_FILTER"); it
reads ``struct seccomp_data`` (linux/seccomp.h): ``nr`` at offset 0, ``arch`` at 4, ``args[i]`` at
16 + 8 i (little-endian, so the low 32 bits of an argument are at that offset).

What it refuses, and why:

- any other ABI than the native one (x86-64's i386 ``int 0x80`` and x32 calls have their own
  numbers, so a filter of native numbers would not see them): ENOSYS;
- new namespaces, nested user namespaces above all: ``unshare``, ``setns``, ``clone`` with a
  ``CLONE_NEW*`` flag (EPERM), and ``clone3``, whose flags sit in memory a filter cannot read
  (ENOSYS, so glibc falls back to ``clone``; Flatpak and Docker do the same);
- sockets of any family but Unix, IPv4 and IPv6 (the network namespace is empty): netlink above
  all, the kernel's configuration interface (EAFNOSUPPORT);
- ``io_uring_setup``: io_uring opens sockets and files without the system calls above (ENOSYS).
"""

from __future__ import annotations

import os
import platform
import struct
from dataclasses import dataclass

# linux/filter.h and linux/bpf_common.h: the instruction classes and modes used here.
LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS: A = 32-bit word at offset k of seccomp_data
JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K: A == k ?
JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K: A >= k ?
JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K: A & k != 0 ?
RET_K = 0x06 | 0x00  # BPF_RET | BPF_K: return k

# linux/seccomp.h: the verdicts.
ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW


def errno(code: int) -> int:
    return 0x00050000 | code  # SECCOMP_RET_ERRNO | errno: the call fails with that errno


X32_SYSCALL_BIT = 0x40000000  # asm/unistd.h: x32 calls are native-arch numbers with this bit set
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
SOCKET_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6


@dataclass(frozen=True)
class Arch:
    """One architecture's AUDIT_ARCH value (linux/audit.h) and system call numbers."""

    audit: int
    socket: int
    clone: int
    clone3: int
    unshare: int
    setns: int
    io_uring_setup: int


ARCHES = {  # arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h (arm64)
    "x86_64": Arch(0xC000003E, socket=41, clone=56, clone3=435, unshare=272, setns=308, io_uring_setup=425),
    "aarch64": Arch(0xC00000B7, socket=198, clone=220, clone3=435, unshare=97, setns=268, io_uring_setup=425),
}


def program(arch: Arch) -> list[tuple]:
    """The filter as (opcode, jump-if-true, jump-if-false, k); jumps name a label (forward only)."""
    return [
        (LD_W_ABS, 0, 0, 4),  # A = arch
        (JEQ_K, 0, "enosys", arch.audit),
        (LD_W_ABS, 0, 0, 0),  # A = nr
        (JGE_K, "enosys", 0, X32_SYSCALL_BIT),
        (JEQ_K, "enosys", 0, arch.clone3),
        (JEQ_K, "enosys", 0, arch.io_uring_setup),
        (JEQ_K, "eperm", 0, arch.unshare),
        (JEQ_K, "eperm", 0, arch.setns),
        (JEQ_K, "clone", 0, arch.clone),
        (JEQ_K, "socket", "allow", arch.socket),
        "clone",
        (LD_W_ABS, 0, 0, 16),  # A = flags (args[0])
        (JSET_K, "eperm", "allow", CLONE_NEW_ANY),
        "socket",
        (LD_W_ABS, 0, 0, 16),  # A = domain (args[0])
        *[(JEQ_K, "allow", 0, family) for family in SOCKET_FAMILIES],
        (RET_K, 0, 0, errno(97)),  # EAFNOSUPPORT
        "allow",
        (RET_K, 0, 0, ALLOW),
        "enosys",
        (RET_K, 0, 0, errno(38)),  # ENOSYS
        "eperm",
        (RET_K, 0, 0, errno(1)),  # EPERM
    ]


def assemble(lines: list) -> bytes:
    """``struct sock_filter`` x n (u16 code, u8 jt, u8 jf, u32 k), labels resolved to offsets."""
    labels: dict[str, int] = {}
    instructions = []
    for line in lines:
        if isinstance(line, str):
            labels[line] = len(instructions)
        else:
            instructions.append(line)

    def offset(jump, at: int) -> int:  # a jump counts the instructions it skips
        return labels[jump] - at - 1 if isinstance(jump, str) else jump

    return b"".join(
        struct.pack("<HBBI", code, offset(jt, i), offset(jf, i), k)
        for i, (code, jt, jf, k) in enumerate(instructions)
    )


def machine_arch() -> Arch | None:
    """This machine's entry in ARCHES, or None where the filter has no numbers for it."""
    return ARCHES.get(platform.machine())


def filter_fd() -> int:
    """An open file (memfd, read from its start) holding the filter, for ``bwrap --seccomp FD``."""
    arch = machine_arch()
    if arch is None:
        raise OSError(f"no seccomp filter for {platform.machine()}")
    fd = os.memfd_create("genlab-seccomp", os.MFD_CLOEXEC)
    os.write(fd, assemble(program(arch)))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
