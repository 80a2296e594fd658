"""Checkpoints that survive crashes, and that load without running anyone's code.

Writes go to a temporary file in the same directory, are fsynced, renamed over the target
with os.replace and the directory is fsynced: a kill or a full disk mid-save leaves the
previous file intact. Every load validates the zip container's CRCs first (torch.load alone
happily returns silently corrupted tensors) and then uses `torch.load(weights_only=True)`,
so a checkpoint carrying pickled code is refused, never executed.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import random
import re
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..runlog import TMP_MARK, atomic_write

FORMAT = "tui-trainer/checkpoint"
FORMAT_VERSION = 2  # 1: the manual LR factor inside the optimizer and scheduler states (converted on load)
_EPOCH_FILE = re.compile(r"^checkpoint_epoch_(\d+)\.pth$")


class _WriteErrorRecorder:
    """A file wrapper that remembers the OSError a write raised. torch.save turns it into an
    opaque RuntimeError ("unexpected pos ..."); we re-raise the real cause (ENOSPC, EDQUOT, EIO)."""

    def __init__(self, fh) -> None:
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._fh.flush()

    def tell(self) -> int:
        return self._fh.tell()


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save `obj` to `path` so that `path` is always either the old or the new file.

    A failed write (full disk, quota) raises OSError and leaves the old file as it was."""

    def write(fh) -> None:
        writer = _WriteErrorRecorder(fh)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise

    return atomic_write(path, write, binary=True)


def clean_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove temporary files a crashed save left behind; returns what was removed."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.name.startswith(".") and TMP_MARK in entry.name and entry.is_file():
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


PICKLE_SCAN_LIMIT = 64 * 1024 * 1024  # bytes of a suspected pickle stream read to name its globals
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}


class _Bounded:
    """A read-only view of a stream that never reads past `limit` bytes from where it started:
    a pickle opcode's length field comes from the file, and random or hostile bytes can claim
    gigabytes (BINUNICODE8), which a plain read() would try to allocate."""

    def __init__(self, stream: IO[bytes], limit: int):
        self._stream, self._end = stream, stream.tell() + limit

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, n: int = -1) -> bytes:
        room = max(0, self._end - self._stream.tell())
        return self._stream.read(room if n is None or n < 0 else min(n, room))

    def readline(self) -> bytes:
        return self._stream.readline(max(0, self._end - self._stream.tell()))


def _stack_effect(opcode, depth: int, marks: list[int]) -> int:
    """The stack depth after `opcode`, as pickletools.dis checks it; ValueError where the opcode
    cannot follow what came before (a pop below the last mark, a mark-slice with no mark), which
    random bytes hit within a few opcodes while every real pickle passes."""
    before, after = opcode.stack_before, opcode.stack_after
    if pickletools.markobject in before:
        if not marks:
            raise ValueError("no mark on the stack")
        depth = marks.pop()
        before = before[: before.index(pickletools.markobject)]
    depth -= len(before)
    if depth < (marks[-1] if marks else 0):
        raise ValueError("stack underflow")
    if pickletools.markobject in after:
        marks.append(depth)
        after = [item for item in after if item is not pickletools.markobject]
    return depth + len(after)


def pickle_globals(stream: IO[bytes], limit: int = PICKLE_SCAN_LIMIT) -> tuple[bool, list[str]]:
    """Read a pickle stream's opcodes without executing any of them: (is it a complete pickle
    stream, the globals - module.name - it references, in order). Reads consecutive pickles (torch's
    legacy format is several) and stops at the first bytes that are not one, or at `limit`. A pickle
    is complete only when its opcodes keep a consistent stack and STOP leaves exactly one object,
    so a file of random bytes that happens to begin with STOP (".") is not taken for one."""
    names: list[str] = []
    complete = False
    stream = _Bounded(stream, limit)
    start = stream.tell()
    while stream.tell() - start < limit:
        recent: list = []  # the last values pushed, for STACK_GLOBAL (module and name come from the stack)
        memo: dict = {}
        depth, marks = 0, []
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                name = opcode.name
                if name == "STOP" and (depth != 1 or marks):
                    raise ValueError("STOP without exactly one object on the stack")
                depth = _stack_effect(opcode, depth, marks)
                if name in _STRING_OPS:
                    recent = [*recent[-1:], arg]
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    recent = [*recent[-1:], memo.get(arg)]
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[arg] = recent[-1] if recent else None
                elif name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif name == "STACK_GLOBAL":
                    names.append(".".join(str(v) for v in recent[-2:]))
                if stream.tell() - start > limit:
                    break
            else:
                complete = True
                continue  # that pickle ended with STOP: another may follow
        except (ValueError, EOFError, UnicodeDecodeError, OverflowError, KeyError, IndexError):
            pass
        break
    return complete, names


_HARMLESS_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset")


