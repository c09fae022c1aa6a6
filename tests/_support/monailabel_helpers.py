"""Helpers of ``tests/server/test_monailabel.py``: the test volume, label file checks,
multipart answers of ``/infer`` and a live uvicorn server for monailabel's client.

The test volume is ``(Z, Y, X) = (3, 40, 48)`` with a bright ball at ``(1, 20, 24)`` on a
non-trivial grid (spacing, origin, flipped axes); clicks are MONAI Label's ``[i, j, k]`` =
``(x, y, z)`` voxel indices.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from medseg.io.image import Image
from medseg.io.writers import save

__all__ = [
    "SHAPE", "CENTRE", "CLICK", "SPACING", "ORIGIN", "DIRECTION", "ball_image", "ball_mask",
    "write_ball", "read_label", "assert_on_ball_grid", "multipart", "live_server", "free_port",
]  # fmt: skip

SHAPE = (3, 40, 48)
CENTRE = (1, 20, 24)  # (z, y, x)
CLICK = [24, 20, 1]  # [i, j, k]
SPACING = (2.0, 0.9, 0.8)  # (z, y, x) mm
ORIGIN = (-20.0, 15.0, 40.0)  # (x, y, z) mm
DIRECTION = np.diag([-1.0, -1.0, 1.0])


def ball_image() -> Image:
    """The test volume ``(3, 40, 48)`` int16: a ball of value 300 (radius 9 voxels in x/y)."""
    z, y, x = np.mgrid[tuple(slice(0, n) for n in SHAPE)]
    ball = ((z - CENTRE[0]) * 2.5) ** 2 + (y - CENTRE[1]) ** 2 + (x - CENTRE[2]) ** 2 <= 81
    rng = np.random.default_rng(1)
    arr = (40 + 8 * rng.standard_normal(SHAPE)).astype(np.int16)
    arr[ball] = 300
    return Image(arr, spacing=SPACING, origin=ORIGIN, direction=DIRECTION, modality="CT")


def ball_mask() -> np.ndarray:
    """The ball, ``(3, 40, 48)`` bool."""
    return ball_image().array == 300


def write_ball(folder: Path, name: str = "ball.nii.gz") -> Path:
    """The test volume written as ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    return save(ball_image(), folder / name)


def read_label(data: bytes, suffix: str, folder: Path) -> Any:
    """The label file ``data`` as a ``SimpleITK.Image``."""
    import SimpleITK as sitk

    path = folder / f"result{suffix}"
    path.write_bytes(data)
    return sitk.ReadImage(str(path))


def assert_on_ball_grid(label: Any) -> np.ndarray:
    """Checks that a SimpleITK label image has the test volume's grid; returns its array
    ``(Z, Y, X)``."""
    import SimpleITK as sitk

    assert label.GetSize() == SHAPE[::-1]
    np.testing.assert_allclose(label.GetSpacing(), SPACING[::-1])
    np.testing.assert_allclose(label.GetOrigin(), ORIGIN)
    np.testing.assert_allclose(np.reshape(label.GetDirection(), (3, 3)), DIRECTION)
    return sitk.GetArrayFromImage(label)


def multipart(response: Any) -> tuple[dict[str, Any], str, bytes]:
    """(``params`` JSON, file name, file bytes) of a multipart ``/infer`` answer."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + response.content)
    parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
    assert set(parts) == {"params", "image"}
    params = json.loads(parts["params"].get_content())
    image = parts["image"]
    return params, image.get_filename(), image.get_payload(decode=True)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", app.state.medseg.config.port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{app.state.medseg.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
