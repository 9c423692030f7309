"""Exit codes and the exception hierarchy every stage raises.

The CLI catches `EverAnimateError` and prints one line (plus a hint) with the error's exit code;
nothing the user can cause should ever reach them as a traceback. Keep this module free of heavy
imports: it is loaded by `everanimate --help`.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    BUG = 1  # unexpected: a traceback is shown only with EVERANIMATE_DEBUG=1
    USAGE = 2  # bad flags or flag combinations (Typer/Click use 2 as well)
    BAD_INPUT = 3  # unreadable/empty media, no person, bad sizes, existing output
    WEIGHTS = 4  # weights missing, incomplete or invalid; Hub unreachable
    DEVICE = 5  # no CUDA, not enough memory
    WRITE = 6  # cannot write the output or the resume state: disk full, quota, read-only or vanished folder
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), like every shell tool
    TERMINATED = 143  # SIGTERM (128 + 15): what Slurm/Kubernetes send before killing a preempted job


class EverAnimateError(Exception):
    """Base class: `message` is one line, `hint` an optional second line telling what to do."""

    exit_code: ExitCode = ExitCode.BUG
    code: str = "error"  # stable machine-readable name for --json

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(EverAnimateError):
    exit_code = ExitCode.USAGE
    code = "usage"


class BadInputError(EverAnimateError):
    exit_code = ExitCode.BAD_INPUT
    code = "bad_input"


class OutputExistsError(BadInputError):
    code = "output_exists"


class NoPersonDetectedError(BadInputError):
    code = "no_person"


class WeightsMissingError(EverAnimateError):
    exit_code = ExitCode.WEIGHTS
    code = "weights_missing"


class WeightsInvalidError(EverAnimateError):
    exit_code = ExitCode.WEIGHTS
    code = "weights_invalid"


class HubError(EverAnimateError):
    exit_code = ExitCode.WEIGHTS
    code = "hub"


class DeviceError(EverAnimateError):
    exit_code = ExitCode.DEVICE
    code = "device"


class ResumeMismatchError(BadInputError):
    code = "resume_mismatch"


class FolderBusyError(BadInputError):
    """Another process holds the lock of a folder this run must write (locks.py)."""

    code = "busy"


class WeightsBusyError(EverAnimateError):
    exit_code = ExitCode.WEIGHTS
    code = "weights_busy"


class WriteFailedError(EverAnimateError):
    """A file could not be written (or did not read back whole): `path` names it, `reason` says why in a
    few words ("no space left on device"), `mount` is the filesystem it lives on, `action` what to do
    about it ("free some space on /data"). The run's own files are left consistent (nothing
    half-written under a real name), so the same command continues; the hint says so."""

    exit_code = ExitCode.WRITE
    code = "write_failed"

    def __init__(self, message: str, hint: str | None = None, *, path=None, reason: str = "", mount=None, action: str = ""):
        super().__init__(message, hint)
        self.path, self.reason, self.mount, self.action = path, reason, mount, action


class OutOfSpaceError(WriteFailedError):
    """No space left (ENOSPC) or the disk quota is exhausted (EDQUOT)."""

    code = "no_space"


class Interrupted(EverAnimateError):
    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"


class Terminated(Interrupted):
    exit_code = ExitCode.TERMINATED
    code = "terminated"


class SigTerm(KeyboardInterrupt):
    """SIGTERM (a cluster preempting the job, `kill`), raised wherever the process is so that it unwinds
    exactly like Ctrl-C: partial files are removed, the last saved state stays; exit 143."""


def interrupted(exc: KeyboardInterrupt, hint: str) -> Interrupted:
    """The one-line error for Ctrl-C (exit 130) or SIGTERM (exit 143)."""
    if isinstance(exc, SigTerm):
        return Terminated("terminated (SIGTERM)", hint=hint)
    return Interrupted("interrupted", hint=hint)


def as_error(exc: BaseException) -> EverAnimateError | None:
    """The one-line error an exception is shown as, or None for an unexpected one (a bug)."""
    if isinstance(exc, EverAnimateError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return interrupted(exc, hint="run the same command again to continue from the last finished chunk")
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError without importing torch
        first = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
        return DeviceError(first, hint="try --offload, a smaller --size, or free GPU memory used by other processes")
    return None


class DiskSpaceError(EverAnimateError):
    """Not enough free space for what is left to download (exit 4, like every other weights problem)."""

    exit_code = ExitCode.WEIGHTS
    code = "disk_space"