def _offending(names: list[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        if not name.startswith(_HARMLESS_GLOBALS) and name not in seen:
            seen.append(name)
    return seen


def _references(names: list[str]) -> str:
    bad = _offending(names)
    if not bad:
        return ""
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return f"it references {', '.join(bad[:3])}{more}"


def _refuse_pickle_stream(path: Path) -> None:
    """A checkpoint that is not a zip file but a pickle stream (torch.save's legacy format, or
    pickle.dump) is never one of ours: refuse it as unsafe rather than call it corrupted, so a
    resume stops instead of quietly falling back to an older checkpoint."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head[:2] == b"PK":
                return  # a damaged zip file: corrupted, not planted
            complete, names = pickle_globals(fh)
            whole = fh.read(1) == b""  # the pickles are the whole file (pickle.dump's output)
    except OSError:
        return
    # A legacy torch file is a protocol header and a complete pickle (then more); a plain
    # pickle.dump is pickles to the end of the file or names a global. Random bytes can begin with
    # a tiny pickle ("N.") followed by more noise: that file is corrupted, not planted.
    headed = len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if not ((complete and (headed or names or whole)) or (headed and names)):
        return
    reason = _references(names) or "this one references no code, but the format is never loaded"
    raise UnsafeCheckpointError(
        f"refusing to load {path}: it is a pickle stream (torch's legacy format or pickle.dump), which "
        f"tui-trainer never writes and which can carry code ({reason}); it was not loaded - delete it, "
        "or replace it with a trusted copy")


def verify_file(path: str | os.PathLike) -> None:
    """Raise CheckpointError unless `path` is a complete, uncorrupted torch zip file
    (UnsafeCheckpointError for a pickle stream that is not one)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError, ValueError,
            UnicodeDecodeError) as exc:
        _refuse_pickle_stream(path)
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted ({exc})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupted (CRC mismatch in {bad})")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding pickled code or objects: never loaded, and never silently replaced
    by an older checkpoint either - someone or something wrote that file."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _zip_pickle_globals(path: Path) -> list[str]:
    """The globals the main pickle of a torch zip file references (read, never executed)."""
    try:
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if member is None:
                return []
            with zf.open(member) as fh:
                return pickle_globals(io.BytesIO(fh.read(PICKLE_SCAN_LIMIT)))[1]
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError):
        return []


def _unpickling_reason(exc: BaseException, path: Path) -> str:
    """What the refused checkpoint references, as one line (torch's own refusal also suggests
    unsafe loading, which we never do, spans several paragraphs and contains terminal escapes)."""
    found = _references(_zip_pickle_globals(path))
    if found:
        return found
    text = _ANSI.sub("", str(exc))
    m = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if m:
        return f"it references {m.group(1)}"
    m = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    line = m.group(1) if m else "the weights-only loader refused it"
    line = " ".join(line.split())
    return line if len(line) <= 160 else line[:160].rsplit(" ", 1)[0] + " ..."


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Validate, then torch.load with weights_only=True. Never falls back to unsafe loading."""
    verify_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds pickled code or objects that a checkpoint never needs "
            f"({_unpickling_reason(exc, Path(path))}); it was not loaded - delete it, or replace it with a trusted copy"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = (_ANSI.sub("", str(exc)).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"checkpoint {path} could not be read ({first[:200]})") from None


def load_run_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", resumable: bool = True) -> dict:
    """Load one of our own checkpoints and check every field a resume reads (resumable=False:
    only what loading the weights needs, as for best_model.pth at the final evaluation)."""
    from .checkpoint_fields import check_fields, upgrade

    data = safe_load(path, map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tui-trainer checkpoint")
    version = data.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"checkpoint {path} is damaged: format_version must be an integer, not {version!r:.40}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer tui-trainer (format {version})")
    data = upgrade(data)
    check_fields(data, path, resumable)
    return data


def upgrade(data: dict) -> dict:
    """A checkpoint of an earlier format in the current one (see checkpoint_fields.upgrade)."""
    from .checkpoint_fields import upgrade as _upgrade

    return _upgrade(data)


def candidates(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints a run can resume from, newest progress first: last.pth, then the periodic
    ones from the highest epoch down, then best_model.pth."""
    run_dir = Path(run_dir)
    periodic = []
    for entry in run_dir.glob("checkpoint_epoch_*.pth"):
        m = _EPOCH_FILE.match(entry.name)
        if m:
            periodic.append((int(m.group(1)), entry))
    ordered = [run_dir / "last.pth"] + [p for _, p in sorted(periodic, reverse=True)] + [run_dir / "best_model.pth"]
    return [p for p in ordered if p.exists()]


def progress_key(data: dict) -> tuple[int, int]:
    return data["epoch"], data.get("step_in_epoch") or 0


def find_resumable(run_dir: str | os.PathLike, map_location: Any = "cpu") -> tuple[Path, dict, list[str]]:
    """The valid checkpoint with the most progress; problems with the others as warnings.

    Raises CheckpointError when none is usable, and UnsafeCheckpointError at once when one
    holds pickled code (no fallback past a planted file).
    """
    warnings: list[str] = []
    best: tuple[Path, dict] | None = None
    found = candidates(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {run_dir} (expected last.pth or checkpoint_epoch_N.pth)")
    for path in found:
        try:
            data = load_run_checkpoint(path, map_location)
        except UnsafeCheckpointError:
            raise  # a planted file is a reason to stop and look, not to quietly use an older one
        except CheckpointError as exc:
            warnings.append(f"skipping {path.name}: {exc}")
            continue
        if best is None or progress_key(data) > progress_key(best[1]):
            best = (path, data)
    if best is None:
        raise CheckpointError(f"no valid checkpoint in {run_dir}: " + "; ".join(warnings))
    return best[0], best[1], warnings


# ----- random number generator state, stored as plain tensors so weights_only loading works -----

def capture_rng() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def all_finite(state_dict: dict) -> bool:
    for value in state_dict.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return False
    return True
