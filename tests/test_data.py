import gzip
import hashlib
import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import FashionMNIST

from actlab import data
from actlab.data import (
    CLASS_NAMES,
    DatasetError,
    DatasetNotFoundError,
    TensorLoader,
    ensure_fashion_mnist,
    load_fashion_mnist,
    load_raw,
    normalize,
    read_images,
    read_labels,
)
from tests.conftest import fake_files, idx_bytes

NO_SYSTEM = Path("/nonexistent/fashion-mnist")


def write(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


# --- parsing and its errors ---------------------------------------------------------------------

def test_reads_images_and_labels(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    got = read_images(write(tmp_path / "img", idx_bytes(images)))
    assert got.dtype == torch.uint8 and got.shape == (2, 28, 28)
    assert np.array_equal(got.numpy(), images)
    labels = read_labels(write(tmp_path / "lab", idx_bytes(np.array([0, 9, 3]))))
    assert labels.tolist() == [0, 9, 3] and labels.dtype == torch.int64


def test_truncated_file_is_named(tmp_path):
    blob = idx_bytes(np.zeros((3, 28, 28)))
    path = write(tmp_path / "train-images-idx3-ubyte", blob[:-100])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte is truncated or corrupt"):
        read_images(path)


def test_trailing_bytes_are_refused(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.zeros(3)) + b"\x00")
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_labels(path)


def test_bad_header_is_refused(tmp_path):
    path = write(tmp_path / "images", b"PK\x03\x04" + bytes(100))
    with pytest.raises(DatasetError, match=r"bad IDX header 504b0304"):
        read_images(path)


def test_labels_file_given_as_images_is_refused(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.zeros(5)))
    with pytest.raises(DatasetError, match="bad IDX header"):
        read_images(path)


def test_too_short_file(tmp_path):
    with pytest.raises(DatasetError, match=r"too short \(3 bytes\)"):
        read_labels(write(tmp_path / "labels", b"\x00\x00\x08"))


def test_wrong_image_size(tmp_path):
    with pytest.raises(DatasetError, match=r"size \(32, 32\)"):
        read_images(write(tmp_path / "images", idx_bytes(np.zeros((2, 32, 32)))))


def test_labels_outside_range(tmp_path):
    path = write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 17, 3])))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte has labels outside 0-9 \(label 17 at index 2\)"):
        read_labels(path)


def test_image_and_label_counts_must_match(tmp_path):
    files = fake_files()
    name = data.FILES["train"][1]
    files[name] = idx_bytes(np.zeros(5))
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for file, blob in files.items():
        write(raw / file, blob)
    with pytest.raises(DatasetError, match="holds 12 images but .* holds 5 labels"):
        load_raw("train", tmp_path)


# --- where the data comes from ------------------------------------------------------------------

