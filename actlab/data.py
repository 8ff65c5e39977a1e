"""FashionMNIST: find it, check it, split it, and serve it in fast batches.

The data is looked for in three places, in this order:

1. the data folder (``$ACTLAB_DATA``, default ``data/``), laid out as torchvision expects
   (``<data folder>/FashionMNIST/raw/train-images-idx3-ubyte`` and so on);
2. the system copy of the Debian/Ubuntu package ``dataset-fashion-mnist``, unpacked once into the
   data folder;
3. torchvision's download, into the data folder.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actlab import settings
from actlab.support import threads

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGE_SHAPE = (28, 28)
MEAN, STD = 0.5, 0.5
VAL_SIZE = 10_000
SPLIT_SEED = 42
QUICK_SIZES = {"train": 5_000, "val": 1_000, "test": 1_000}
FULL_SIZES = {"train": 50_000, "val": VAL_SIZE, "test": 10_000}
FILE_COUNTS = {"train": 60_000, "test": 10_000}
"""How many images each file pair of FashionMNIST holds."""

_IDX_UINT8 = 0x08
MAX_IDX_BYTES = 100_000_000
"""The largest IDX file read: FashionMNIST's largest, the training images, has 47,040,016 bytes."""


class DatasetError(RuntimeError):
    """A FashionMNIST file is truncated, corrupt, or not a FashionMNIST file at all."""


class DatasetNotFoundError(FileNotFoundError):
    """FashionMNIST is in none of the places actlab looks, and could not be downloaded."""


def raw_dir(root: Path | None = None) -> Path:
    """The folder of the four unpacked IDX files, where torchvision also keeps them."""
    return Path(root or settings.data_dir()) / "FashionMNIST" / "raw"


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes, its header checked against the file's size before the data is read."""
    header_size = 4 + 4 * ndim
    with open(path, "rb") as handle:
        head = handle.read(header_size)
        if len(head) == header_size:
            dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_IDX_BYTES:
                raise DatasetError(f"{path} has {size:,} bytes, more than any FashionMNIST file "
                                   f"({MAX_IDX_BYTES:,} at most); it is not one, delete it and run again.")
            if head[:2] == b"\x00\x00" and head[3] == ndim and size != header_size + math.prod(dims):
                raise DatasetError(
                    f"{path} is truncated or corrupt: its header announces {dims}, which needs "
                    f"{header_size + math.prod(dims)} bytes, but the file has {size}; delete it and run again."
                )
        blob = head + handle.read()
    magic = blob[:4]
    if len(magic) == 4 and (magic[:2] != b"\x00\x00" or magic[2] != _IDX_UINT8 or magic[3] != ndim):
        raise DatasetError(
            f"{path} has a bad IDX header {magic.hex()} (expected 000008{ndim:02x}): "
            "it is not a FashionMNIST file; delete it and run again."
        )
    if len(blob) < header_size:
        raise DatasetError(f"{path} is too short ({len(blob)} bytes) to be an IDX file; delete it and run again.")
    dims = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + math.prod(dims)
    if len(blob) != expected:
        raise DatasetError(
            f"{path} is truncated or corrupt: its header announces {dims}, which needs {expected} bytes, "
            f"but the file has {len(blob)}; delete it and run again."
        )
    return np.frombuffer(blob, dtype=np.uint8, offset=header_size).reshape(dims)


