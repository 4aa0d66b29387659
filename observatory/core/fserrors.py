"""Plain words for file-system errors: what a user sees instead of ``[Errno 30] ...``."""

from __future__ import annotations

import errno

#: errno -> what it means for the person who ran the command.
_PLAIN = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the path is too long",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error (a failing disk or network share?)",
}


def describe_os_error(exc: OSError) -> str:
    """Return what an ``OSError`` means, in words, naming the file it concerns.

    ``OSError(ENOSPC, ..., "/data/x")`` gives "the disk is full (no space left on
    device): /data/x"; an errno without plain words keeps the system's message.
    """
    what = _PLAIN.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    return f"{what}: {where}" if where is not None else what
