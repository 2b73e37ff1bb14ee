"""Training data: folders, odd image modes, corrupt files, determinism."""

import numpy as np
import pytest
import torch
from PIL import Image

from fastgram import imageio
from fastgram.train.data import ImageDataset, resolve_images


def write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8), "L").save(folder / "grey.png")
    rgba = rng.integers(0, 256, (25, 35, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    (folder / "sub").mkdir()
    deep = rng.integers(0, 65536, (24, 24), dtype=np.uint16)
    Image.fromarray(deep).save(folder / "sub" / "deep16.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / "sub" / "x.webp")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_is_searched_recursively_and_all_modes_become_rgb(tmp_path):
    folder = write_images(tmp_path / "imgs")
    data = ImageDataset(folder, 16)
    names = sorted(p.name for p in data.paths)
    assert names == ["alpha.png", "deep16.png", "grey.png", "rgb.jpg", "x.webp"]
    for i in range(len(data)):
        crop = data.crop(i, torch.Generator().manual_seed(i))
        assert crop.shape == (3, 16, 16) and crop.dtype == torch.float32
        assert 0 <= crop.min() and crop.max() <= 1


def test_sixteen_bit_images_keep_their_range(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    assert imageio.pil_to_tensor(imageio.read_image(path)).min() == 1.0


def test_corrupt_files_are_skipped_with_one_counting_warning(tmp_path):
    folder = write_images(tmp_path / "imgs")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (folder / "empty.jpg").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match="skipped 2 unreadable") as record:
        data = ImageDataset(folder, 16, name="content")
    assert len(record) == 1
    assert len(data) == 5


def test_empty_or_unreadable_folder_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="style: no readable image in directory .*empty"):
        ImageDataset(empty, 16, name="style")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="no readable image"):
        ImageDataset(bad, 16)
    with pytest.raises(ValueError, match="not a directory"):
        ImageDataset(tmp_path / "missing", 16)
    with pytest.raises(ValueError, match="no such file"):
        ImageDataset([tmp_path / "missing.png"], 16)


def test_fewer_images_than_the_batch_and_determinism(tmp_path):
    path = tmp_path / "one.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
    data = ImageDataset([path], 8)
    a = data.sample(5, torch.Generator().manual_seed(3))
    b = data.sample(5, torch.Generator().manual_seed(3))
    c = data.sample(5, torch.Generator().manual_seed(4))
    assert a.shape == (5, 3, 8, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_dataset_arguments(tmp_path):
    folder = write_images(tmp_path / "imgs")
    with pytest.raises(ValueError, match="^size:"):
        ImageDataset(folder, 0)
    with pytest.raises(ValueError, match="^scale:"):
        ImageDataset(folder, 8, scale=(0.0, 1.0))
    with pytest.raises(TypeError, match="^source:"):
        resolve_images(42)


def test_flat_or_tiny_images_only_is_an_error_naming_the_files(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(folder / "dot.png")
    Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8)).save(folder / "grey.png")
    with pytest.warns(RuntimeWarning), pytest.raises(
            ValueError, match=r"^style: no usable image .*dot\.png \(too small\), grey\.png \(flat\)"):
        ImageDataset(folder, 16, name="style")
    # With one good image beside them, they are skipped and counted.
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
        folder / "good.png")
    with pytest.warns(RuntimeWarning, match="skipped 1 flat image"):
        data = ImageDataset(folder, 16, name="style")
    assert [p.name for p in data.paths] == ["good.png"]


def test_the_image_cache_is_bounded_in_bytes(tmp_path):
    from fastgram.train import data as train_data

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # 40x50 RGB: 6000 bytes each decoded
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    dataset = ImageDataset(folder, 16, cache=13_000)
    gen = torch.Generator().manual_seed(0)
    for i in range(6):
        dataset.crop(i, gen)
        assert dataset._cache.bytes <= 13_000
    assert len(dataset._cache) == 2 and dataset._cache.get(5) is not None
    assert ImageDataset(folder, 16)._cache.limit == train_data.DEFAULT_CACHE_BYTES == 512 * 2**20
    assert ImageDataset(folder, 16, cache=False)._cache.limit == 0
    with pytest.raises(ValueError, match="^cache:"):
        ImageDataset(folder, 16, cache=-1)
