"""Export of the generator and style encoder (ONNX and torch.export): the
graphs hold standard operators only and reproduce fastgram's float32 output."""

import pathlib

import pytest
import torch

from fastgram import StyleTransferGAN, export

ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
pytest.importorskip("onnxscript", reason="the export extra (onnxscript) is not installed")

# Batch, height, width: the smallest side the starter accepts (8), a batch
# of 2 at another size than traced, and a tall non-square one.
SIZES = [(1, 8, 8), (2, 36, 52), (1, 100, 64)]


@pytest.fixture(scope="module")
def starter():
    return StyleTransferGAN.pretrained(device="cpu")


@pytest.fixture(scope="module")
def onnx_files(starter, tmp_path_factory):
    return starter.export(tmp_path_factory.mktemp("onnx") / "starter.onnx", format="onnx")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _style_code(gan, seed=0):
    style = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return style, gan.style_encoder(style)


def test_onnx_generator_matches_fastgram_at_several_sizes(starter, onnx_files):
    session = _session(onnx_files["generator"])
    _, code = _style_code(starter)
    gen = torch.Generator().manual_seed(1)
    for batch, height, width in SIZES:
        content = torch.rand(batch, 3, height, width, generator=gen)
        with torch.no_grad():
            expected = starter.generator(content, code)  # fastgram's own ops (auto backend)
        (got,) = session.run(None, {"content": content.numpy(), "style_code": code.numpy()})
        assert got.shape == (batch, 3, height, width)
        difference = (torch.from_numpy(got) - expected).abs().max().item()
        assert difference < 1e-4, (batch, height, width, difference)


def test_onnx_style_encoder_matches_fastgram(starter, onnx_files):
    session = _session(onnx_files["style_encoder"])
    for seed, (height, width) in enumerate([(8, 8), (40, 56), (130, 97)]):
        style = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = starter.style_encoder(style)
        (got,) = session.run(None, {"style": style.numpy()})
        # statistics of VGG activations on the 0-255 scale: compare relatively
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-4)


def test_onnx_files_name_their_opset_domain_and_shapes(onnx_files, starter):
    assert onnx_files["style_encoder"] == onnx_files["generator"].with_name(
        "starter.style_encoder.onnx")
    model = onnx.load(str(onnx_files["generator"]))
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] == export.ONNX_OPSET == 18
    domains = {node.domain for node in model.graph.node}
    assert not any("fastgram" in d for d in domains), domains
    metadata = export.read_metadata(onnx_files["generator"])
    assert metadata["stride"] == str(starter.generator.stride) == "4"
    assert metadata["min_size"] == "8" and metadata["graph"] == "generator"
    assert metadata["style_size"] == str(starter.config.style_size)
    content = model.graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for d in (content[0], content[2], content[3])), content


def test_torch_export_round_trips(starter, tmp_path):
    files = starter.export(tmp_path / "starter.pt2", format="torch_export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["starter.pt2",
                                                          "starter.style_encoder.pt2"]
    generator = torch.export.load(files["generator"])
    encoder = torch.export.load(files["style_encoder"])
    targets = {str(n.target) for n in generator.graph.nodes if n.op == "call_function"}
    assert not any(t.startswith("fastgram.") for t in targets)
    style, code = _style_code(starter, seed=3)
    torch.testing.assert_close(encoder.module()(style), code, rtol=1e-5, atol=1e-4)
    content = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = starter.generator(content, code)
        got = generator.module()(content, code)
    assert (got - expected).abs().max().item() < 1e-4
    assert export.read_metadata(files["style_encoder"])["graph"] == "style_encoder"


