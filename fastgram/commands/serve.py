"""``fastgram serve``: a local web page to stylise photos with a model."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from fastgram.commands import CommandError
from fastgram.commands import arguments as types

HELP = "serve a local web page to stylise photos (needs pip install 'fastgram[serve]')"


def port(text: str) -> int:
    """0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 (any free one) to 65535, "
                                         f"got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, type=types.existing_file,
                        help="a model saved by StyleTransferGAN.save or a training checkpoint.pt "
                             "(default: the starter model shipped with fastgram)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=port, default=7860,
                        help="port to listen on (default 7860; 0: any free port)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--max-upload-mb", type=types.positive_float, default=10.0,
                        help="largest accepted upload per image, in MB (default 10)")
    parser.add_argument("--max-side", type=types.positive_int, default=1024,
                        help="photos are scaled down to this longer side first (default 1024)")


def run(args: argparse.Namespace) -> int:
    try:
        from werkzeug.serving import make_server

        from fastgram.serve import create_app
    except ImportError:
        raise CommandError("serve needs Flask; install it with pip install 'fastgram[serve]'") \
            from None
    from fastgram.transfer import StyleTransferGAN

    if args.max_side < 16:
        raise CommandError(f"--max-side: expected at least 16, got {args.max_side}")
    types.check_backend()
    if args.checkpoint is None:
        gan = StyleTransferGAN.pretrained(device=args.device)
    else:
        gan = StyleTransferGAN.load(args.checkpoint, device=args.device)
    app = create_app(gan, max_bytes=int(args.max_upload_mb * 1_000_000), max_side=args.max_side)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit) as exc:  # werkzeug exits on a port in use
        reason = getattr(exc, "strerror", None) or "address in use or not available"
        raise CommandError(f"--host/--port: cannot listen on {args.host}:{args.port} ({reason}); "
                           "choose another --port (0 picks a free one)") from None
    host = args.host if ":" not in args.host else f"[{args.host}]"
    print(f"fastgram serve: open http://{host}:{server.server_port}/ (Ctrl+C stops)", flush=True)
    if not _loopback(args.host):
        print(f"fastgram serve: listening on {args.host}, reachable from other computers",
              file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.extensions["fastgram_jobs"].close()
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
