"""Image classification data without torchvision: scikit-learn's digits, CIFAR-10, ImageNet folders.

Every source ends up as the same thing: uint8 images (C, H, W) and integer labels, turned into
normalized float tensors at the requested resolution by one dataset class. So the trainer never
knows where data came from, and the digits set (it ships with scikit-learn, nothing to download)
exercises exactly the code path that real data takes.

Normalized images are signed (mean subtracted); the QAT models quantize the first layer's input
with a signed quantizer for that reason (see ``wrapper.qat.models``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DataError, unknown_name_fix
from .settings import DATA_KINDS, DataSpec

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"})
# Channel statistics of the public data sets (used so pretrained-style normalization matches).
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch"
_IMAGENET_CROP = 0.875  # resize the short side to res / 0.875, then centre-crop res (standard)


@dataclass(frozen=True)
class DataBundle:
    """Loaded training, validation and test sets plus what a model needs to know about them.

    ``test`` is used in no decision (training or selection), only reported; a hand-made bundle
    (e.g. a subset for a quick check) may leave it out.
    """

    train: Dataset
    val: Dataset
    num_classes: int
    resolution: int
    classes: tuple[str, ...]
    test: Dataset | None = None


class ImageTensorDataset(Dataset):
    """Images held in memory as uint8 (N, C, H, W), served normalized at a fixed resolution.

    Kept as uint8 so CIFAR-10 at 224x224 does not need 30 GB; the resize happens per sample.
    """

    def __init__(self, images: Tensor, labels: Tensor, resolution: int,
                 mean: Sequence[float], std: Sequence[float], flip: bool) -> None:
        self.images = images
        self.labels = labels
        self.resolution = resolution
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.flip = flip

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return _prepare(self.images[index], self.resolution, self.mean, self.std,
                        self.flip), int(self.labels[index])


class ImageFolderDataset(Dataset):
    """Image files decoded lazily with PIL (ImageNet does not fit in memory)."""

    def __init__(self, files: Sequence[tuple[Path, int]], resolution: int, flip: bool) -> None:
        self.files = list(files)
        self.resolution = resolution
        self.mean = torch.tensor(_IMAGENET_MEAN).view(-1, 1, 1)
        self.std = torch.tensor(_IMAGENET_STD).view(-1, 1, 1)
        self.flip = flip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.files[index]
        return _prepare(_decode_image(path, self.resolution), self.resolution, self.mean,
                        self.std, self.flip), label


def _prepare(image: Tensor, resolution: int, mean: Tensor, std: Tensor, flip: bool) -> Tensor:
    """uint8 (C, H, W) -> normalized float (C, res, res), randomly mirrored for training."""
    pixels = image.float().div_(255.0)
    if pixels.shape[-2:] != (resolution, resolution):
        pixels = F.interpolate(pixels.unsqueeze(0), size=(resolution, resolution),
                               mode="bilinear", align_corners=False).squeeze(0)
    if flip and bool(torch.rand(()) < 0.5):
        pixels = pixels.flip(-1)
    return (pixels - mean) / std


def _decode_image(path: Path, resolution: int) -> Tensor:
    """Decode, resize the short side and centre-crop one image file to uint8 (3, res, res)."""
    image_module = _pil_image()
    try:
        with image_module.open(path) as handle:
            image = handle.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot decode image ({exc})", file=str(path), field="image",
                        fix="delete or replace the damaged file") from None
    short = max(resolution, round(resolution / _IMAGENET_CROP))
    width, height = image.size
    scale = short / min(width, height)
    image = image.resize((max(short, round(width * scale)), max(short, round(height * scale))),
                         image_module.BILINEAR)
    width, height = image.size
    left, top = (width - resolution) // 2, (height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def _pil_image():  # type: ignore[no-untyped-def]
    """PIL's Image module, imported only for image folders (digits and CIFAR do not need it)."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("image folders need Pillow, which is not installed", field="data.kind",
                        fix="install the 'pillow' package or use the digits/cifar10 data") from None
    return Image