def test_a_munit_generator_exports_with_its_norms_decomposed(tmp_path):
    gan = StyleTransferGAN(size=32, device="cpu", ngf=4, style_dim=4, n_res_blocks=1,
                           vgg_weights=None, style_encoder="vgg")
    files = gan.export(tmp_path / "munit.onnx")
    code = torch.randn(1, 4, generator=torch.Generator().manual_seed(5))
    content = torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = gan.generator(content, code)
    (got,) = _session(files["generator"]).run(None, {"content": content.numpy(),
                                                     "style_code": code.numpy()})
    assert (torch.from_numpy(got) - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("path, format, error, words", [
    ("model.onnx", "tflite", ValueError, "format: expected one of"),
    ("model.onnx", None, ValueError, "format: expected one of"),
    ("model.pt2", "onnx", ValueError, "path: a onnx file must end in '.onnx'"),
    ("model.onnx", "torch_export", ValueError, "must end in '.pt2'"),
    ("missing/model.onnx", "onnx", FileNotFoundError, "path: no folder"),
    (3, "onnx", TypeError, "path: expected a str or a path"),
])
def test_bad_arguments_are_refused_before_tracing(starter, tmp_path, path, format, error, words):
    target = tmp_path / path if isinstance(path, str) else path
    with pytest.raises(error, match=words.replace("(", r"\(").replace(".", r"\.")):
        starter.export(target, format=format)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_not_a_file_name(starter, tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ValueError, match="path: .* is a folder"):
        starter.export(tmp_path / "dir.onnx")


torch.library.define("fastgram::export_test_opaque", "(Tensor x) -> Tensor")
torch.library.impl("fastgram::export_test_opaque", "default", lambda x: x * 2)
torch.library.register_fake("fastgram::export_test_opaque", lambda x: torch.empty_like(x))


class _Opaque(torch.nn.Module):
    def forward(self, x):
        return torch.ops.fastgram.export_test_opaque(x) + 1


def test_a_fastgram_operator_left_in_the_graph_is_refused():
    with pytest.raises(export.ExportError, match="fastgram operators left in the graph.*"
                                                 "export_test_opaque"):
        export._trace(_Opaque(), (torch.rand(2, 3),), None, "generator")


def test_read_metadata_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        export.read_metadata(tmp_path / "none.onnx")
    other = pathlib.Path(tmp_path / "model.bin")
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="path: expected a .onnx or .pt2 file"):
        export.read_metadata(other)


# -- fastgram export --------------------------------------------------------------


def _cli(args, capsys):
    from fastgram import cli

    status = cli.main(args)
    out, err = capsys.readouterr()
    return status, out, err.strip()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    gan = StyleTransferGAN(size=32, device="cpu", generator="adain", vgg_weights=None)
    return gan.save(tmp_path_factory.mktemp("tiny") / "tiny.pt")


def test_cli_export_writes_both_graphs(tiny_model, tmp_path, capsys):
    status, out, _ = _cli(["export", str(tmp_path / "tiny.pt2"), "--checkpoint",
                           str(tiny_model)], capsys)
    assert status == 0
    assert f"wrote generator: {tmp_path / 'tiny.pt2'}" in out
    assert (tmp_path / "tiny.style_encoder.pt2").is_file()
    content = torch.rand(1, 3, 16, 20)
    code = torch.rand(1, 512)
    got = torch.export.load(tmp_path / "tiny.pt2").module()(content, code)
    assert got.shape == content.shape


@pytest.mark.parametrize("args, words", [
    (["{tmp}/model.bin"], "OUT: '{tmp}/model.bin' ends in neither .onnx nor .pt2"),
    (["{tmp}/model.pt2", "--format", "onnx"], "path: a onnx file must end in '.onnx'"),
    (["{tmp}/no/model.onnx"], "path: no folder '{tmp}/no'"),
])
def test_cli_export_argument_errors(args, words, tmp_path, capsys):
    args = [a.format(tmp=tmp_path) for a in args]
    status, _, err = _cli(["export", *args], capsys)
    assert status == 2
    assert err.startswith("fastgram export: error: ") and "\n" not in err, err
    assert words.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_cli_export_names_the_missing_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)
    status, _, err = _cli(["export", str(tmp_path / "m.onnx")], capsys)
    assert status == 2
    assert "needs the package(s) onnxscript" in err and "fastgram[export]" in err


def test_cli_export_refuses_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _cli(["export", str(tmp_path / "m.onnx"), "--checkpoint", str(tmp_path / "no.pt")], capsys)
    assert stop.value.code == 2
    assert "no such file" in capsys.readouterr().err
