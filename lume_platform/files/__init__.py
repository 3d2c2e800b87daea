"""Files in the ``local`` and ``mounted`` filesystems, in the LUME-services representation."""

from lume_platform.files.filesystems import (
    LOCAL_IDENTIFIER,
    MOUNTED_IDENTIFIER,
    Filesystem,
    LocalFilesystem,
    MountedFilesystem,
)
from lume_platform.files.types import (
    File,
    FileRepresentation,
    HDF5File,
    ImageFile,
    JSONFile,
    NumpyFile,
    TextFile,
    YAMLFile,
    file_from_representation,
    file_type_named,
    file_types,
    is_file_representation,
)

__all__ = [
    "LOCAL_IDENTIFIER",
    "MOUNTED_IDENTIFIER",
    "File",
    "FileRepresentation",
    "Filesystem",
    "HDF5File",
    "ImageFile",
    "JSONFile",
    "LocalFilesystem",
    "MountedFilesystem",
    "NumpyFile",
    "TextFile",
    "YAMLFile",
    "file_from_representation",
    "file_type_named",
    "file_types",
    "is_file_representation",
]
