"""``fastgram serve``'s application through Flask's test client: the page,
a stylisation job from start to result, and every bad upload refused with a
message; the command's argument errors."""

import io
import socket
import sys
import time

import numpy as np
import pytest
from PIL import Image

from fastgram import StyleTransferGAN, cli, data

pytest.importorskip("flask", reason="the serve extra (flask) is not installed")
from fastgram.serve import create_app  # noqa: E402

MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def gan():
    return StyleTransferGAN(size=32, device="cpu", generator="adain", vgg_weights=None)


@pytest.fixture(scope="module")
def client(gan):
    app = create_app(gan, max_bytes=MAX_BYTES, max_side=64)
    return app.test_client()


def png_bytes(size=(40, 30), colour=(200, 30, 30), format="PNG"):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=format)
    return buffer.getvalue()


def wait(client, job_id, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").get_json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {seconds} s")


def test_the_page_and_the_samples(client):
    page = client.get("/").get_data(as_text=True)
    for element in ('id="content-file"', 'id="style-sample"', 'id="alpha"', 'id="preserve-color"',
                    'id="progress"', 'id="result"', 'id="download"'):
        assert element in page
    info = client.get("/api/info").get_json()
    assert "chelsea" in info["content_samples"] and "brick" in info["style_samples"]
    sample = client.get("/samples/brick")
    assert sample.status_code == 200
    assert Image.open(io.BytesIO(sample.data)).size == Image.open(data.image_path("brick")).size
    assert client.get("/samples/passwd").status_code == 404


def test_a_job_with_uploads_runs_in_memory_and_returns_a_png(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {"content": (io.BytesIO(png_bytes((44, 30))), "photo.png"),
             "style": (io.BytesIO(png_bytes(colour=(10, 200, 90), format="JPEG")), "s.jpg")}
    started = client.post("/api/jobs", data={**files, "alpha": "0.5"},
                          content_type="multipart/form-data")
    assert started.status_code == 202, started.get_json()
    status = wait(client, started.get_json()["id"])
    assert status["state"] == "done" and status["progress"] == 1.0, status
    assert (status["width"], status["height"]) == (44, 30)
    result = client.get(f"/api/jobs/{status['id']}/result.png")
    assert result.mimetype == "image/png"
    image = Image.open(io.BytesIO(result.data))
    assert image.size == (44, 30) and image.mode == "RGB"
    download = client.get(f"/api/jobs/{status['id']}/result.png?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    assert list(tmp_path.iterdir()) == []


def test_a_job_with_bundled_samples_is_scaled_to_max_side(client):
    started = client.post("/api/jobs", data={"content_sample": "chelsea", "style_sample": "brick"})
    status = wait(client, started.get_json()["id"])
    assert status["state"] == "done", status
    assert (status["width"], status["height"]) == (64, 43)  # 451 x 300 scaled to 64 wide


def _post(client, **fields):
    response = client.post("/api/jobs", data=fields, content_type="multipart/form-data")
    return response.status_code, response.get_json()["error"]


@pytest.mark.parametrize("fields, status, words", [
    ({"content": (b"just some text", "notes.txt")}, 400,
     "content: 'notes.txt' is not an image (or a damaged one); upload a PNG, JPEG, WebP or BMP"),
    ({"content": (png_bytes(format="GIF"), "a.gif")}, 400,
     "content: 'a.gif' is a GIF image, a type the page does not take"),
    ({"content": (png_bytes(format="TIFF"), "a.png")}, 400, "is a TIFF image"),
    ({"content": (b"", "empty.png")}, 400, "content: 'empty.png' is empty"),
    ({"content": (b"\x89PNG" + bytes(MAX_BYTES), "big.png")}, 400,
     "content: 'big.png' is too large (0.2 MB); upload at most 0.2 MB"),
    ({"content": (bytes(3 * MAX_BYTES), "huge.png")}, 413, "upload too large: at most 0.2 MB"),
    ({}, 400, "content: upload an image or choose a bundled one"),
    ({"content_sample": "../../etc/passwd"}, 400, "content_sample: expected one of astronaut"),
    ({"content_sample": "chelsea", "style_sample": "brick", "alpha": "2"}, 400,
     "alpha: expected a number in [0, 1], got '2'"),
    ({"content_sample": "chelsea", "style_sample": "brick", "alpha": "nan"}, 400, "alpha:"),
])
def test_bad_uploads_are_refused_with_a_message(client, fields, status, words):
    fields = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in fields.items()}
    fields.setdefault("style_sample", "brick")
    got_status, error = _post(client, **fields)
    assert got_status == status and words in error, (got_status, error)


def test_a_style_upload_is_checked_like_a_content_upload(client):
    status, error = _post(client, content_sample="chelsea",
                          style=(io.BytesIO(b"<html></html>"), "style.html"))
    assert status == 400 and error.startswith("style: 'style.html' is not an image")


def test_unknown_jobs_are_404(client):
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/result.png").get_json()["error"].startswith("no result")


def test_create_app_checks_its_arguments(gan):
    with pytest.raises(TypeError, match="gan: expected a StyleTransferGAN"):
        create_app(object())
    with pytest.raises(ValueError, match="max_side"):
        create_app(gan, max_side=4)
    with pytest.raises((TypeError, ValueError), match="max_bytes"):
        create_app(gan, max_bytes=0)


# -- fastgram serve: argument errors ------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--port", "70000"], "expected a port from 0 (any free one) to 65535, got '70000'"),
    (["--port", "web"], "expected a port"),
    (["--checkpoint", "/no/such/model.pt"], "no such file: /no/such/model.pt"),
    (["--max-side", "0"], "expected a positive integer"),
])
def test_serve_argument_errors(args, words, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["serve", *args])
    assert stop.value.code == 2 and words in capsys.readouterr().err