def load_data(spec: DataSpec) -> DataBundle:
    """Load the data set a spec names; raises DataError with the folder and fix when it is bad."""
    if spec.kind not in _LOADERS:
        raise DataError(f"unknown data set '{spec.kind}'", field="data.kind",
                        fix=unknown_name_fix(spec.kind, DATA_KINDS, "data sets"))
    if isinstance(spec.resolution, bool) or not isinstance(spec.resolution, int) \
            or spec.resolution < 8:
        raise DataError(f"resolution {spec.resolution!r} is too small", field="data.resolution",
                        fix="use an integer of at least 8, e.g. 32 or 224")
    if spec.max_classes is not None and spec.max_classes < 2:
        raise DataError(f"max_classes {spec.max_classes} leaves fewer than 2 classes",
                        field="data.max_classes", fix="use at least 2, or leave it unset")
    return _LOADERS[spec.kind](spec)


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:
        raise DataError(f"{name} {value} is not between 0 and 1", field=f"data.{name}",
                        fix="use e.g. 0.2")


def _held_out(count: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(held-out, kept) indices of a seeded random split: ``fraction`` of ``count`` held out."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    n_out = max(1, round(count * fraction))
    return order[:n_out], order[n_out:]


def _load_digits(spec: DataSpec) -> DataBundle:
    """scikit-learn's 8x8 digits (1797 images, 10 classes): grey levels 0..16 as 3-channel uint8;
    test and validation images are drawn first (each a share of all images), the rest trains."""
    _check_fraction(spec.val_fraction, "val_fraction")
    _check_fraction(spec.test_fraction, "test_fraction")
    if spec.val_fraction + spec.test_fraction >= 0.95:
        raise DataError(f"val_fraction + test_fraction = "
                        f"{spec.val_fraction + spec.test_fraction:g} leaves almost nothing to "
                        "train on", field="data.test_fraction", fix="keep the sum below 0.95")
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = torch.from_numpy(grey).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    images, labels, classes = _keep_classes(images, labels, [str(c) for c in range(10)],
                                            spec.max_classes)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(spec.seed))
    n_test = max(1, round(len(labels) * spec.test_fraction))
    n_val = max(1, round(len(labels) * spec.val_fraction))
    test_idx, val_idx, train_idx = order[:n_test], order[n_test:n_test + n_val], \
        order[n_test + n_val:]
    mean = float(images[train_idx].float().mean() / 255.0)
    std = float(images[train_idx].float().std() / 255.0)
    stats = ((mean,) * 3, (std,) * 3)

    def split(index: Tensor) -> ImageTensorDataset:  # mirrored digits are different symbols
        return ImageTensorDataset(images[index], labels[index], spec.resolution, *stats,
                                  flip=False)

    return DataBundle(train=split(train_idx), val=split(val_idx), test=split(test_idx),
                      num_classes=len(classes), resolution=spec.resolution,
                      classes=tuple(classes))


def _keep_classes(images: Tensor, labels: Tensor, classes: list[str],
                  max_classes: int | None) -> tuple[Tensor, Tensor, list[str]]:
    """Drop samples of classes beyond the first ``max_classes``."""
    if max_classes is None or max_classes >= len(classes):
        return images, labels, classes
    keep = labels < max_classes
    return images[keep], labels[keep], classes[:max_classes]


def _load_cifar10(spec: DataSpec) -> DataBundle:
    """The CIFAR-10 'python version' folder: data_batch_1..5 for training and validation (a
    seeded ``val_fraction`` of them), test_batch for test."""
    root = _existing_dir(spec.root, "the CIFAR-10 python batches folder (cifar-10-batches-py)")
    _check_fraction(spec.val_fraction, "val_fraction")
    train_images, train_labels = _read_cifar_batches(root, _CIFAR_TRAIN_FILES)
    test_images, test_labels = _read_cifar_batches(root, (_CIFAR_TEST_FILE,))
    classes = _cifar_class_names(root)
    train_images, train_labels, kept = _keep_classes(train_images, train_labels, classes,
                                                     spec.max_classes)
    test_images, test_labels, _ = _keep_classes(test_images, test_labels, classes,
                                                spec.max_classes)
    val_idx, train_idx = _held_out(len(train_labels), spec.val_fraction, spec.seed)

    def split(images: Tensor, labels: Tensor, flip: bool) -> ImageTensorDataset:
        return ImageTensorDataset(images, labels, spec.resolution, _CIFAR_MEAN, _CIFAR_STD,
                                  flip=flip)

    return DataBundle(
        train=split(train_images[train_idx], train_labels[train_idx], flip=True),
        val=split(train_images[val_idx], train_labels[val_idx], flip=False),
        test=split(test_images, test_labels, flip=False),
        num_classes=len(kept), resolution=spec.resolution, classes=tuple(kept))


