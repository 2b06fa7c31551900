"""Image or audio folders shipped zipped (`train.zip`, `test.zip`), unpacked once into the run directory.

The task directory is never written: a run unpacks into `<out>/unpacked/`, which holds
a link to every other entry of the task directory beside the unpacked folders, and the
whole run (and its pipeline.py) reads the task from there. Every member is checked
before anything is written: no absolute path, no `..`, no link, and the declared total
size under the limit; the bytes written are counted again while unpacking, so a header
that lies about its size stops at the limit too.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from iml_ray.errors import TaskError
from iml_ray.task.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES

log = logging.getLogger(__name__)

# The most an archive may expand to; IML_MAX_UNPACKED_BYTES overrides it (a cluster with big disks, a test).
DEFAULT_MAX_UNPACKED_BYTES = 50 * 2**30
MEDIA_SUFFIXES = IMAGE_SUFFIXES + AUDIO_SUFFIXES
SPLITS = ("train", "test")
DONE = ".unpacked"


def max_unpacked_bytes() -> int:
    raw = os.environ.get("IML_MAX_UNPACKED_BYTES")
    if not raw:
        return DEFAULT_MAX_UNPACKED_BYTES
    try:
        return int(float(raw))
    except ValueError:
        raise TaskError(f"IML_MAX_UNPACKED_BYTES={raw!r} is not a number of bytes",
                        "Set it to a whole number of bytes, or unset it.") from None


def media_archives(root: Path) -> dict[str, Path]:
    """The splits shipped as a zip of media files with no folder of the same name: {split: archive}.

    train.zip, else the one zip named like it (whale: train2.zip, others train_images.zip)."""
    found = {}
    for split in SPLITS:
        if (root / split).is_dir():
            continue
        named = sorted(p for p in root.iterdir() if p.is_file() and re.fullmatch(rf"{split}[\w-]*\.zip", p.name, re.I)
                       and _holds_media(p))
        exact = [p for p in named if p.name.lower() == f"{split}.zip"]
        if exact or len(named) == 1:
            found[split] = (exact or named)[0]
    return found


def _holds_media(archive: Path) -> bool:
    try:
        with zipfile.ZipFile(archive) as handle:
            return any(name.lower().endswith(MEDIA_SUFFIXES) for name in handle.namelist()[:1000])
    except (OSError, zipfile.BadZipFile):
        return False


def check_archive(archive: Path, limit: int | None = None) -> list[zipfile.ZipInfo]:
    """The archive's file members, each safe to unpack; TaskError (one line) for the first that is not."""
    limit = max_unpacked_bytes() if limit is None else limit
    try:
        with zipfile.ZipFile(archive) as handle:
            members = handle.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise TaskError(f"{archive.name} cannot be read as a zip archive ({exc})", f"Check {archive}.") from None
    total = 0
    files = []
    for info in members:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise TaskError(f"{archive.name} has a member outside its folder ({info.filename!r})",
                            "Rebuild the archive with relative paths only; nothing was unpacked.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise TaskError(f"{archive.name} has a link member ({info.filename!r})",
                            "Rebuild the archive without links; nothing was unpacked.")
        if info.is_dir():
            continue
        total += info.file_size
        if total > limit:
            raise TaskError(f"{archive.name} would expand past {_size(limit)} (it declares at least {_size(total)})",
                            "Unpack it yourself if it is genuine, or raise IML_MAX_UNPACKED_BYTES; nothing was unpacked.")
        files.append(info)
    if not files:
        raise TaskError(f"{archive.name} holds no files", f"Put the {archive.stem} images or clips in it.")
    return files


def unpack_task(root: Path, archives: dict[str, Path], dest: Path) -> Path:
    """`dest` as a task directory: the archives unpacked into their split folders, links to everything else.

    Done once: a `dest` that says it is complete is reused (a resumed run)."""
    if (dest / DONE).is_file():
        return dest
    limit = max_unpacked_bytes()
    checked = {split: check_archive(archive, limit) for split, archive in archives.items()}
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for entry in sorted(root.iterdir()):
            if entry not in archives.values() and not entry.name.startswith("."):
                (staging / entry.name).symlink_to(entry.resolve())
        for split, members in checked.items():
            _extract(archives[split], members, staging / split, limit)
        (staging / DONE).write_text("complete\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("unpacked %s into %s", ", ".join(a.name for a in archives.values()), dest)
    return dest


def _extract(archive: Path, members: list[zipfile.ZipInfo], folder: Path, limit: int) -> None:
    """Members into folder; a single top folder named like the split (train.zip: train/…, train2.zip: train2/…)
    is dropped."""
    names = [PurePosixPath(m.filename.replace("\\", "/")) for m in members]
    tops = {n.parts[0] for n in names if len(n.parts) > 1}
    strip = (len(tops) == 1 and all(len(n.parts) > 1 for n in names)
             and next(iter(tops)).lower().startswith(folder.name.lower()))
    written = 0
    with zipfile.ZipFile(archive) as handle:
        for info, name in zip(members, names):
            parts = name.parts[1:] if strip else name.parts
            target = folder.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(info) as source, open(target, "wb") as out:
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > limit:
                        raise TaskError(f"{archive.name} expands past {_size(limit)} (its headers said less)",
                                        "Unpack it yourself if it is genuine, or raise IML_MAX_UNPACKED_BYTES.")
                    out.write(chunk)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
