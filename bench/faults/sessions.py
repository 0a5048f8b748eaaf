"""The Redis phase: a second Portcullis with `sessions.store: redis://`, a real OpenID
Provider (npm oidc-provider with the tests' scripted login,
crates/test-util/src/oidc_provider.js) and redis-server. A browser logs in once; then
clients send /verify with its session cookie while Redis is killed and restarted."""

import asyncio
import http.cookiejar
import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.parse
import urllib.request

import procs
from load import Conn, reason_of

SECRET = "faults-client-secret-0123456789abcdef"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Sessions:
    def __init__(self, root, work, binary, peers):
        self.root, self.binary, self.peers = root, binary, peers
        self.work = os.path.join(work, "sessions")
        os.makedirs(self.work, exist_ok=True)
        (self.http, self.admin, self.redis_port, self.op_port) = procs.free_ports(4)
        self.public = f"http://127.0.0.1:{self.http}"
        self.rd = "http://127.0.0.1:9/app/"  # never fetched: the login ends at the 302 to it
        self.redis = self.op = self.pc = None

    # ------------------------------------------------------------------ processes
    def start_redis(self):
        # Append-only with fsync on every write: a session written before the kill is
        # there after the restart (a Redis that loses its data loses the sessions).
        self.redis = procs.Proc(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.work],
            os.path.join(self.work, "redis.log"),
        )

    async def start(self):
        self.start_redis()
        module = os.path.join(self.peers, "node/node_modules/oidc-provider/lib/index.js")
        if not os.path.exists(module):
            raise RuntimeError(f"{module} is missing: run scripts/install-peers")
        script = os.path.join(self.work, "oidc_provider.mjs")
        shutil.copyfile(os.path.join(self.root, "crates/test-util/src/oidc_provider.js"), script)
        clients = [{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [f"{self.public}/oauth2/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }]
        env = dict(os.environ, OP_MODULE=f"file://{module}", OP_PORT=str(self.op_port),
                   OP_CLIENTS=json.dumps(clients), OP_ACCESS_TTL="3600", NODE_ENV="test")
        self.op = procs.Proc("oidc-provider", ["node", script], os.path.join(self.work, "op.log"), env=env)
        issuer = f"http://127.0.0.1:{self.op_port}"
        await wait_port(self.op_port, 20, "oidc-provider")
        await wait_port(self.redis_port, 10, "redis-server")
        with open(os.path.join(self.work, "session.key"), "w") as f:
            f.write("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
        with open(os.path.join(self.work, "client.secret"), "w") as f:
            f.write(SECRET + "\n")
        config = f"""# written by scripts/faults (the Redis phase)
listen:
  http: 127.0.0.1:{self.http}
  admin: 127.0.0.1:{self.admin}
providers:
  - name: op
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    login:
      client_id: portcullis
      client_secret_file: {os.path.join(self.work, 'client.secret')}
      token_endpoint_auth: client_secret_post
sessions:
  public_url: {self.public}
  secret_file: {os.path.join(self.work, 'session.key')}
  cookie: {{secure: false}}
  store: redis://127.0.0.1:{self.redis_port}/0
  allowed_redirect_hosts: ["127.0.0.1"]
rules:
  - name: app
    match: {{path: /app/**}}
    login: op
"""
        path = os.path.join(self.work, "portcullis.yaml")
        with open(path, "w") as f:
            f.write(config)
        self.pc = procs.Portcullis(self.binary, path, (self.http, self.admin), self.work)
        self.pc.start()
        await wait_http(f"http://127.0.0.1:{self.admin}/readyz", 30, "sessions portcullis /readyz")
        self.cookie = await asyncio.get_running_loop().run_in_executor(None, self.log_in)

    def log_in(self):
        """The browser's login: /oauth2/start, the OP's scripted login, the callback."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        url = f"{self.public}/oauth2/start?rd={urllib.parse.quote(self.rd, safe='')}"
        for _ in range(20):
            if url.startswith(self.rd):
                break
            req = urllib.request.Request(url, headers={"Accept": "text/html"})
            try:
                r = opener.open(req, timeout=10)
                raise RuntimeError(f"login: {url} answered {r.status}, not a redirect")
            except urllib.error.HTTPError as e:
                if e.code not in (302, 303):
                    raise RuntimeError(f"login: {url} answered {e.code}: {e.read()[:200]!r}")
                url = urllib.parse.urljoin(url, e.headers["Location"])
        else:
            raise RuntimeError("login: too many redirects")
        for c in jar:
            if c.name == "portcullis_session":
                return f"portcullis_session={c.value}"
        raise RuntimeError("login: no portcullis_session cookie")

    def stop(self):
        for p in (self.pc.proc if self.pc else None, self.op, self.redis):
            if p is not None and not p.log.closed:
                p.stop()

    # ------------------------------------------------------------------ load
    def request(self, cookie):
        c = f"Cookie: {cookie}\r\n" if cookie else ""
        return (
            f"GET /verify HTTP/1.1\r\nHost: 127.0.0.1:{self.http}\r\nX-Forwarded-Method: GET\r\n"
            f"X-Forwarded-Proto: http\r\nX-Forwarded-Host: 127.0.0.1:{self.http}\r\n"
            f"X-Forwarded-Uri: /app/x\r\nAccept: application/json\r\n{c}\r\n"
        ).encode()

    async def client(self, results, stop, cookie, rate=20.0):
        conn = Conn(self.http)
        next_at = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1.0 / rate
            t0 = time.monotonic()
            status = reason = error = None
            try:
                status, _, body = await asyncio.wait_for(conn.request(self.request(cookie)), 5)
                reason = reason_of(body) if status != 200 else None
            except asyncio.TimeoutError:
                error = "timeout"
                conn.close()
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                error = type(e).__name__
                conn.close()
            results.append((t0, time.monotonic(), cookie is not None, status, reason, error))
            if next_at < time.monotonic() - 1.0:
                next_at = time.monotonic()
        conn.close()

    async def phase(self, seconds, tail):
        """Returns (timeline marks, results): Redis killed at t_kill, back at t_back."""
        results, stop = [], asyncio.Event()
        tasks = [asyncio.ensure_future(self.client(results, stop, self.cookie)) for _ in range(3)]
        tasks.append(asyncio.ensure_future(self.client(results, stop, None, rate=10.0)))
        await asyncio.sleep(min(2.0, seconds / 2))
        t_kill = time.monotonic()
        self.redis.signal(signal.SIGKILL)
        self.redis.popen.wait()
        await asyncio.sleep(seconds)
        self.start_redis()
        await wait_port(self.redis_port, 10, "redis-server again")
        t_back = time.monotonic()
        await asyncio.sleep(tail)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return t_kill, t_back, results


async def wait_port(port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


async def wait_http(url, timeout, what):
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await loop.run_in_executor(None, procs.http_status, url) == 200:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