def _read_cifar_batches(root: Path, names: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Concatenate pickled CIFAR batches: b'data' (N, 3072) uint8 rows and b'labels'."""
    images, labels = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 batch '{name}' is missing", file=str(root), field=name,
                            fix="point data.root at the extracted cifar-10-batches-py folder")
        try:
            with path.open("rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            label = np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a CIFAR-10 python batch ({type(exc).__name__}: {exc})",
                            file=str(path), field="data",
                            fix="re-extract the CIFAR-10 python version archive") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(label) != len(data):
            raise DataError(f"batch has data shape {data.shape} and {len(label)} labels, "
                            "expected (N, 3072) and N labels", file=str(path), field="data",
                            fix="re-extract the CIFAR-10 python version archive")
        if len(label) and (label.min() < 0 or label.max() > 9):
            raise DataError("labels outside 0..9", file=str(path), field="labels",
                            fix="re-extract the CIFAR-10 python version archive")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32)))
        labels.append(torch.from_numpy(label))
    return torch.cat(images), torch.cat(labels)


def _cifar_class_names(root: Path) -> list[str]:
    """Names from batches.meta when present (it is optional for training), else '0'..'9'."""
    meta = root / "batches.meta"
    try:
        with meta.open("rb") as handle:
            names = pickle.load(handle, encoding="bytes")[b"label_names"]
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names][:10]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError):
        return [str(i) for i in range(10)]


def _load_imagenet(spec: DataSpec) -> DataBundle:
    """ImageNet-style folders: root/train/<class>/<image> (training and, a seeded
    ``val_fraction`` of it, validation) and root/val/<class>/<image> (the official validation
    images, used here as the test split)."""
    root = _existing_dir(spec.root, "a folder with train/ and val/ class subfolders")
    _check_fraction(spec.val_fraction, "val_fraction")
    _pil_image()  # fail early, not in the middle of the first epoch
    train_classes = _class_folders(root / "train")
    classes = train_classes[:spec.max_classes] if spec.max_classes else train_classes
    index = {name: i for i, name in enumerate(classes)}
    train_files = _list_images(root / "train", classes, index)
    val_classes = _class_folders(root / "val")
    unknown = sorted(set(val_classes) - set(train_classes))
    if unknown:
        raise DataError(f"val/ has class folder '{unknown[0]}' that train/ lacks",
                        file=str(root / "val"), field=unknown[0],
                        fix="use the same class folder names under train/ and val/")
    test_files = _list_images(root / "val", [c for c in val_classes if c in index], index)
    val_idx, train_idx = _held_out(len(train_files), spec.val_fraction, spec.seed)
    return DataBundle(
        train=ImageFolderDataset([train_files[i] for i in train_idx.tolist()], spec.resolution,
                                 flip=True),
        val=ImageFolderDataset([train_files[i] for i in val_idx.tolist()], spec.resolution,
                               flip=False),
        test=ImageFolderDataset(test_files, spec.resolution, flip=False),
        num_classes=len(classes), resolution=spec.resolution, classes=tuple(classes))


def _existing_dir(root: str | None, what: str) -> Path:
    if root is None:
        raise DataError("no data folder given", field="data.root", fix=f"set data.root to {what}")
    path = Path(root)
    if not path.is_dir():
        raise DataError("data folder does not exist", file=str(path), field="data.root",
                        fix=f"set data.root to {what}")
    return path


def _class_folders(split: Path) -> list[str]:
    if not split.is_dir():
        raise DataError(f"'{split.name}/' folder is missing", file=str(split.parent),
                        field=split.name, fix="put one subfolder per class under train/ and val/")
    classes = sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"'{split.name}/' has {len(classes)} class subfolders, need at least 2",
                        file=str(split), field=split.name,
                        fix="put one subfolder per class (e.g. n01440764/) holding its images")
    return classes


def _list_images(split: Path, classes: Sequence[str],
                 index: dict[str, int]) -> list[tuple[Path, int]]:
    files: list[tuple[Path, int]] = []
    for name in classes:
        found = sorted(p for p in (split / name).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError("class folder has no images", file=str(split / name), field=name,
                            fix=f"add images with suffix {', '.join(sorted(IMAGE_SUFFIXES))} "
                                "or remove the folder")
        files.extend((path, index[name]) for path in found)
    return files


_LOADERS: dict[str, Callable[[DataSpec], DataBundle]] = {
    "digits": _load_digits,
    "cifar10": _load_cifar10,
    "imagenet": _load_imagenet,
}
