"""File types (text, JSON, YAML, HDF5, image, numpy): the LUME JSON representation and safe serializers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from lume_platform.errors import FilesError
from lume_platform.files.filesystems import LOCAL_IDENTIFIER

if TYPE_CHECKING:
    from lume_platform.files.filesystems import Filesystem

# The JSON representation passed between tasks and flows: {filename, file_type, filesystem_identifier}.
FileRepresentation = dict[str, str]

_FILE_TYPES: dict[str, type[File]] = {}


class File(BaseModel):
    """A named file in a filesystem, and how to turn a Python object into its bytes and back.

    Subclasses implement ``dump``/``load``; writing goes through the filesystem, which checks the
    filename and replaces the file atomically.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str
    filesystem_identifier: str = LOCAL_IDENTIFIER

    file_type: ClassVar[str] = "File"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.file_type = cls.__name__
        _FILE_TYPES[cls.__name__] = cls

    @field_validator("filename", "filesystem_identifier")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    # -- serializers -------------------------------------------------------------------------------
    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        """Write ``obj`` to ``path`` (a fresh temporary file)."""
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path) -> Any:
        """Read the object stored at ``path``."""
        raise NotImplementedError

    # -- I/O ---------------------------------------------------------------------------------------
    def write(self, obj: Any, filesystem: Filesystem | None = None) -> Path:
        """Store ``obj`` in the file (atomically); returns the path written in this process."""
        filesystem = self._filesystem(filesystem)
        return filesystem.write_with(self.filename, lambda path: self._dump_checked(obj, path))

    def _dump_checked(self, obj: Any, path: Path) -> None:
        try:
            self.dump(obj, path)
        except FilesError:
            raise
        except Exception as exc:
            # e.g. Pillow refusing RGBA as JPEG: name the file and type instead of a bare library error.
            raise FilesError(f"{self.file_type} cannot write {self.filename!r}: {exc}") from exc

    def read(self, filesystem: Filesystem | None = None) -> Any:
        """Load the object stored in the file."""
        return self._filesystem(filesystem).read_with(self.filename, self.load)

    def path(self, filesystem: Filesystem | None = None) -> Path:
        """Where the file lives in this process."""
        return self._filesystem(filesystem).path(self.filename)

    def _filesystem(self, filesystem: Filesystem | None) -> Filesystem:
        if filesystem is None:
            from lume_platform.services import configure_services  # services imports this module

            return configure_services().filesystem(self.filesystem_identifier)
        if filesystem.identifier != self.filesystem_identifier:
            raise FilesError(
                f"{self.file_type} {self.filename!r} belongs to filesystem {self.filesystem_identifier!r},"
                f" not {filesystem.identifier!r}"
            )
        return filesystem

    # -- representation ----------------------------------------------------------------------------
    def representation(self) -> FileRepresentation:
        """The small JSON document that names this file (passable between tasks and flows)."""
        return {
            "filename": self.filename,
            "file_type": self.file_type,
            "filesystem_identifier": self.filesystem_identifier,
        }


def file_types() -> dict[str, type[File]]:
    """Every known file type by name (subclasses of File register themselves)."""
    return dict(_FILE_TYPES)


def file_type_named(name: str | type[File]) -> type[File]:
    """The file type called ``name`` (``TextFile``; LUME-services' ``module:TextFile`` is accepted too)."""
    if isinstance(name, type) and issubclass(name, File):
        return name
    short = str(name).rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    try:
        return _FILE_TYPES[short]
    except KeyError:
        known = ", ".join(sorted(_FILE_TYPES))
        raise FilesError(f"unknown file type {name!r}; known types: {known}") from None


def file_from_representation(representation: Mapping[str, Any] | File) -> File:
    """The File named by a representation (as returned by ``save_file``)."""
    if isinstance(representation, File):
        return representation
    if not isinstance(representation, Mapping):
        raise FilesError(f"a file representation must be a mapping, got {type(representation).__name__}")
    data = dict(representation)
    # LUME-services called the type field file_type_string.
    type_name = data.pop("file_type", None) or data.pop("file_type_string", None)
    missing = [key for key in ("filename",) if key not in data] + ([] if type_name else ["file_type"])
    if missing:
        raise FilesError(f"file representation {representation!r} lacks {', '.join(missing)}")
    unknown = sorted(set(data) - {"filename", "filesystem_identifier"})
    if unknown:
        raise FilesError(f"file representation has unknown keys: {', '.join(unknown)}")
    return file_type_named(type_name).model_validate(data)


