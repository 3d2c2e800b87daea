"""``configure_services()``: this process's model registry, results store and filesystems, from settings."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from lume_platform.errors import UnknownFilesystemError
from lume_platform.files import Filesystem, LocalFilesystem, MountedFilesystem
from lume_platform.settings import LumeSettings, load_settings

if TYPE_CHECKING:
    from lume_platform.registry import ModelRegistry
    from lume_platform.results import ResultsStore


class Services:
    """The services a flow uses, built from one LumeSettings.

    The databases are connected on first use, so a flow that only writes files never needs them
    (and a configuration error in one does not stop the other).
    """

    def __init__(self, settings: LumeSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        filesystems: list[Filesystem] = [LocalFilesystem(settings.local_root)]
        mounted = settings.mounted_filesystem
        if mounted is not None:
            assert mounted.mount_path is not None  # load_settings() refuses a mounted group without it
            filesystems.append(
                MountedFilesystem(
                    mount_path=mounted.mount_path,
                    mount_alias=mounted.mount_alias,
                    identifier=mounted.identifier,
                    mount_type=mounted.mount_type,
                )
            )
        self.filesystems: dict[str, Filesystem] = {fs.identifier: fs for fs in filesystems}

    def __repr__(self) -> str:
        return f"Services(home={str(self.settings.data_dir)!r}, filesystems={sorted(self.filesystems)})"

    def filesystem(self, identifier: str) -> Filesystem:
        """The filesystem called ``identifier`` (``local``, or the mounted one's identifier)."""
        try:
            return self.filesystems[identifier]
        except KeyError:
            hint = ""
            if identifier == "mounted" or self.settings.mounted_filesystem is None:
                hint = " (a mounted filesystem needs LUME_MOUNTED_FILESYSTEM__MOUNT_PATH)"
            raise UnknownFilesystemError(
                f"no filesystem {identifier!r}; configured: {', '.join(sorted(self.filesystems))}{hint}"
            ) from None

    @cached_property
    def model_registry(self) -> ModelRegistry:
        """The model registry (MySQL, or the embedded SQLite file), connected on first use."""
        from lume_platform.registry import ModelRegistry

        with self._lock:
            if self.settings.model_db is None:
                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            return ModelRegistry(self.settings.model_db_url)

    @cached_property
    def results_store(self) -> ResultsStore:
        """The results store (MongoDB, or the embedded SQLite document store), connected on first use."""
        from lume_platform.results import open_results_store

        with self._lock:
            if self.settings.results_db is None:
                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            return open_results_store(self.settings.results_db_url, self.settings.results_db_database)

    def close(self) -> None:
        """Close the connections opened so far (the next use of a closed Services is an error)."""
        for name in ("results_store", "model_registry"):
            service = self.__dict__.pop(name, None)
            close = getattr(service, "close", None) or getattr(service, "dispose", None)
            if close is not None:
                close()


_cache_lock = threading.Lock()
_cached: tuple[int, Services] | None = None


def configure_services(settings: LumeSettings | None = None) -> Services:
    """The Services of this process, built from the environment once and then reused.

    Parameters
    ----------
    settings
        Use these settings instead of the environment; replaces the cached Services.

    Raises
    ------
    ConfigurationError
        Naming every ``LUME_*`` variable that is missing or malformed.
    """
    global _cached
    with _cache_lock:
        # A forked child (e.g. a process worker's run) must not share the parent's connections.
        if settings is None and _cached is not None and _cached[0] == os.getpid():
            return _cached[1]
        services = Services(settings if settings is not None else load_settings())
        _cached = (os.getpid(), services)
        return services


def reset_services() -> None:
    """Forget (and close) the cached Services, so that the next call reads the environment again."""
    global _cached
    with _cache_lock:
        if _cached is not None and _cached[0] == os.getpid():
            _cached[1].close()
        _cached = None


__all__ = ["Services", "configure_services", "reset_services"]
