"""A JWKS endpoint the harness controls: one document per path, and a mode that the
phases switch (up, down, slow, garbage, 500). Loopback only, HTTP/1.1, one request
per connection (`Connection: close`)."""

import asyncio
import json


class JwksServer:
    MODES = ("up", "down", "slow", "garbage", "error500")

    def __init__(self, port):
        self.port = port
        self.docs = {}  # path -> list of public JWKs
        self.mode = "up"
        self.slow_seconds = 10.0
        self.delay = {}  # path -> seconds every answer takes (a distant issuer)
        self.fetches = {}  # path -> count of requests answered (any mode)
        self._server = None
        self._conns = set()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def publish(self, path, keys):
        self.docs[path] = list(keys)

    def kids(self, path):
        return {k["kid"] for k in self.docs.get(path, [])}

    async def start(self):
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def set_mode(self, mode):
        assert mode in self.MODES, mode
        if mode == "down" and self._server is not None:
            # Down means down: nothing listens, and open connections are cut.
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            for w in list(self._conns):
                w.transport.abort()
        elif mode != "down" and self._server is None:
            await self.start()
        self.mode = mode

    async def stop(self):
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, reader, writer):
        self._conns.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            self.fetches[path] = self.fetches.get(path, 0) + 1
            mode = self.mode
            await asyncio.sleep(self.delay.get(path, 0.0))
            if mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            if mode == "garbage":
                status, body = "200 OK", b'{"keys": [{"kty": "EC", "crv": \x00garbage'
            elif mode == "error500":
                status, body = "500 Internal Server Error", b"upstream exploded\n"
            elif path in self.docs:
                status = "200 OK"
                body = json.dumps({"keys": self.docs[path]}).encode()
            else:
                status, body = "404 Not Found", b"no such document\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
