"""The app under uvicorn. Stopping first ends the live streams and their clients' endless responses
(SSE, MJPEG) and the uploads still arriving (503), which uvicorn's graceful shutdown would otherwise wait
for and then cancel with a traceback; `GRACE_S` bounds the rest."""

from __future__ import annotations

import uvicorn

GRACE_S = 10.0  # how long requests still running at shutdown may take


class ZooServer(uvicorn.Server):
    """A uvicorn Server that closes the app's live streams when it starts shutting down."""

    def __init__(self, app, host: str, port: int, **settings):
        settings.setdefault("timeout_graceful_shutdown", GRACE_S)
        super().__init__(uvicorn.Config(app, host=host, port=port, server_header=False, **settings))
        self.app = app

    async def shutdown(self, sockets=None) -> None:
        self.app.state.zoo.stop()
        await super().shutdown(sockets)