def test_data_folder_is_used_first(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name, blob in fake_files().items():
        write(raw / name, blob)
    assert ensure_fashion_mnist(tmp_path, system_dir=NO_SYSTEM, download=False) == raw


def test_system_copy_is_unpacked_once(tmp_path, fake_system_dir):
    root = tmp_path / "data"
    raw = ensure_fashion_mnist(root, system_dir=fake_system_dir, download=False)
    for name, blob in fake_files().items():
        assert (raw / name).read_bytes() == blob
    assert not list(raw.glob("*.part"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    ensure_fashion_mnist(root, system_dir=fake_system_dir, download=False)
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == mtimes


def test_corrupt_system_copy_leaves_no_partial_file(tmp_path, fake_system_dir):
    name = data.FILES["train"][0]
    gz = fake_system_dir / f"{name}.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(DatasetError, match=f"Could not unpack .*{name}.gz"):
        ensure_fashion_mnist(tmp_path / "data", system_dir=fake_system_dir, download=False)
    raw = data.raw_dir(tmp_path / "data")
    assert not (raw / name).exists()
    assert not list(raw.glob("*.part")) and not list(raw.glob(".*.part"))


def test_nothing_found_explains_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        ensure_fashion_mnist(tmp_path, system_dir=NO_SYSTEM, download=False)
    message = str(err.value)
    assert str(data.raw_dir(tmp_path)) in message and str(NO_SYSTEM) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "torchvision downloads it" in message and "copy the four files" in message


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """A local HTTP server standing in for torchvision's FashionMNIST mirror."""
    served = tmp_path / "mirror"
    served.mkdir()
    resources = []
    for name, blob in fake_files().items():
        gz = gzip.compress(blob)
        (served / f"{name}.gz").write_bytes(gz)
        resources.append((f"{name}.gz", hashlib.md5(gz).hexdigest()))
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(FashionMNIST, "resources", resources)
    yield served
    server.shutdown()
    server.server_close()


def test_download_when_nothing_is_local(tmp_path, fake_mirror):
    root = tmp_path / "data"
    raw = ensure_fashion_mnist(root, system_dir=NO_SYSTEM, download=True)
    for name, blob in fake_files().items():
        assert (raw / name).read_bytes() == blob
    images, labels = load_raw("train", root)
    assert images.shape == (12, 28, 28) and labels.shape == (12,)


def test_failed_download_is_reported(tmp_path, fake_mirror):
    for file in fake_mirror.iterdir():
        file.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"torchvision's download: Error downloading") as err:
        ensure_fashion_mnist(tmp_path / "data", system_dir=NO_SYSTEM, download=True)
    assert "HTTP Error 404" in str(err.value)  # the reason, not only the first line of torchvision's message


# --- the real dataset ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full():
    return load_fashion_mnist("cpu", quick=False)


def test_split_sizes_and_range(full):
    assert (len(full.train), len(full.val), len(full.test)) == (50_000, 10_000, 10_000)
    assert full.train.images.shape == (50_000, 1, 28, 28) and full.train.images.dtype == torch.float32
    assert full.train.images.min() == -1 and full.train.images.max() == 1
    assert full.class_names == CLASS_NAMES and len(CLASS_NAMES) == 10


def test_matches_torchvision_transforms_and_split(full):
    train, val, test = data.torchvision_datasets()
    for dataset, split in ((train, full.train), (val, full.val), (test, full.test)):
        for i in (0, 1, 777, len(split) - 1):
            image, label = dataset[i]
            assert torch.equal(image, split.images[i]) and label == split.labels[i].item()


def test_split_is_deterministic_and_disjoint():
    train_a, val_a = data.split_indices(60_000)
    train_b, val_b = data.split_indices(60_000)
    assert torch.equal(train_a, train_b) and torch.equal(val_a, val_b)
    assert len(set(train_a.tolist()) | set(val_a.tolist())) == 60_000
    generator = torch.Generator().manual_seed(data.SPLIT_SEED)
    reference = torch.utils.data.random_split(range(60_000), [50_000, 10_000], generator=generator)
    assert train_a.tolist() == reference[0].indices


def test_classes_are_balanced(full):
    counts = torch.bincount(torch.cat([full.train.labels, full.val.labels]), minlength=10)
    assert counts.tolist() == [6000] * 10
    assert torch.bincount(full.test.labels).tolist() == [1000] * 10


def test_quick_mode_keeps_a_prefix(full):
    quick = load_fashion_mnist("cpu", quick=True)
    assert (len(quick.train), len(quick.val), len(quick.test)) == (5000, 1000, 1000)
    assert torch.equal(quick.train.images, full.train.images[:5000])


# --- the in-memory loader -----------------------------------------------------------------------

def test_loader_batches_and_drop_last():
    images, labels = torch.arange(10).float().view(10, 1), torch.arange(10)
    assert len(TensorLoader(images, labels, 4)) == 3
    assert [len(y) for _, y in TensorLoader(images, labels, 4)] == [4, 4, 2]
    assert [len(y) for _, y in TensorLoader(images, labels, 4, drop_last=True)] == [4, 4]
    assert torch.equal(torch.cat([y for _, y in TensorLoader(images, labels, 4)]), labels)


def test_loader_shuffles_afresh_each_epoch_and_repeats_with_the_seed():
    images, labels = torch.arange(100).float().view(100, 1), torch.arange(100)
    loader = TensorLoader(images, labels, 10, shuffle=True, seed=3)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert not torch.equal(first, second)
    assert sorted(first.tolist()) == list(range(100))
    again = TensorLoader(images, labels, 10, shuffle=True, seed=3)
    assert torch.equal(torch.cat([y for _, y in again]), first)
    assert all(torch.equal(x.view(-1).long(), y) for x, y in TensorLoader(images, labels, 10, shuffle=True))


def test_loader_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(torch.zeros(3), torch.zeros(3), 0)


# --- checks that name the file, and callers that cannot disturb each other ------------------------

def fake_folder(root: Path, **sizes) -> Path:
    raw = data.raw_dir(root)
    raw.mkdir(parents=True)
    for name, blob in fake_files(**sizes).items():
        write(raw / name, blob)
    return raw


def test_header_whose_size_overflows_64_bits_is_refused(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (2**16, 2**24, 2**24))
    assert int(np.prod((2**16, 2**24, 2**24))) == 0
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_images(write(tmp_path / "images", header))


def test_swapped_train_and_test_files_are_named(tmp_path):
    raw = fake_folder(tmp_path, n_train=10_000, n_test=12)
    with pytest.raises(DatasetError, match=f"{raw / data.FILES['train'][0]} holds 10,000 images, as many as "
                                           "FashionMNIST's test file.*swapped"):
        load_raw("train", tmp_path)


def test_too_few_training_images_are_named(tmp_path):
    raw = fake_folder(tmp_path)
    with pytest.raises(DatasetError, match=f"{raw / data.FILES['train'][0]} holds 12 images, but the validation"):
        load_fashion_mnist("cpu", root=tmp_path)


def test_verify_reads_every_file(tmp_path):
    raw = fake_folder(tmp_path)
    with pytest.raises(DatasetError, match=f"{raw / data.FILES['train'][0]} holds 12 images, but FashionMNIST's"):
        data.verify_fashion_mnist(tmp_path)
    label_file = raw / data.FILES["test"][1]
    label_file.write_bytes(label_file.read_bytes()[:-1])
    with pytest.raises(DatasetError, match=f"{label_file} is truncated"):
        data.verify_fashion_mnist(tmp_path)


def test_a_file_where_the_data_folder_should_be(tmp_path, fake_system_dir):
    root = write(tmp_path / "data", b"not a folder")
    with pytest.raises(DatasetError, match=f"cannot be written into {data.raw_dir(root)}.*set ACTLAB_DATA"):
        ensure_fashion_mnist(root, system_dir=fake_system_dir, download=False)
    with pytest.raises(DatasetError, match="set ACTLAB_DATA"):
        ensure_fashion_mnist(root, system_dir=NO_SYSTEM, download=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_data_folder(tmp_path, fake_system_dir):
    root = tmp_path / "data"
    root.mkdir()
    root.chmod(0o500)
    with pytest.raises(DatasetError, match=f"cannot be written into .*{root}.*set ACTLAB_DATA"):
        ensure_fashion_mnist(root, system_dir=fake_system_dir, download=False)


def test_callers_do_not_share_tensors():
    first = load_fashion_mnist("cpu", quick=True)
    second = load_fashion_mnist("cpu", quick=True)
    expected = second.train.images[0].clone(), second.test.labels[:5].clone()
    first.train.pixels.zero_()
    first.test.labels.zero_()
    third = load_fashion_mnist("cpu", quick=True)
    for data_ in (second, third):
        assert torch.equal(data_.train.images[0], expected[0]) and torch.equal(data_.test.labels[:5], expected[1])
    assert third.subset == "quick"


def test_splits_keep_bytes_and_normalize_on_use():
    data_ = load_fashion_mnist("cpu", quick=True)
    assert data_.train.pixels.dtype == torch.uint8 and data_.train.pixels.shape == (5_000, 28, 28)
    images, labels = next(iter(data_.train.loader(64, shuffle=True, seed=1)))
    order = torch.randperm(5_000, generator=torch.Generator().manual_seed(1))[:64]
    assert torch.equal(images, data_.train.images[order]) and torch.equal(labels, data_.train.labels[order])
    assert torch.equal(data_.train.head(3).images, normalize(data_.train.pixels[:3]))


def test_a_file_larger_than_any_fashion_mnist_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = write(tmp_path / "labels", idx_bytes(np.zeros(1000, dtype=np.uint8)))
    monkeypatch.setattr(data, "MAX_IDX_BYTES", 999)
    monkeypatch.setattr(np, "frombuffer", lambda *args, **kwargs: pytest.fail("read before the size check"))
    with pytest.raises(DatasetError, match="has 1,008 bytes, more than any FashionMNIST file"):
        read_labels(path)
