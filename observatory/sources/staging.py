"""A source's cache folder changes all at once: built aside, then swapped in whole.

Everything a fetch writes (the downloaded file, the extracted members, the new
``provenance.json``) goes into ``cache_dir/.<id>.staging-<random>/``; once all
of it is verified, :meth:`Staging.commit` renames the live folder
``cache_dir/<id>/`` aside and the staging folder in its place, then removes the
old one. A failure discards the staging folder: the live folder is never
touched. A crash between the two renames leaves ``.<id>.old-<random>``, which
:func:`recover_leftovers` renames back before the next fetch of that source.

Only the holder of :func:`cache_lock` (one per cache folder, like the lock of
an output folder) stages, swaps and removes leftovers.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from observatory.core.errors import SourceError
from observatory.core.files import fsync_path
from observatory.core.fserrors import describe_os_error
from observatory.core.lock import Lock
from observatory.core.timing import new_run_id

logger = logging.getLogger(__name__)


#: The lock file of a download cache, at its root (no source id starts with a dot).
LOCK_NAME = ".lock"


#: Temporary folders of older versions, inside a source's folder.
_OLD_TEMPORARIES = (".extracted-",)


@contextmanager
def cache_lock(cache_dir: Path, command: str) -> Iterator[None]:
    """Hold the lock of the download cache ``cache_dir`` during the block.

    Parameters
    ----------
    cache_dir
        The cache root; created if absent.
    command
        What takes it (``fetch``, ``run``, ``refresh``), shown to the commands
        it refuses.

    Raises
    ------
    Locked
        Another live process holds it; the message names its command, pid,
        host and start time.
    SourceError
        The cache folder or its lock file cannot be created (one plain sentence).
    """
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = (
            f"cannot create the download cache {cache_dir}: {describe_os_error(exc)}; "
            "set [sources] cache_dir or $OBSERVATORY_CACHE to a writable folder"
        )
        raise SourceError(msg, path=cache_dir) from exc
    lock = Lock(
        cache_dir / LOCK_NAME,
        new_run_id(datetime.now(UTC)),
        command,
        what=f"the download cache {cache_dir}",
    )
    try:
        lock.acquire()
    except SourceError:
        raise
    except OSError as exc:  # the OutputError of a lock file that cannot be made
        raise SourceError(str(exc), path=lock.path) from exc
    if lock.recovered:
        logger.warning("download cache %s: %s", cache_dir, lock.recovered)
    try:
        yield
    finally:
        lock.release()


def recover_leftovers(cache_dir: Path, source_id: str) -> None:
    """Undo what a killed fetch of ``source_id`` left; call it with the lock held.

    A staging folder is removed; an old folder is renamed back when the live one
    is missing (killed between the two renames of a swap), else removed; the
    ``.part`` files and temporary folders of older versions are removed.
    """
    if not cache_dir.is_dir():
        return
    live = cache_dir / source_id
    ours = re.compile(rf"^\.{re.escape(source_id)}\.(staging|old)-[A-Za-z0-9_]+$")
    leftovers = sorted(p for p in cache_dir.iterdir() if ours.match(p.name))
    if live.is_dir():
        leftovers += [
            p
            for p in live.iterdir()
            if p.name.startswith(".")
            and (p.name.endswith(".part") or p.name.startswith(_OLD_TEMPORARIES))
        ]
    for path in leftovers:
        try:
            if ".old-" in path.name and not live.exists():
                logger.warning(
                    "%s: restoring %s (a swap was cut short)", source_id, live
                )
                path.rename(live)
                continue
            logger.info("%s: removing leftover %s", source_id, path)
            _remove(path)
        except OSError as exc:
            logger.warning(
                "cannot remove leftover %s: %s", path, describe_os_error(exc)
            )


def _flush(path: Path) -> None:
    """Flush a file to disk (read-only is enough, and works on read-only files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class Staging:
    """The next content of a source's cache folder, built beside it.

    Use it as a context manager: the staging folder is made on first use and
    removed on exit unless :meth:`commit` swapped it in.
    """

    def __init__(self, cache_dir: Path, source_id: str) -> None:
        self.cache_dir = Path(cache_dir)
        self.source_id = source_id
        self.live = self.cache_dir / source_id
        self._folder: Path | None = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()

    @property
    def used(self) -> bool:
        """True once something was put in the staging folder."""
        return self._folder is not None

    @property
    def folder(self) -> Path:
        """The staging folder, made on first use."""
        if self._folder is None:
            try:
                name = tempfile.mkdtemp(
                    dir=self.cache_dir, prefix=f".{self.source_id}.staging-"
                )
            except OSError as exc:
                msg = "cannot stage a new copy in"
                raise self._error(msg, exc) from exc
            self._folder = Path(name)
        return self._folder

    def adopt(self, name: str) -> Path:
        """Put the live folder's file ``name`` (a relative path) in the staging folder.

        A hard link where the file system allows it (no copy of a large
        archive), else a copy. Returns its path in the staging folder.
        """
        source, dest = self.live / name, self.folder / name
        if dest.exists():
            return dest  # adopted already
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, dest)
            except OSError:
                shutil.copy2(source, dest)
        except OSError as exc:
            msg = f"cannot stage {source} in"
            raise self._error(msg, exc) from exc
        return dest

    def commit(self) -> None:
        """Flush the staging folder and swap it in place of the live folder."""
        staged = self.folder
        try:
            for path in staged.rglob("*"):
                if path.is_file():
                    _flush(path)
            if not self.live.exists():
                staged.rename(self.live)
            else:
                old = self.cache_dir / f".{self.source_id}.old-{secrets.token_hex(4)}"
                self.live.rename(old)
                try:
                    staged.rename(self.live)
                except OSError:
                    old.rename(self.live)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            fsync_path(self.cache_dir)
        except OSError as exc:
            msg = "cannot swap the new copy into"
            raise self._error(msg, exc) from exc
        self._folder = None

    def discard(self) -> None:
        """Remove the staging folder (nothing staged reaches the cache)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _error(self, what: str, exc: OSError) -> SourceError:
        msg = (
            f"{self.source_id}: {what} the download cache {self.cache_dir}: "
            f"{describe_os_error(exc)}; the cache is unchanged"
        )
        return SourceError(msg, source=self.source_id, path=self.cache_dir)