def test_serve_refuses_a_port_in_use(gan, tmp_path, capsys):
    model = gan.save(tmp_path / "tiny.pt")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = cli.main(["serve", "--checkpoint", str(model), "--port", str(port),
                           "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2
    assert err.startswith(f"fastgram serve: error: --host/--port: cannot listen on "
                          f"127.0.0.1:{port}") and "choose another --port" in err


def test_serve_names_the_missing_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "werkzeug.serving", None)
    assert cli.main(["serve"]) == 2
    assert "pip install 'fastgram[serve]'" in capsys.readouterr().err


def test_a_failing_job_reports_its_error_and_the_queue_goes_on():
    from fastgram.serve.jobs import JobQueue

    queue = JobQueue()
    try:
        def broken(report):
            report("stylising", 0.2)
            raise ValueError("style: something\nwent wrong")

        failed = queue.submit(broken)
        fine = queue.submit(lambda report: Image.new("RGB", (9, 7)))
        deadline = time.monotonic() + 10
        while fine.state != "done" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert failed.status()["state"] == "failed"
        assert failed.status()["error"] == "style: something went wrong"
        assert fine.status()["width"] == 9 and fine.png.startswith(b"\x89PNG")
    finally:
        queue.close()


class _RecordingGAN(StyleTransferGAN):
    """A model whose stylize takes preserve_color and records it."""

    def stylize(self, content, style=None, *, alpha=1.0, size=None, style_code=None,
                preserve_color=False):
        self.seen.append(preserve_color)
        return StyleTransferGAN.stylize(self, content, style, alpha=alpha, size=size,
                                        style_code=style_code)


class _OlderGAN(StyleTransferGAN):
    """A model whose stylize has no preserve_color parameter."""

    def stylize(self, content, style=None, *, alpha=1.0, size=None, style_code=None):
        return StyleTransferGAN.stylize(self, content, style, alpha=alpha, size=size,
                                        style_code=style_code)


def test_the_preserve_colour_box_reaches_stylize():
    gan = _RecordingGAN(size=32, device="cpu", generator="adain", vgg_weights=None)
    gan.seen = []
    client = create_app(gan, max_side=32).test_client()
    assert client.get("/api/info").get_json()["preserve_color"] is True
    for flag in ("1", "0"):
        started = client.post("/api/jobs", data={"content_sample": "coffee",
                                                 "style_sample": "grass", "preserve_color": flag})
        assert wait(client, started.get_json()["id"])["state"] == "done"
    assert gan.seen == [True, False]


def test_preserve_colour_is_refused_where_stylize_lacks_it():
    gan = _OlderGAN(size=32, device="cpu", generator="adain", vgg_weights=None)
    client = create_app(gan).test_client()
    assert client.get("/api/info").get_json()["preserve_color"] is False
    status, error = _post(client, content_sample="coffee", style_sample="grass",
                          preserve_color="1")
    assert status == 400 and error.startswith("preserve_color: this fastgram's stylize has no")


def test_preserve_colour_through_the_page_keeps_the_photos_chroma(gan, client):
    import inspect

    if "preserve_color" not in inspect.signature(gan.stylize).parameters:
        pytest.skip("StyleTransferGAN.stylize has no preserve_color here (issue 16 not merged)")
    chroma = {}
    for flag in ("0", "1"):
        started = client.post("/api/jobs", data={"content_sample": "coffee",
                                                 "style_sample": "grass", "preserve_color": flag})
        status = wait(client, started.get_json()["id"])
        png = client.get(f"/api/jobs/{status['id']}/result.png").data
        chroma[flag] = np.asarray(Image.open(io.BytesIO(png)).convert("YCbCr"), np.float32)[..., 1:]
    with Image.open(data.image_path("coffee")) as photo:
        photo = photo.convert("RGB").resize((64, 43), Image.BICUBIC).convert("YCbCr")
    original = np.asarray(photo, np.float32)[..., 1:]
    assert np.abs(chroma["1"] - original).mean() < 1.0 < np.abs(chroma["0"] - original).mean()
