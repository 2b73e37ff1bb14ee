"""The Flask application of ``fastgram serve``.

Routes: ``/`` the page; ``/api/info`` the bundled samples and limits;
``/samples/<name>`` a bundled image; ``POST /api/jobs`` starts a
stylisation (multipart: ``content``/``style`` files or
``content_sample``/``style_sample`` names, ``alpha``, ``preserve_color``);
``/api/jobs/<id>`` its state and progress; ``/api/jobs/<id>/result.png``
the result. Errors are JSON ``{"error": message}`` with status 400 (bad
input), 404 or 413 (too large).
"""

from __future__ import annotations

import importlib.resources
import inspect
import math

from PIL import Image

from fastgram import data
from fastgram.serve import uploads
from fastgram.serve.jobs import JobQueue

CONTENT_SAMPLES = data.CONTENT_IMAGES + data.HELD_OUT_CONTENT_IMAGES
STYLE_SAMPLES = data.STYLE_IMAGES + data.HELD_OUT_STYLE_IMAGES
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_SIDE = 1024


def create_app(gan, *, max_bytes: int = DEFAULT_MAX_BYTES, max_side: int = DEFAULT_MAX_SIDE):
    """A Flask app serving the page for the model ``gan``
    (a :class:`fastgram.StyleTransferGAN`).

    Args:
        max_bytes: largest accepted upload, per image.
        max_side: contents are scaled down to this longer side first, which
            bounds the time and memory of one request.
    """
    try:
        import flask
        from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
    except ImportError:
        raise ImportError("fastgram serve needs Flask; install it with "
                          "pip install 'fastgram[serve]'") from None
    from fastgram import validation

    if not (hasattr(gan, "stylize") and hasattr(gan, "generator")):
        raise TypeError(f"gan: expected a StyleTransferGAN, got {type(gan).__name__}")
    validation.integer(max_bytes, "max_bytes")
    validation.integer(max_side, "max_side", minimum=16)
    preserve = "preserve_color" in inspect.signature(gan.stylize).parameters

    app = flask.Flask(__name__)
    # Two images and the form fields; werkzeug refuses anything larger
    # before reading it.
    app.config["MAX_CONTENT_LENGTH"] = 2 * max_bytes + 100_000
    queue = JobQueue()
    app.extensions["fastgram_jobs"] = queue

    def refuse(message: str, status: int = 400):
        return flask.jsonify(error=message), status

    @app.errorhandler(uploads.UploadError)
    def bad_upload(exc):
        return refuse(str(exc))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return refuse(f"upload too large: at most {max_bytes / 1_000_000:.1f} MB per image", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return refuse(exc.description or exc.name, exc.code or 500)

    @app.get("/")
    def page():
        html = importlib.resources.files(__package__).joinpath("page.html").read_text("utf-8")
        return flask.Response(html, mimetype="text/html")

    @app.get("/api/info")
    def info():
        return flask.jsonify(content_samples=list(CONTENT_SAMPLES),
                             style_samples=list(STYLE_SAMPLES), preserve_color=preserve,
                             max_bytes=max_bytes, max_side=max_side,
                             formats=uploads.ALLOWED_TEXT)

    @app.get("/samples/<name>")
    def sample(name: str):
        if name not in CONTENT_SAMPLES + STYLE_SAMPLES:
            return refuse(f"no bundled image {name!r}", 404)
        return flask.send_file(data.image_path(name))

    @app.post("/api/jobs")
    def start():
        form, files = flask.request.form, flask.request.files
        content = _image(form, files, "content", CONTENT_SAMPLES, max_bytes)
        style = _image(form, files, "style", STYLE_SAMPLES, max_bytes)
        alpha = _alpha(form.get("alpha", "1"))
        keep_colour = form.get("preserve_color", "0") in ("1", "true", "on")
        if keep_colour and not preserve:
            raise uploads.UploadError("preserve_color: this fastgram's stylize has no "
                                      "preserve_color option; update fastgram")
        content = uploads.fit_within(content, max_side)

        def work(report):
            report("stylising", 0.2)
            options = {"preserve_color": True} if keep_colour else {}
            return gan.stylize(content, style=style, alpha=alpha, **options)

        job = queue.submit(work)
        return flask.jsonify(job.status()), 202

    @app.get("/api/jobs/<job_id>")
    def status(job_id: str):
        job = queue.get(job_id)
        if job is None:
            return refuse(f"no job {job_id!r} (finished jobs are kept for a while only)", 404)
        return flask.jsonify(job.status())

    @app.get("/api/jobs/<job_id>/result.png")
    def result(job_id: str):
        job = queue.get(job_id)
        if job is None or job.png is None:
            return refuse(f"no result for job {job_id!r}", 404)
        download = flask.request.args.get("download") == "1"
        response = flask.Response(job.png, mimetype="image/png")
        if download:
            response.headers["Content-Disposition"] = 'attachment; filename="stylized.png"'
        return response

    return app


def _image(form, files, field: str, samples, max_bytes: int) -> Image.Image:
    """The uploaded file ``field``, else the bundled sample named by
    ``<field>_sample``."""
    upload = files.get(field)
    if upload is not None and upload.filename:
        # Read into memory; the file is never saved anywhere.
        return uploads.read_image(field, upload.filename, upload.read(max_bytes + 1), max_bytes)
    name = form.get(f"{field}_sample", "")
    if not name:
        raise uploads.UploadError(f"{field}: upload an image or choose a bundled one")
    if name not in samples:
        raise uploads.UploadError(f"{field}_sample: expected one of {', '.join(samples)}, "
                                  f"got {name!r}")
    with Image.open(data.image_path(name)) as image:
        return image.convert("RGB")


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise uploads.UploadError(f"alpha: expected a number in [0, 1], got {text!r}")
    return value
