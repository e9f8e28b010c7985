"""Image references: every way a path can be bad is refused with a message that names it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from raddiff_kit.errors import InvalidArgument, NotFound
from raddiff_kit.images import ImageStore, file_uri, sha256_file


@pytest.fixture()
def store(tmp_path: Path) -> ImageStore:
    root = tmp_path / "data"
    root.mkdir()
    Image.new("L", (32, 24), 128).save(root / "ok.png")
    return ImageStore([root], tmp_path / "scratch")


def test_loads_an_image_under_the_root(store: ImageStore) -> None:
    image = store.load(file_uri(store.roots[0] / "ok.png"))
    assert image.size == (32, 24) and image.mode == "RGB"


def test_sha256_is_checked(store: ImageStore) -> None:
    path = store.roots[0] / "ok.png"
    store.load(file_uri(path), sha256_file(path))
    with pytest.raises(InvalidArgument, match="sha256"):
        store.load(file_uri(path), "0" * 64)


def test_missing_file_is_not_found(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        store.load(file_uri(store.roots[0] / "nope.png"))


def test_dotdot_out_of_root_is_refused(store: ImageStore, tmp_path: Path) -> None:
    Image.new("L", (8, 8)).save(tmp_path / "secret.png")
    uri = "file://" + str(store.roots[0]) + "/../secret.png"
    with pytest.raises(InvalidArgument, match="outside the data roots"):
        store.load(uri)


def test_symlink_pointing_out_is_refused(store: ImageStore, tmp_path: Path) -> None:
    Image.new("L", (8, 8)).save(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", store.roots[0] / "link.png")
    with pytest.raises(InvalidArgument, match="outside the data roots"):
        store.load(file_uri(store.roots[0]) + "/link.png")


def test_not_an_image_and_truncated(store: ImageStore) -> None:
    text = store.roots[0] / "notes.png"
    text.write_text("FINDINGS: none")
    with pytest.raises(InvalidArgument, match="not an image"):
        store.load(file_uri(text))
    data = (store.roots[0] / "ok.png").read_bytes()
    Image.effect_noise((256, 256), 40).save(store.roots[0] / "big.png")
    big = (store.roots[0] / "big.png").read_bytes()
    (store.roots[0] / "cut.png").write_bytes(big[: len(big) // 2])
    with pytest.raises(InvalidArgument, match="truncated"):
        store.load(file_uri(store.roots[0] / "cut.png"))
    assert data  # the intact file still loads
    store.load(file_uri(store.roots[0] / "ok.png"))


@pytest.mark.parametrize(
    "uri, message",
    [
        ("", "empty"),
        ("http://example.org/a.png", "unsupported scheme"),
        ("file://otherhost/a.png", "remote host"),
        ("scratch://notahash.png", "scratch://<sha256>.png"),
        ("relative/path.png", "unsupported scheme"),
    ],
)
def test_malformed_uris(store: ImageStore, uri: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        store.resolve(uri)


def test_scratch_store_is_content_addressed(store: ImageStore) -> None:
    image = Image.new("RGB", (10, 10), (1, 2, 3))
    uri, digest = store.put_png(image)
    assert uri == f"scratch://{digest}.png"
    assert store.put_png(image) == (uri, digest)
    assert store.load(uri, digest).getpixel((0, 0)) == (1, 2, 3)
    assert not list(store.scratch_dir.glob("*.part"))
