"""ImageFolderDataModule on real files: layouts, seeded splits, every image mode, one-line errors for bad inputs."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
import pytest
import torch
from fakes import make_image_tree
from PIL import Image

from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError
from transferlab.data.imagefolder import ImageFolderDataModule, load_rgb, to_rgb


def module(root, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root, **{"image_size": 32, "batch_size": 4, **kwargs})


def paths(dataset) -> list[str]:
    return [path for path, _ in dataset.samples]


def one_line_error(match: str, root, **kwargs) -> str:
    """The TransferlabError raised by building and setting up a module on ``root``, checked to be one line."""
    with pytest.raises(TransferlabError, match=match) as info:
        module(root, **kwargs).setup()
    message = str(info.value)
    assert "\n" not in message
    return message


def save_bytes(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jpeg_bytes(size=64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_single_folder_split_is_stratified_seeded_and_deterministic(tmp_path):
    make_image_tree(tmp_path, classes=("a", "b", "c"), per_class=10, size=16)
    dm = module(tmp_path, val_fraction=0.2, test_fraction=0.2)
    assert dm.class_names == ["a", "b", "c"] and dm.num_classes == 3  # known before setup
    dm.setup()
    splits = [paths(dm.train_set), paths(dm.val_set), paths(dm.test_set)]
    assert [len(s) for s in splits] == [18, 6, 6]
    assert len(set().union(*map(set, splits))) == 30  # disjoint and complete
    for dataset, per_class in ((dm.train_set, 6), (dm.val_set, 2), (dm.test_set, 2)):
        assert np.bincount(dataset.targets).tolist() == [per_class] * 3
    again = module(tmp_path, val_fraction=0.2, test_fraction=0.2)
    again.setup()
    assert paths(again.test_set) == splits[2] and paths(again.val_set) == splits[1]
    other = module(tmp_path, val_fraction=0.2, test_fraction=0.2, split_seed=1)
    other.setup()
    assert paths(other.test_set) != splits[2]


def test_train_val_test_layout(tmp_path):
    for split, count in (("train", 8), ("val", 3), ("test", 4)):
        make_image_tree(tmp_path / split, per_class=count, size=16)
    dm = module(tmp_path)
    dm.setup()
    assert dm.class_names == ["cat", "dog"]
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (16, 6, 8)
    assert all(f"{os.sep}train{os.sep}" in p for p in paths(dm.train_set))
    assert all(f"{os.sep}val{os.sep}" in p for p in paths(dm.val_set))


def test_missing_val_folder_is_held_out_of_train(tmp_path):
    make_image_tree(tmp_path / "train", per_class=10, size=16)
    make_image_tree(tmp_path / "test", per_class=2, size=16)
    dm = module(tmp_path, val_fraction=0.2)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (16, 4, 4)
    assert not set(paths(dm.train_set)) & set(paths(dm.val_set))


def test_hidden_and_macos_folders_are_never_classes(tmp_path):
    make_image_tree(tmp_path, per_class=10, size=16)
    make_image_tree(tmp_path / ".ipynb_checkpoints", classes=("x",), per_class=2, size=16)
    make_image_tree(tmp_path / "__MACOSX", classes=("y",), per_class=2, size=16)
    make_image_tree(tmp_path / "cat" / ".thumbs", classes=("z",), per_class=2, size=16)
    dm = module(tmp_path)
    dm.setup()
    assert dm.class_names == ["cat", "dog"]
    every = paths(dm.train_set) + paths(dm.val_set) + paths(dm.test_set)
    assert len(every) == 20 and not any(".thumbs" in p for p in every)


def test_samples_per_class_limits_training_only(tmp_path):
    make_image_tree(tmp_path, per_class=10, size=16)
    dm = module(tmp_path, samples_per_class=3)
    dm.setup()
    assert np.bincount(dm.train_set.targets).tolist() == [3, 3]
    assert (len(dm.val_set), len(dm.test_set)) == (2, 4)


@pytest.mark.parametrize("image_size", [32, 48])
def test_every_mode_becomes_a_normalised_rgb_tensor(tmp_path, image_size):
    make_image_tree(tmp_path, per_class=14, size=40)  # each class: every mode, in PNG and JPEG where possible
    dm = module(tmp_path, image_size=image_size, batch_size=64, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    for dataset in (dm.train_set, dm.val_set, dm.test_set):
        for i in range(len(dataset)):
            image, label = dataset[i]
            assert image.shape == (3, image_size, image_size) and image.dtype == torch.float32
            assert torch.isfinite(image).all() and label in (0, 1)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape[1:] == (3, image_size, image_size) and labels.dtype == torch.long
    # ImageNet normalisation: values leave [0, 1] (white -> (1 - 0.406) / 0.225 = 2.64).
    assert images.min() < 0 and images.max() > 1


def test_white_image_normalises_with_the_data_config(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.new("RGBA", (20, 20), (255, 255, 255, 255)).save(tmp_path / name / f"{i}.png")
    dm = module(tmp_path, data_config=DataConfig(), image_size=16)
    dm.setup()
    expected = (1 - torch.tensor(DataConfig().mean)) / torch.tensor(DataConfig().std)
    assert torch.allclose(dm.test_set[0][0].mean(dim=(1, 2)), expected, atol=1e-5)


@pytest.mark.parametrize("mode, value, rgb", [
    ("L", 100, (100, 100, 100)),
    ("LA", (100, 255), (100, 100, 100)),
    ("LA", (100, 0), (255, 255, 255)),          # fully transparent -> white background
    ("RGBA", (0, 0, 0, 128), (127, 127, 127)),  # half transparent black over white
    ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("I;16", 65535, (255, 255, 255)),           # full 16-bit range -> 255 ...
    ("I;16", 32768, (128, 128, 128)),           # ... and half of it -> 128, not saturated
    ("I;16B", 65535, (255, 255, 255)),
    ("I", 32768, (128, 128, 128)),
    ("F", 0.5, (128, 128, 128)),
    ("1", 1, (255, 255, 255)),
])
def test_to_rgb_converts_each_mode(mode, value, rgb):
    converted = to_rgb(Image.new(mode, (3, 3), value))
    assert converted.mode == "RGB" and converted.getpixel((1, 1)) == rgb


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.save(tmp_path / "opaque.png")
    image.save(tmp_path / "transparent.png", transparency=0)
    assert load_rgb(tmp_path / "opaque.png").getpixel((0, 0)) == (0, 0, 0)
    transparent = load_rgb(tmp_path / "transparent.png")
    assert transparent.getpixel((0, 0)) == (255, 255, 255) and transparent.getpixel((1, 1)) == (200, 10, 10)


def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    loaded = np.asarray(load_rgb(tmp_path / "deep.png"))
    assert loaded[0, :, 0].tolist() == [0, 128, 255, 4] and (loaded == loaded[..., :1]).all()


def test_missing_root(tmp_path):
    with pytest.raises(TransferlabError, match=r"data.root=.*nowhere does not exist; set data.root"):
        module(tmp_path / "nowhere")


def test_no_class_folders(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    one_line_error(f"no class folders in {tmp_path}", tmp_path)


def test_empty_class_folder_is_named(tmp_path):
    make_image_tree(tmp_path, per_class=4, size=16)
    (tmp_path / "emu").mkdir()
    (tmp_path / "emu" / "notes.txt").write_text("not an image")
    one_line_error(f"class folder {tmp_path / 'emu'} has no images", tmp_path)


@pytest.mark.parametrize("name, data, reason", [
    ("truncated.jpg", jpeg_bytes()[:400], "truncated"),
    ("empty.png", b"", "empty file"),
    ("garbage.jpg", b"\x00garbage, not an image" * 20, "cannot identify image"),
])
def test_unreadable_file_is_named(tmp_path, name, data, reason):
    make_image_tree(tmp_path, per_class=4, size=16)
    bad = save_bytes(tmp_path / "dog" / name, data)
    message = one_line_error("1 unreadable image", tmp_path)
    assert f"{bad} (" in message and reason in message and "data.on_corrupt=skip" in message


def test_decompression_bomb(tmp_path, monkeypatch):
    make_image_tree(tmp_path, per_class=4, size=16)
    Image.new("L", (200, 200)).save(tmp_path / "cat" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    message = one_line_error("decompression bomb", tmp_path)
    assert str(tmp_path / "cat" / "bomb.png") in message
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50 * 50)  # beyond 2x the limit Pillow raises in open()
    assert "decompression bomb" in one_line_error("bomb.png", tmp_path)


def test_many_bad_files_listed_briefly(tmp_path):
    make_image_tree(tmp_path, per_class=4, size=16)
    for i in range(5):
        save_bytes(tmp_path / "cat" / f"bad{i}.png", b"")
    message = one_line_error("5 unreadable image", tmp_path)
    assert "and 2 more" in message


def test_on_corrupt_skip_drops_and_counts(tmp_path, caplog):
    make_image_tree(tmp_path, per_class=10, size=16)
    save_bytes(tmp_path / "cat" / "empty.png", b"")
    save_bytes(tmp_path / "dog" / "cut.jpg", jpeg_bytes()[:300])
    with caplog.at_level(logging.WARNING, logger="transferlab.data.imagefolder"):
        dm = module(tmp_path, on_corrupt="skip")
        dm.setup()
    assert "skipping 2 unreadable image(s)" in caplog.text
    every = paths(dm.train_set) + paths(dm.val_set) + paths(dm.test_set)
    assert len(every) == 20 and not any(p.endswith(("empty.png", "cut.jpg")) for p in every)


def test_on_corrupt_must_be_known(tmp_path):
    make_image_tree(tmp_path, per_class=4, size=16)
    with pytest.raises(TransferlabError, match="data.on_corrupt='ignore' must be one of error, skip"):
        module(tmp_path, on_corrupt="ignore")


def test_symlink_loop_is_an_error_not_a_hang(tmp_path):
    make_image_tree(tmp_path, per_class=4, size=16)
    (tmp_path / "cat" / "again").symlink_to(tmp_path / "cat", target_is_directory=True)
    message = one_line_error("symlink loop", tmp_path)
    assert str(tmp_path / "cat" / "again") in message


def test_symlink_to_dataset_root_is_a_loop(tmp_path):
    make_image_tree(tmp_path / "data", per_class=4, size=16)
    (tmp_path / "data" / "dog" / "up").symlink_to(tmp_path / "data", target_is_directory=True)
    one_line_error(f"symlink loop: {tmp_path / 'data' / 'dog' / 'up'}", tmp_path / "data")


def test_symlinked_folders_without_loops_are_followed(tmp_path):
    make_image_tree(tmp_path / "elsewhere", classes=("dog",), per_class=4, size=16)
    make_image_tree(tmp_path / "data", classes=("cat",), per_class=4, size=16)
    (tmp_path / "data" / "dog").symlink_to(tmp_path / "elsewhere" / "dog", target_is_directory=True)
    dm = module(tmp_path / "data", val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    assert dm.class_names == ["cat", "dog"] and len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 8


def test_class_names_must_match_across_splits(tmp_path):
    make_image_tree(tmp_path / "train", classes=("cat", "dog"), per_class=4, size=16)
    make_image_tree(tmp_path / "val", classes=("cat", "dgo"), per_class=2, size=16)
    with pytest.raises(TransferlabError, match=r"only in train: \['dog'\], only in val: \['dgo'\]") as info:
        module(tmp_path)
    assert "\n" not in str(info.value)


def test_too_few_images_to_split_is_explained(tmp_path):
    make_image_tree(tmp_path, per_class=1, size=16)
    one_line_error("cannot hold out .* provide a test/ folder", tmp_path)