def is_file_representation(value: Any) -> bool:
    """Whether ``value`` looks like a file representation (has a filename and a file type)."""
    if not isinstance(value, Mapping) or "filename" not in value:
        return False
    return "file_type" in value or "file_type_string" in value


def _require(obj: Any, kind: type | tuple[type, ...], file_type: str, what: str) -> None:
    if not isinstance(obj, kind):
        raise FilesError(f"{file_type} stores {what}, got {type(obj).__name__}")


class TextFile(File):
    """UTF-8 text."""

    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        _require(obj, str, cls.file_type, "a str")
        path.write_text(obj, encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> str:
        return path.read_text(encoding="utf-8")


class JSONFile(File):
    """Any JSON-compatible value."""

    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        try:
            text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise FilesError(f"{cls.file_type} cannot store this value as JSON: {exc}") from exc
        path.write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))


class YAMLFile(File):
    """Plain YAML data (safe_dump / safe_load: no Python objects)."""

    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        try:
            text = yaml.safe_dump(obj, sort_keys=False)
        except yaml.YAMLError as exc:
            raise FilesError(f"{cls.file_type} cannot store this value as YAML: {exc}") from exc
        path.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Any:
        return yaml.safe_load(path.read_text(encoding="utf-8"))


class NumpyFile(File):
    """One numpy array in ``.npy`` format (never pickled: object arrays are refused)."""

    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        array = np.asarray(obj)
        if array.dtype.hasobject:
            raise FilesError(f"{cls.file_type} refuses object arrays (they would need pickle)")
        with open(path, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> np.ndarray:
        with open(path, "rb") as handle:
            return np.load(handle, allow_pickle=False)


class HDF5File(File):
    """A nested mapping of arrays, numbers and strings as HDF5 groups and datasets (h5py)."""

    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        import h5py

        _require(obj, Mapping, cls.file_type, "a mapping of names to arrays, numbers, strings or mappings")
        with h5py.File(path, "w") as handle:
            _write_group(handle, obj, cls.file_type)

    @classmethod
    def load(cls, path: Path) -> dict[str, Any]:
        import h5py

        with h5py.File(path, "r") as handle:
            return _read_group(handle)


def _write_group(group: Any, mapping: Mapping[str, Any], file_type: str) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise FilesError(f"{file_type} keys must be non-empty strings without '/', got {key!r}")
        if isinstance(value, Mapping):
            _write_group(group.create_group(key), value, file_type)
        elif isinstance(value, str):
            group.create_dataset(key, data=value)
        else:
            array = np.asarray(value)
            if array.dtype.hasobject or array.dtype.kind in "US":
                raise FilesError(f"{file_type} cannot store {key!r} of type {type(value).__name__}")
            group.create_dataset(key, data=array)


def _read_group(group: Any) -> dict[str, Any]:
    import h5py

    result: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            result[key] = _read_group(item)
        elif h5py.check_string_dtype(item.dtype) is not None:
            result[key] = item.asstr()[()]
        elif item.shape == ():
            result[key] = item[()].item()
        else:
            result[key] = item[()]
    return result


class ImageFile(File):
    """A Pillow image; the format follows the filename's extension (PNG when it has none we know)."""

    @classmethod
    def dump(cls, obj: Any, path: Path) -> None:
        from PIL import Image

        _require(obj, Image.Image, cls.file_type, "a PIL.Image.Image")
        # The temporary file ends with the target's suffix (see Filesystem.write_with).
        image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
        obj.save(path, format=image_format)

    @classmethod
    def load(cls, path: Path) -> Any:
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            return image.copy()


__all__ = [
    "File",
    "FileRepresentation",
    "HDF5File",
    "ImageFile",
    "JSONFile",
    "NumpyFile",
    "TextFile",
    "YAMLFile",
    "file_from_representation",
    "file_type_named",
    "file_types",
    "is_file_representation",
]
