import pytest

from compression_tool.commen_utils.errors import UserError
from compression_tool.dataloader import load_image, read_pair_list
from compression_tool.model_define import InputSpec


def write(tmp_path, text, name="pairs.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pair_list(tmp_path):
    pairs = read_pair_list(write(tmp_path, "a/1.png b/1.png 0\na/1.png a/2.png 1\n\n"), "/root")
    assert pairs == [("/root/a/1.png", "/root/b/1.png", 0), ("/root/a/1.png", "/root/a/2.png", 1)]


def test_lfw_pairs_txt(tmp_path):
    pairs = read_pair_list(write(tmp_path, "1 1\nAbel 1 2\nAbel 1 Zoe 3\n"), "/lfw")
    assert pairs == [("/lfw/Abel/Abel_0001.jpg", "/lfw/Abel/Abel_0002.jpg", 1),
                     ("/lfw/Abel/Abel_0001.jpg", "/lfw/Zoe/Zoe_0003.jpg", 0)]


@pytest.mark.parametrize("text, message", [
    ("a b\n", "pairs.txt:1: expected 'path1 path2 label', got 2 fields"),
    ("a b 1\nc d 2\n", "pairs.txt:2: label must be 0 or 1"),
    ("a b 1\na b 1\nc d 0\n", "duplicate pair"),
    ("a b 1\nc d 1\n", "same label"),
    ("\n\n", "is empty"),
])
def test_malformed_lists(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        read_pair_list(write(tmp_path, text), tmp_path)


def test_image_of_wrong_size_and_corrupt_image(tmp_path):
    from PIL import Image
    Image.new("RGB", (100, 90)).save(tmp_path / "small.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    spec = InputSpec((112, 112))
    with pytest.raises(UserError, match="small.png: image is 90x100, the model needs 112x112"):
        load_image(tmp_path / "small.png", spec)
    with pytest.raises(UserError, match="broken.png: not a readable image"):
        load_image(tmp_path / "broken.png", spec)


def test_preprocessing_follows_spec(tmp_path):
    from PIL import Image
    Image.new("RGB", (2, 1), (255, 0, 0)).save(tmp_path / "red.png")
    rgb = load_image(tmp_path / "red.png", InputSpec((1, 2), "RGB", 127.5, 127.5))
    bgr = load_image(tmp_path / "red.png", InputSpec((1, 2), "BGR", 0.0, 1.0))
    assert rgb[:, 0, 0].tolist() == [1.0, -1.0, -1.0]
    assert bgr[:, 0, 0].tolist() == [0.0, 0.0, 255.0]


def test_zoom_and_brightness_jitter_are_seeded_and_keep_the_size(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from compression_tool.dataloader import TrainImages, rescaled

    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "face.png")
    spec = InputSpec((16, 16), "RGB", 127.5, 127.5)
    items = [(str(tmp_path / "face.png"), 0)]
    plain = TrainImages(items, spec)[0][0]
    jittered = TrainImages(items, spec, seed=1, scale=0.2, brightness=0.3)
    image = jittered[0][0]
    assert image.shape == plain.shape and torch.equal(image, jittered[0][0])  # same draw for (seed, epoch, i)
    assert not torch.equal(image, TrainImages(items, spec, seed=1)[0][0]) and image.abs().max() <= 1
    assert torch.allclose(rescaled(plain, 1.0), plain)
    assert rescaled(plain, 1.25).shape == rescaled(plain, 0.8).shape == plain.shape
