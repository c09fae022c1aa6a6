"""``medseg serve``: the annotation web app and REST API on a folder (or the built-in sample)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from medseg.cli.arguments import ENCODER_BACKENDS
from medseg.cli.auto_options import add_auto_predict_options, auto_predict_options

NAME = "serve"
HELP = "annotation web app + REST API for interactive segmentation of a folder of images"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser``, in the order ``--help`` lists them."""
    parser.add_argument(
        "data_dir",
        nargs="?",
        type=Path,
        help="folder of images (2D files, NIfTI/NRRD volumes, DICOM series); labels are saved "
        "in DATA_DIR/labels. Default: the built-in sample CT in --sample-store",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    _add_model(parser)
    parser.add_argument(
        "--no-auth", action="store_true",
        help="do not require the access token (refused unless --host is a loopback address)",
    )  # fmt: skip
    parser.add_argument(
        "--sample-store", type=Path, default=None,
        help="where the sample CT is written when no DATA_DIR is given "
        "(default ~/.cache/medseg/sample_store)",
    )  # fmt: skip
    _add_limits(parser)
    parser.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="allow this browser origin to call the API (repeatable; default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--auto-model", type=Path, default=None, metavar="MODEL_DIR",
        help="a 'medseg auto' model folder: the app's Auto button fills labels with its "
        "automatic masks, which the prompts then correct",
    )  # fmt: skip
    add_auto_predict_options(parser)
    _add_dicomweb(parser)
    parser.add_argument("--open", action="store_true", help="open the app in a web browser")


def _add_model(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--backend`` and ``--threads``."""
    parser.add_argument(
        "--model", default="default",
        help="promptable model name (default: the best one, see medseg --help models) or a "
        "'medseg auto' model folder (= --auto-model FOLDER with the default model)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=ENCODER_BACKENDS, default=None,
        help="image-encoder runtime of the model (default: the model's own choice)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")


def _add_limits(parser: argparse.ArgumentParser) -> None:
    """The size limits: upload, decoded pixels and voxels, and the caches' memory budget."""
    parser.add_argument("--max-upload-mb", type=int, default=512, help="largest upload in MiB")
    parser.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="largest 2D image (pixels) the server decodes, checked from the file header "
        "(default 100000000)",
    )  # fmt: skip
    parser.add_argument(
        "--max-voxels", type=int, default=None, metavar="N",
        help="largest 3D volume (voxels) the server decodes, checked from the file header "
        "(default 400000000: a 512 x 512 x 600 CT is 157 M)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-mb", type=int, default=2048, metavar="MB",
        help="memory budget in MiB of all the server's caches together (decoded images, "
        "embeddings, automatic masks); least recently used entries are dropped first",
    )  # fmt: skip


def _add_dicomweb(parser: argparse.ArgumentParser) -> None:
    """``--dicomweb`` (a DICOMweb server's series), its disk cache and ``--dicomweb-push``."""
    parser.add_argument(
        "--dicomweb", default=None, metavar="URL",
        help="also list the image series of this DICOMweb server (QIDO-RS), e.g. Orthanc's "
        "http://127.0.0.1:8042/dicom-web (a .../studies/STUDY URL: that study only); a series "
        "is fetched (WADO-RS) into DATA_DIR/.dicomweb/ when opened",
    )  # fmt: skip
    parser.add_argument(
        "--dicomweb-cache-mb", type=int, default=4096, metavar="MB",
        help="disk space in MiB of fetched DICOMweb series (least recently used removed first)",
    )  # fmt: skip
    parser.add_argument(
        "--dicomweb-push", action="store_true",
        help="with --dicomweb: a label saved from a MONAI Label viewer on a DICOMweb series is "
        "also stored on the server as a DICOM-SEG (STOW-RS)",
    )  # fmt: skip


def _config(args: argparse.Namespace) -> object:
    from medseg.errors import InputError
    from medseg.server.config import MiB, ServerConfig, default_sample_store
    from medseg.server.datastore import write_sample_store

    if args.data_dir is None:
        data_dir = write_sample_store(args.sample_store or default_sample_store())
    else:
        data_dir = args.data_dir.expanduser()
        if not data_dir.is_dir():
            raise InputError(f"{data_dir}: not a folder")
    options = {"backend": args.backend, "num_threads": args.threads}
    limits = {k: getattr(args, k) for k in ("max_pixels", "max_voxels")}
    return ServerConfig(
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        model=args.model,
        model_options=tuple((k, v) for k, v in options.items() if v is not None),
        auth=not args.no_auth,
        max_upload_bytes=args.max_upload_mb * MiB,
        cache_bytes=args.cache_mb * MiB,
        cors_origins=tuple(args.cors_origin),
        auto_model=args.auto_model,
        auto_options=tuple(auto_predict_options(args).items()),
        dicomweb=args.dicomweb,
        dicomweb_cache_bytes=args.dicomweb_cache_mb * MiB,
        dicomweb_push=args.dicomweb_push,
        **{k: v for k, v in limits.items() if v is not None},
    )


def _bind(host: str, port: int) -> socket.socket:
    from medseg.errors import InputError

    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import uvicorn

    from medseg.io.limits import set_default_limits
    from medseg.server.app import create_app, load_model
    from medseg.server.sessions import warm_up

    config = _config(args)
    set_default_limits(config.size_limits)  # every image this process decodes
    sock = _bind(config.host, config.port)
    log.info("datastore: %s", config.data_dir)
    log.info("loading model %s ...", config.model)
    model = load_model(config)
    log.info("model ready (warm-up %.0f ms)", warm_up(model))
    app = create_app(config, model=model)
    port = sock.getsockname()[1]
    url = dataclasses.replace(config, port=port).url(app.state.medseg.token)
    sys.stdout.write(f"medseg annotation server on {config.data_dir}\n  open {url}\n")
    if config.dicomweb:
        sys.stdout.write(f"  DICOMweb series from {app.state.medseg.datastore.remote.ref}\n")
    sys.stdout.flush()
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    )
    server.run(sockets=[sock])
    return 0
