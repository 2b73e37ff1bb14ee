"""The local web page of ``fastgram serve``: upload a photo and a style (or
pick the bundled ones), set the strength, see and download the result.

Needs Flask (``pip install 'fastgram[serve]'``). Uploads are read into
memory and results kept there; nothing is written to disk.

>>> from fastgram.serve import create_app
>>> app = create_app(StyleTransferGAN.pretrained())
>>> app.run(host="127.0.0.1", port=7860)
"""

from fastgram.serve.app import create_app

__all__ = ["create_app"]
