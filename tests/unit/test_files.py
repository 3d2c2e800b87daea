"""Every file type round-trips on ``local`` and ``mounted``; path escapes are refused and write nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lume_platform.errors import ConfigurationError, FilesError, UnsafePathError
from lume_platform.files import (
    File,
    Filesystem,
    HDF5File,
    ImageFile,
    JSONFile,
    LocalFilesystem,
    MountedFilesystem,
    NumpyFile,
    TextFile,
    YAMLFile,
    file_from_representation,
    file_types,
)


def image() -> Image.Image:
    picture = Image.new("RGB", (4, 3))
    picture.putdata([(i * 20, 255 - i * 20, i) for i in range(12)])
    return picture


def same_image(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


def same_nested(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_nested(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


# (file type, filename, object, equality)
CASES: list[tuple[type[File], str, Any, Callable[[Any, Any], bool]]] = [
    (TextFile, "out/text.txt", "héllo\nwörld", lambda a, b: a == b),
    (JSONFile, "out/data.json", {"x": [1, 2.5, None], "ok": True, "name": "é"}, lambda a, b: a == b),
    (YAMLFile, "out/conf.yaml", {"beam": {"energy": 1.5, "tags": ["a", "b"]}}, lambda a, b: a == b),
    (NumpyFile, "out/array.npy", np.arange(12, dtype=np.float32).reshape(3, 4), same_nested),
    (
        HDF5File,
        "out/data.h5",
        {
            "x": np.linspace(0, 1, 5),
            "meta": {"n": 5, "label": "scan", "ids": np.array([1, 2], dtype=np.int64)},
        },
        same_nested,
    ),
    (ImageFile, "out/picture.png", image(), same_image),
    (ImageFile, "out/picture.tiff", image(), same_image),
]


@pytest.fixture(params=["local", "mounted"])
def filesystem(request: pytest.FixtureRequest, tmp_path: Path) -> Filesystem:
    if request.param == "local":
        return LocalFilesystem(tmp_path / "local-root")
    return MountedFilesystem(mount_path="/srv/lume-data", mount_alias=str(tmp_path / "mounted-root"))


@pytest.mark.parametrize(
    ("file_type", "filename", "obj", "equal"), CASES, ids=lambda c: getattr(c, "__name__", None)
)
def test_round_trip(
    filesystem: Filesystem, file_type: type[File], filename: str, obj: Any, equal: Callable[[Any, Any], bool]
) -> None:
    file = file_type(filename=filename, filesystem_identifier=filesystem.identifier)
    written = file.write(obj, filesystem)
    assert written == Path(os.path.realpath(filesystem.root)) / filename
    assert written.is_file()
    again = file_from_representation(file.representation())
    assert again == file
    assert equal(obj, again.read(filesystem))
    # Nothing but the file itself is left in the directory (no temporary files).
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]


def test_every_file_type_is_covered() -> None:
    assert {case[0] for case in CASES} == set(file_types().values())


def test_representation_is_the_lume_services_document() -> None:
    file = TextFile(filename="a/b.txt", filesystem_identifier="mounted")
    assert file.representation() == {
        "filename": "a/b.txt",
        "file_type": "TextFile",
        "filesystem_identifier": "mounted",
    }
    legacy = {
        "filename": "a/b.txt",
        "file_type_string": "lume_services.files.file:TextFile",
        "filesystem_identifier": "mounted",
    }
    assert file_from_representation(legacy) == file


@pytest.mark.parametrize(
    ("representation", "fault"),
    [
        ({"filename": "a", "file_type": "ExcelFile"}, "ExcelFile"),
        ({"file_type": "TextFile"}, "filename"),
        ({"filename": "a"}, "file_type"),
        ({"filename": "a", "file_type": "TextFile", "colour": "red"}, "colour"),
        ("a.txt", "mapping"),
    ],
)
def test_bad_representations_are_named(representation: Any, fault: str) -> None:
    with pytest.raises(FilesError, match=fault):
        file_from_representation(representation)


def test_mounted_filesystem_maps_the_mount_path_to_the_alias(tmp_path: Path) -> None:
    mounted = MountedFilesystem(mount_path="/srv/lume-data", mount_alias=str(tmp_path / "alias"))
    TextFile(filename="/srv/lume-data/runs/1.txt", filesystem_identifier="mounted").write("one", mounted)
    assert (tmp_path / "alias" / "runs" / "1.txt").read_text() == "one"
    # The alias spelling and a relative name reach the same file.
    assert (
        TextFile(filename=str(tmp_path / "alias/runs/1.txt"), filesystem_identifier="mounted").read(mounted)
        == "one"
    )
    assert TextFile(filename="runs/1.txt", filesystem_identifier="mounted").read(mounted) == "one"
    assert mounted.relative("/srv/lume-data/runs/1.txt") == "runs/1.txt"


def test_mount_type_directory_requires_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        MountedFilesystem(mount_path="/srv/x", mount_alias=str(tmp_path / "absent"), mount_type="Directory")
    assert caught.value.variables == ("LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS",)
    created = MountedFilesystem(mount_path=str(tmp_path / "made"), mount_type="DirectoryOrCreate")
    assert created.root.is_dir()


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[LocalFilesystem, Path]:
    """A filesystem whose root holds a symlink to a directory outside it and one to a file outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep me")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link-dir").symlink_to(outside, target_is_directory=True)
    (root / "link-file").symlink_to(outside / "secret.txt")
    return LocalFilesystem(root), outside


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "filename",
    ["../x", "a/../../x", "/etc/passwd", "link-dir/new.txt", "link-file", "link-dir/secret.txt", "", "."],
)
def test_escapes_are_refused_and_nothing_is_written(
    guarded: tuple[LocalFilesystem, Path], filename: str
) -> None:
    filesystem, outside = guarded
    before_outside, before_root = snapshot(outside), sorted(os.listdir(filesystem.root))
    with pytest.raises(UnsafePathError):
        filesystem.write_with(filename, lambda path: path.write_text("overwritten"))
    if filename:
        with pytest.raises(UnsafePathError):
            TextFile(filename=filename).write("overwritten", filesystem)
    assert snapshot(outside) == before_outside
    assert sorted(os.listdir(filesystem.root)) == before_root
    assert not (filesystem.root.parent / "x").exists()


