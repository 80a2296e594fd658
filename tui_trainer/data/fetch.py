"""Getting dataset files (and model weights) onto the disk, torch-free.

Offline, nothing is printed or created before the one-line error: the connection is opened
first, and only then is "downloading ..." said and a folder made. A download that breaks off
leaves no partial file and no folder it made; a finished one is checked (MD5 or SHA-256
prefix) before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

from ..errors import UserError


class DownloadError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    return missing  # deepest first


def download_file(url: str, dest: Path, *, what: str, md5: str = "", sha256_prefix: str = "") -> None:
    """Download `url` to `dest`; raises DownloadError(reason) with nothing left behind."""
    try:
        response = urllib.request.urlopen(url, timeout=30)
    except (OSError, ValueError) as exc:
        raise DownloadError(str(getattr(exc, "reason", None) or exc)) from None
    size = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    size_text = f" ({int(size) / 1e6:,.1f} MB)" if size and str(size).isdigit() else ""
    print(f"tui-trainer: downloading {what}{size_text} to {dest.parent} ...", file=sys.stderr, flush=True)
    created = _missing_parents(dest.parent)
    part = dest.with_name(dest.name + ".part")
    try:
        with response:
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.md5() if md5 else hashlib.sha256()
            with open(part, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        got = digest.hexdigest()
        if (md5 and got != md5) or (sha256_prefix and not got.startswith(sha256_prefix)):
            raise OSError("the download is corrupted (checksum mismatch)")
        os.replace(part, dest)
    except (OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        for folder in created:  # deepest first; only while empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise DownloadError(str(getattr(exc, "reason", None) or exc)) from None


def extract_tar(archive: Path, root: Path, folder: str, hint: str) -> None:
    """Extract the members under `folder/` of a .tar.gz into `root` (data filter: no links out)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name == folder or m.name.startswith(folder + "/")]
            if not members:
                raise UserError(f"{archive} does not contain {folder}/; {hint}")
            tar.extractall(root, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"could not extract {archive} ({exc}); download it again, then {hint}") from None


def gunzip(archive: Path, dest: Path, hint: str) -> None:
    """Decompress `archive` (.gz) to `dest`, through a temporary file renamed into place."""
    part = dest.with_name(dest.name + ".part")
    try:
        with gzip.open(archive, "rb") as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(part, dest)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise UserError(f"could not decompress {archive} ({exc}); download it again, then {hint}") from None
