"""Filesystems that keep every file under one root: ``local`` (in LUME_HOME) and ``mounted`` (shared)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from lume_platform.errors import ConfigurationError, UnsafePathError

LOCAL_IDENTIFIER = "local"
MOUNTED_IDENTIFIER = "mounted"


class Filesystem:
    """A directory tree in which filenames are resolved safely and files are replaced atomically.

    Filenames are relative to the root, or absolute paths inside it. Whatever escapes the root
    (``..``, an absolute path elsewhere, a symlink pointing out) raises UnsafePathError.
    """

    def __init__(self, identifier: str, root: Path) -> None:
        self.identifier = identifier
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(identifier={self.identifier!r}, root={str(self.root)!r})"

    def _translate(self, filename: str) -> str:
        """Hook for filesystems that accept other spellings of their root (the mount path)."""
        return filename

    def relative(self, filename: str | os.PathLike[str]) -> str:
        """The filename as a POSIX path relative to the root; raise UnsafePathError if it escapes."""
        text = os.fspath(filename)
        if not text or "\x00" in text:
            raise UnsafePathError(f"invalid filename {text!r} for filesystem {self.identifier!r}")
        text = self._translate(text)
        if os.path.isabs(text) and _is_within(os.path.normpath(text), os.path.normpath(self.root)):
            # The root as configured may itself sit behind a symlink (e.g. /tmp): compare unresolved first.
            text = os.path.relpath(os.path.normpath(text), os.path.normpath(self.root))
        root = os.path.realpath(self.root)
        joined = os.path.normpath(os.path.join(root, text))
        if not _is_within(joined, root):
            raise UnsafePathError(
                f"{text!r} is outside the root {str(self.root)!r} of filesystem {self.identifier!r}"
            )
        # realpath follows symlinks in every existing component, including the last one.
        if not _is_within(os.path.realpath(joined), root):
            raise UnsafePathError(
                f"{text!r} resolves through a symlink to {os.path.realpath(joined)!r}, outside the root"
                f" {str(self.root)!r} of filesystem {self.identifier!r}"
            )
        relative = os.path.relpath(joined, root)
        if relative == ".":
            raise UnsafePathError(f"{text!r} names the root of filesystem {self.identifier!r}, not a file")
        return Path(relative).as_posix()

    def path(self, filename: str | os.PathLike[str]) -> Path:
        """The absolute path of a filename in this process; raise UnsafePathError if it escapes."""
        return Path(os.path.realpath(self.root)) / self.relative(filename)

    def exists(self, filename: str | os.PathLike[str]) -> bool:
        """Whether the file exists."""
        return self.path(filename).is_file()

    def read_with(self, filename: str | os.PathLike[str], load: Callable[[Path], object]) -> object:
        """Call ``load`` with the file's path (raise FileNotFoundError naming the file if it is absent)."""
        path = self.path(filename)
        if not path.is_file():
            raise FileNotFoundError(f"no file {filename!r} in filesystem {self.identifier!r} (at {path})")
        return load(path)

    def write_with(
        self, filename: str | os.PathLike[str], dump: Callable[[Path], None], *, create_dir: bool = True
    ) -> Path:
        """Write a file atomically: ``dump`` writes a temporary file beside the target, then it is renamed.

        Readers see the old file or the new one, never a partial one; if ``dump`` fails the target is
        untouched and the temporary file is removed.
        """
        path = self.path(filename)
        if create_dir:
            self.root.mkdir(parents=True, exist_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            # mkdir may have followed a symlink created in the meantime: check again before writing.
            path = self.path(filename)
        with _temporary_sibling(path) as temporary:
            dump(temporary)
            # mkstemp creates 0600; give the file the mode a plain open() would have had.
            os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else _NEW_FILE_MODE)
            _fsync_file(temporary)
            os.replace(temporary, path)
        _fsync_directory(path.parent)
        return path

    def delete(self, filename: str | os.PathLike[str]) -> None:
        """Remove the file if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self.path(filename).unlink()


class LocalFilesystem(Filesystem):
    """The ``local`` filesystem: files of this machine under ``$LUME_HOME/files``."""

    def __init__(self, root: Path, identifier: str = LOCAL_IDENTIFIER) -> None:
        super().__init__(identifier, root)


class MountedFilesystem(Filesystem):
    """A shared volume: users name files by ``mount_path`` (or the alias); they live at ``mount_alias``.

    As in LUME-services, ``mount_path`` is the volume's path where it comes from (the host, the
    PVC) and ``mount_alias`` where this process sees it; a filename under ``mount_path`` is rewritten
    to the alias.
    """

    def __init__(
        self,
        mount_path: str,
        mount_alias: str | None = None,
        identifier: str = MOUNTED_IDENTIFIER,
        mount_type: Literal["Directory", "DirectoryOrCreate"] = "DirectoryOrCreate",
    ) -> None:
        self.mount_path = os.path.normpath(mount_path)
        self.mount_alias = os.path.normpath(mount_alias or mount_path)
        super().__init__(identifier, Path(self.mount_alias))
        if mount_type == "DirectoryOrCreate":
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            variable = "LUME_MOUNTED_FILESYSTEM__MOUNT_" + ("ALIAS" if mount_alias else "PATH")
            raise ConfigurationError(
                f"{variable}: {self.mount_alias!r} is no directory (mount type Directory never creates it)",
                [variable],
            )

    def _translate(self, filename: str) -> str:
        if os.path.isabs(filename):
            normalized = os.path.normpath(filename)
            if _is_within(normalized, self.mount_path):
                return os.path.join(self.mount_alias, os.path.relpath(normalized, self.mount_path))
        return filename


_NEW_FILE_MODE = 0o644


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    # Same directory as the target, so that os.replace is a rename within one filesystem (atomic);
    # the target's suffix is kept last because some serializers pick the format from it.
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    # Makes the rename itself durable; some filesystems (e.g. some network mounts) refuse: not fatal.
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


__all__ = [
    "LOCAL_IDENTIFIER",
    "MOUNTED_IDENTIFIER",
    "Filesystem",
    "LocalFilesystem",
    "MountedFilesystem",
]