def read_images(path: Path) -> torch.Tensor:
    """Images of an IDX file as a ``uint8`` tensor of shape (N, 28, 28)."""
    images = _read_idx(Path(path), ndim=3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(f"{path} holds images of size {images.shape[1:]}, not {IMAGE_SHAPE}.")
    return torch.from_numpy(images.copy())


def read_labels(path: Path) -> torch.Tensor:
    """Labels of an IDX file as an ``int64`` tensor, each checked to lie in 0-9."""
    labels = _read_idx(Path(path), ndim=1)
    bad = np.flatnonzero(labels >= len(CLASS_NAMES))
    if bad.size:
        raise DatasetError(
            f"{path} has labels outside 0-9 (label {labels[bad[0]]} at index {bad[0]}); it is corrupt, "
            "delete it and run again."
        )
    return torch.from_numpy(labels.astype(np.int64))


def _check_writable(folder: Path) -> None:
    """Create ``folder`` and make sure a file can be written there, or say which folder and how to fix it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise DatasetError(
            f"FashionMNIST cannot be written into {folder}: {err.strerror or err}. Make that folder writable, "
            f"or set {settings.DATA_ENV} to another data folder."
        ) from err


def _unpack(source: Path, target: Path) -> None:
    """Gunzip ``source`` into ``target`` through a temporary file, so no partial file is left."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        _read_idx(tmp, ndim=1 if "labels" in target.name else 3)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except (OSError, EOFError, DatasetError) as err:
        raise DatasetError(f"Could not unpack {source}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)


def _download(root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        FashionMNIST(root=str(root), train=train, download=True)


ALL_FILES = tuple(name for pair in FILES.values() for name in pair)


def _whole_reason(err: BaseException) -> str:
    """Every line of an error and of the errors that caused it, on one line: why a download failed."""
    parts = []
    while err is not None:
        parts += [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return " ".join(dict.fromkeys(parts))


def ensure_fashion_mnist(
    root: Path | None = None, system_dir: Path = SYSTEM_DIR, download: bool = True
) -> Path:
    """Make sure the four IDX files are in the data folder and return that folder.

    Looks in the data folder, then unpacks the system copy, then downloads with torchvision.
    """
    root = Path(root or settings.data_dir())
    folder = raw_dir(root)
    if all((folder / name).is_file() for name in ALL_FILES):
        return folder
    if all((system_dir / f"{name}.gz").is_file() for name in ALL_FILES):
        _check_writable(folder)
        for name in ALL_FILES:
            if not (folder / name).is_file():
                _unpack(system_dir / f"{name}.gz", folder / name)
        return folder
    reason = "not tried (download=False)"
    if download:
        _check_writable(root)
        try:
            _download(root)
            return folder
        except Exception as err:  # torchvision raises RuntimeError, URLError, OSError...
            reason = _whole_reason(err)
    raise DatasetNotFoundError(
        "FashionMNIST was not found. actlab looked in:\n"
        f"  1. the data folder {folder} (set ACTLAB_DATA to use another folder)\n"
        f"  2. the system copy {system_dir}\n"
        f"  3. torchvision's download: {reason}\n"
        "Get the data in one of three ways:\n"
        "  - install the system copy: sudo apt-get install dataset-fashion-mnist\n"
        "  - connect to the internet and run again: torchvision downloads it into the data folder\n"
        f"  - copy the four files ({', '.join(ALL_FILES)}, optionally .gz) into {folder}"
    )


def load_raw(split: str, root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``uint8`` images and ``int64`` labels of the ``"train"`` or ``"test"`` file pair."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, not {split!r}")
    folder = ensure_fashion_mnist(root)
    image_file, label_file = (folder / name for name in FILES[split])
    images, labels = read_images(image_file), read_labels(label_file)
    if len(images) != len(labels):
        raise DatasetError(f"{image_file} holds {len(images)} images but {label_file} holds {len(labels)} labels.")
    other = "test" if split == "train" else "train"
    if len(images) == FILE_COUNTS[other]:
        raise DatasetError(
            f"{image_file} holds {len(images):,} images, as many as FashionMNIST's {other} file, not the "
            f"{FILE_COUNTS[split]:,} of its {split} file: are the train and test files swapped?"
        )
    return images, labels


def verify_fashion_mnist(root: Path | None = None) -> dict[str, int]:
    """Read and check all four files, and that each pair holds as many images as FashionMNIST's.

    Returns the number of images per file pair; a file that fails a check raises a ``DatasetError``
    that names it.
    """
    counts = {split: len(load_raw(split, root)[1]) for split in FILES}
    for split, count in counts.items():
        if count != FILE_COUNTS[split]:
            raise DatasetError(
                f"{raw_dir(root) / FILES[split][0]} holds {count:,} images, but FashionMNIST's {split} file holds "
                f"{FILE_COUNTS[split]:,}; delete it and run again."
            )
    return counts


def normalize(images: torch.Tensor) -> torch.Tensor:
    """``ToTensor()`` then ``Normalize((0.5,), (0.5,))`` on a whole ``uint8`` batch: [0, 255] to [-1, 1].

    The arithmetic runs in place on one new float tensor, so the batch is copied only once.
    """
    return images.unsqueeze(1).to(torch.float32, copy=True).div_(255).sub_(MEAN).div_(STD)


def split_indices(n: int, val_size: int = VAL_SIZE, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the train and validation parts, drawn with an explicit seeded generator.

    They equal ``torch.utils.data.random_split(dataset, [n - val_size, val_size], generator)``
    with ``generator = torch.Generator().manual_seed(seed)``.
    """
    if not 0 < val_size < n:
        raise ValueError(f"val_size must lie between 0 and {n}, not {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n - val_size], perm[n - val_size :]


class TensorLoader:
    """Batches from tensors already in memory, with the ``DataLoader`` interface.

    ``transform``, if given, is applied to each batch of images (a whole batch at once). Each pass
    over a shuffled loader draws a fresh permutation from its own seeded generator, so epochs
    differ from each other but a run repeats exactly. On the CPU each pass first sizes torch's threads
    to the cores free for it (``actlab.support.threads``).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.images, self.labels, self.transform = images, labels, transform
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.labels.device.type == "cpu":
            threads.size_threads()
        order = None
        if self.shuffle:
            order = torch.randperm(len(self.labels), generator=self.generator).to(self.labels.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = slice(start, start + self.batch_size)
            idx = batch if order is None else order[batch]
            images = self.images[idx]
            yield (self.transform(images) if self.transform else images), self.labels[idx]


@dataclass(frozen=True)
class Split:
    """One part of the data: the images as bytes (N, 28, 28), normalized when used, and their labels.

    Bytes take a quarter of the memory of normalized floats. ``images`` and the loader's batches
    are normalized when asked for, with ``normalize``, so they equal the source's transform exactly.
    """

    pixels: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def images(self) -> torch.Tensor:
        """Every image, normalized (N, 1, 28, 28): a new tensor at each access; ``head`` or ``loader`` give parts."""
        return normalize(self.pixels)

    def loader(self, batch_size: int, shuffle: bool = False, drop_last: bool = False, seed: int = 0) -> TensorLoader:
        """A ``TensorLoader`` over this split that normalizes each batch."""
        return TensorLoader(self.pixels, self.labels, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                            transform=normalize)

    def head(self, n: int) -> Split:
        """The first ``n`` examples."""
        return Split(self.pixels[:n], self.labels[:n])


@dataclass(frozen=True)
class FashionMNISTData:
    """The train, validation and test splits, on one device.

    ``subset`` says which part of FashionMNIST they are: ``"full"``, ``"quick"`` (the first images
    of each split), or ``"custom"`` for splits put together by hand.
    """

    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...] = CLASS_NAMES
    subset: str = "custom"


def _raw_splits(root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The ``uint8`` images and labels of each split, read from the files anew at every call."""
    train_images, train_labels = load_raw("train", root)
    test_images, test_labels = load_raw("test", root)
    if len(train_labels) <= VAL_SIZE:
        raise DatasetError(
            f"{raw_dir(root) / FILES['train'][0]} holds {len(train_labels):,} images, but the validation split "
            f"alone takes {VAL_SIZE:,}; FashionMNIST's training file holds {FILE_COUNTS['train']:,}."
        )
    if len(test_labels) == 0:
        raise DatasetError(f"{raw_dir(root) / FILES['test'][0]} holds no image.")
    train_idx, val_idx = split_indices(len(train_labels))
    return {
        "train": (train_images[train_idx], train_labels[train_idx]),
        "val": (train_images[val_idx], train_labels[val_idx]),
        "test": (test_images, test_labels),
    }


def _check_counts(raw: dict[str, tuple[torch.Tensor, torch.Tensor]], sizes: dict[str, int], exact: bool,
                  root: Path | None) -> None:
    """Each split holds ``sizes`` images (``exact``, full mode) or at least that many (quick mode)."""
    for name, (_, labels) in raw.items():
        wanted, count = sizes[name], len(labels)
        if count != wanted if exact else count < wanted:
            file = raw_dir(root) / FILES["test" if name == "test" else "train"][0]
            need = f"exactly {wanted:,}" if exact else f"at least {wanted:,}"
            raise DatasetError(f"The {name} split of {file} holds {count:,} images; this mode needs {need}. "
                               "The file is not FashionMNIST's: delete it and run again.")


def load_fashion_mnist(
    device: torch.device | str | None = None, quick: bool | None = None, root: Path | None = None
) -> FashionMNISTData:
    """FashionMNIST as tensors: the 50,000 / 10,000 train / validation split and the 10,000 test images.

    Quick mode (``ACTLAB_QUICK=1``, or ``quick=True``) keeps only the first
    5,000 / 1,000 / 1,000 of them. Every call reads the files and gets tensors of its own, and
    ``images`` is normalized anew at each access, so a caller that edits its tensors in place
    changes nobody else's data.
    """
    device = device or settings.get_device()
    quick = settings.quick_mode() if quick is None else quick
    raw = _raw_splits(Path(root or settings.data_dir()))
    _check_counts(raw, QUICK_SIZES if quick else FULL_SIZES, exact=not quick, root=root)
    splits: dict[str, Split] = {}
    for name, (images, labels) in raw.items():
        if quick:
            images, labels = images[: QUICK_SIZES[name]].clone(), labels[: QUICK_SIZES[name]].clone()
        splits[name] = Split(images.to(device), labels.to(device))
    return FashionMNISTData(splits["train"], splits["val"], splits["test"], subset="quick" if quick else "full")


def source_transform():
    """The source's per-image transform: ``ToTensor()`` then ``Normalize((0.5,), (0.5,))``."""
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])


def torchvision_datasets(root: Path | None = None):
    """The source's torchvision datasets (train, val, test), split exactly like ``load_fashion_mnist``."""
    from torchvision.datasets import FashionMNIST

    root = Path(root or settings.data_dir())
    ensure_fashion_mnist(root)
    full = FashionMNIST(root=str(root), train=True, transform=source_transform(), download=False)
    test = FashionMNIST(root=str(root), train=False, transform=source_transform(), download=False)
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    train, val = torch.utils.data.random_split(full, [len(full) - VAL_SIZE, VAL_SIZE], generator=generator)
    return train, val, test