def test_escapes_are_refused_on_read_too(guarded: tuple[LocalFilesystem, Path]) -> None:
    filesystem, _ = guarded
    with pytest.raises(UnsafePathError, match="symlink"):
        TextFile(filename="link-file").read(filesystem)
    with pytest.raises(UnsafePathError, match="outside"):
        TextFile(filename="/etc/passwd").read(filesystem)


def test_mounted_filesystem_refuses_paths_outside_both_spellings(tmp_path: Path) -> None:
    mounted = MountedFilesystem(mount_path="/srv/lume-data", mount_alias=str(tmp_path / "alias"))
    for filename in ("/srv/other/x.txt", "/srv/lume-data/../x.txt", "../x.txt"):
        with pytest.raises(UnsafePathError):
            mounted.relative(filename)


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    filesystem = LocalFilesystem(tmp_path)
    file = JSONFile(filename="state.json")
    file.write({"version": 1}, filesystem)
    with pytest.raises(FilesError, match="JSON"):
        file.write({"bad": object()}, filesystem)
    assert file.read(filesystem) == {"version": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_an_existing_file_is_replaced_not_modified_in_place(tmp_path: Path) -> None:
    filesystem = LocalFilesystem(tmp_path)
    file = TextFile(filename="t.txt")
    first = file.write("first", filesystem)
    inode = first.stat().st_ino
    file.write("second", filesystem)
    assert file.read(filesystem) == "second"
    assert first.stat().st_ino != inode
    assert first.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("file_type", "obj"),
    [
        (TextFile, b"bytes"),
        (NumpyFile, np.array([object()])),
        (HDF5File, [1, 2]),
        (ImageFile, "not an image"),
    ],
)
def test_wrong_objects_are_refused(tmp_path: Path, file_type: type[File], obj: Any) -> None:
    filesystem = LocalFilesystem(tmp_path)
    with pytest.raises(FilesError, match=file_type.__name__):
        file_type(filename="f").write(obj, filesystem)
    assert os.listdir(tmp_path) == []


def test_serializer_failures_name_the_file_and_keep_the_old_one(tmp_path: Path) -> None:
    filesystem = LocalFilesystem(tmp_path)
    file = ImageFile(filename="photo.jpg")
    file.write(image(), filesystem)
    with pytest.raises(FilesError, match=r"ImageFile cannot write 'photo\.jpg'"):
        file.write(Image.new("RGBA", (2, 2)), filesystem)  # JPEG has no alpha channel
    assert file.read(filesystem).size == (4, 3)
    assert os.listdir(tmp_path) == ["photo.jpg"]


def test_a_file_of_another_filesystem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FilesError, match="mounted"):
        TextFile(filename="a.txt", filesystem_identifier="mounted").write("x", LocalFilesystem(tmp_path))


def test_reading_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.txt"):
        TextFile(filename="absent.txt").read(LocalFilesystem(tmp_path))
