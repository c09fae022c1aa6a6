"""``medseg serve``: a browser annotation app and REST API for promptable segmentation.

>>> from medseg.server import ServerConfig, create_app
>>> app = create_app(ServerConfig(data_dir="images/"))   # run with uvicorn

See ``docs/server.md`` for the endpoints, security model and the browser app.
"""

from __future__ import annotations

from medseg.server.app import create_app
from medseg.server.config import ServerConfig

__all__ = ["create_app", "ServerConfig"]
