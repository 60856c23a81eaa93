"""Output files that appear whole or not at all.

Each output is written under a temporary name in its target's directory (so the rename
cannot cross file systems) and renamed over the target with :func:`os.replace` only when the
command succeeded. On any failure, Ctrl-C included, the temporary files are deleted and an
existing target is left as it was.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

#: Temporary names: ``.<target stem>.<8 hex digits>.part<target suffix>`` beside the target
#: (the suffix kept for writers that choose the format from it, as matplotlib does).
TEMP_MARK = ".part"


class Outputs:
    """A set of output files committed together. :meth:`add` gives the temporary path to
    write a target through; :meth:`commit` renames every one over its target;
    :meth:`discard` deletes them. As a context manager: commit on a normal exit, discard
    on an exception. The caller closes its files before either."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (temporary, target)

    def add(self, target: str | Path) -> Path:
        """A new, empty temporary file for ``target``; raises :class:`OSError` saying why the
        target cannot be written (no such directory, a directory, no permission)."""
        target = Path(target)
        try:
            st = target.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OSError(f"{target}: cannot write ({exc.strerror})") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OSError(f"{target}: is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            self._pending.append((target, target))  # a device or FIFO (/dev/stdout): in place
            return target
        if target.is_symlink():  # replace the file it points to, as writing through it would
            target = target.resolve()
        parent = target.parent
        if not parent.is_dir():
            raise OSError(f"{target}: cannot write: no directory {parent}")
        while True:
            temp = parent / f".{target.stem[:180]}.{secrets.token_hex(4)}{TEMP_MARK}{target.suffix[:20]}"
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise OSError(f"{target}: cannot write ({exc.strerror})") from None
            break
        try:
            if st is not None:  # the replacement keeps the existing file's permissions
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fd)
        self._pending.append((temp, target))
        return temp

    def commit(self) -> None:
        """Rename every temporary file over its target; if one rename fails, the files not
        yet renamed are deleted and the error is raised."""
        try:
            while self._pending:
                temp, target = self._pending[0]
                if temp != target:
                    os.replace(temp, target)
                self._pending.pop(0)
        finally:
            self.discard()

    def discard(self) -> None:
        """Delete every temporary file not yet renamed."""
        pending, self._pending = self._pending, []
        for temp, target in pending:
            if temp != target:
                temp.unlink(missing_ok=True)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """``with replacing(target) as temp:`` write ``temp`` (and close it); it replaces
    ``target`` when the block ends normally and is deleted when it raises."""
    with Outputs() as outputs:
        yield outputs.add(target)
