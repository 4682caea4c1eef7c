"""Data loaders of the QAT: digits (default), CIFAR-10 python batches, ImageNet-style folders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from wrapper.errors import DataError
from wrapper.qat.data import DataSpec, load_data


def _write_cifar(root: Path, per_batch: int = 3) -> None:
    """A real CIFAR-10 'python version' folder in miniature (same pickle layout, fewer rows)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(x) for x in rng.integers(0, 10, per_batch)]}
        with (root / name).open("wb") as handle:
            pickle.dump(batch, handle)
    with (root / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, handle)


def _write_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog")) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(2):
                pixels = np.full((12, 20, 3), 40 * index + 10 * k, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img{k}.png")


def test_digits_split_is_fixed_by_seed_and_resized_to_three_channels() -> None:
    first, again = load_data(DataSpec(seed=3)), load_data(DataSpec(seed=3))
    other = load_data(DataSpec(seed=4))
    assert first.num_classes == 10
    assert len(first.train) + len(first.val) + len(first.test) == 1797
    assert len(first.val) == len(first.test) == round(1797 * 0.2)
    # The three splits are disjoint: no image serves two purposes.
    rows = [tuple(t.flatten().tolist()) for split in (first.train, first.val, first.test)
            for t in split.images]
    assert len(set(rows)) == len({tuple(t.flatten().tolist()) for t in first.train.images}) \
        + len({tuple(t.flatten().tolist()) for t in first.val.images}) \
        + len({tuple(t.flatten().tolist()) for t in first.test.images})
    image, label = first.train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= label < 10
    assert torch.equal(first.val.labels, again.val.labels)
    assert torch.equal(first.test.labels, again.test.labels)
    assert not torch.equal(first.val.labels, other.val.labels)
    assert image.min() < 0 < image.max()  # normalized: the first layer's input is signed


def test_digits_resolution_and_class_limit_are_honoured() -> None:
    bundle = load_data(DataSpec(resolution=16, max_classes=3))
    assert bundle.num_classes == 3 and bundle.classes == ("0", "1", "2")
    assert bundle.train[0][0].shape == (3, 16, 16)
    assert int(bundle.train.labels.max()) == 2


def test_cifar10_batches_folder_loads(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar")
    bundle = load_data(DataSpec(kind="cifar10", root=str(tmp_path / "cifar")))
    # validation is carved from the training batches; the official test batch is the test split
    assert (len(bundle.train), len(bundle.val), len(bundle.test), bundle.num_classes) == \
        (12, 3, 3, 10)
    assert bundle.classes[0] == "c0"
    assert bundle.val[0][0].shape == (3, 32, 32)


def test_imagenet_folders_load_with_resize_and_centre_crop(tmp_path: Path) -> None:
    _write_image_folder(tmp_path / "imgs")
    bundle = load_data(DataSpec(kind="imagenet", root=str(tmp_path / "imgs"), resolution=16))
    assert bundle.classes == ("cat", "dog")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (3, 1, 4)
    image, label = bundle.test[2]
    assert image.shape == (3, 16, 16) and label == 1


def _one_line_error(spec: DataSpec) -> str:
    with pytest.raises(DataError) as info:
        load_data(spec)
    text = str(info.value)
    assert "\n" not in text and "fix:" in text
    return text


def test_missing_folders_give_one_line_errors(tmp_path: Path) -> None:
    assert "does not exist" in _one_line_error(DataSpec(kind="cifar10", root=str(tmp_path / "x")))
    assert "no data folder" in _one_line_error(DataSpec(kind="imagenet"))
    (tmp_path / "only_train" / "train" / "a").mkdir(parents=True)
    (tmp_path / "only_train" / "train" / "b").mkdir(parents=True)
    assert "class folder has no images" in _one_line_error(
        DataSpec(kind="imagenet", root=str(tmp_path / "only_train")))
    assert "unknown data set" in _one_line_error(DataSpec(kind="mnist"))


def test_malformed_folders_give_one_line_errors(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar")
    (tmp_path / "cifar" / "data_batch_3").write_bytes(b"not a pickle")
    assert "not a CIFAR-10 python batch" in _one_line_error(
        DataSpec(kind="cifar10", root=str(tmp_path / "cifar")))
    _write_cifar(tmp_path / "cifar2")
    (tmp_path / "cifar2" / "test_batch").unlink()
    assert "'test_batch' is missing" in _one_line_error(
        DataSpec(kind="cifar10", root=str(tmp_path / "cifar2")))
    _write_image_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "val" / "cow").mkdir()
    assert "train/ lacks" in _one_line_error(DataSpec(kind="imagenet", root=str(tmp_path / "imgs")))
    (tmp_path / "flat" / "train").mkdir(parents=True)
    assert "class subfolders" in _one_line_error(DataSpec(kind="imagenet",
                                                          root=str(tmp_path / "flat")))
