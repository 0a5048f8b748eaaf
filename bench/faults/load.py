"""Steady load: several keep-alive HTTP/1.1 clients per target, each request's outcome
checked against what the oracle expects for its token at the moment it was sent."""

import asyncio
import json
import random
import time

# Token kinds in the mix and their weights (per 20 requests).
MIX = (
    ["valid_corp"] * 8
    + ["valid_rot"] * 3
    + ["valid_old"] * 1
    + ["badsig"] * 3
    + ["expired"] * 3
    + ["missing"] * 2
    + ["junk"] * 2  # unknown kids: only in the phase that turns them on
)


class Oracle:
    """What each token kind should get, from what the issuer publishes right now.

    A valid token whose key is published: 200. A key taken out of the published set at
    time r: its tokens may still pass until r + grace (Portcullis refreshes on a timer),
    and must be 401 after. Everything else in the mix: 401."""

    def __init__(self, tokens, grace):
        self.tokens = tokens  # kind -> list of tokens (None: no token)
        self.grace = grace
        self.removed_at = {}  # kind -> monotonic time its key left the published set
        self.disabled = set()  # kinds taken out of the mix

    def remove_key(self, kind):
        self.removed_at[kind] = time.monotonic()

    def expect(self, kind, t):
        if not kind.startswith("valid"):
            return "deny"
        r = self.removed_at.get(kind)
        if r is None or t < r:
            return "allow"
        return "either" if t < r + self.grace else "deny"


class Result:
    __slots__ = ("t0", "t1", "target", "kind", "expected", "status", "reason", "error", "verdict")

    def __init__(self, t0, t1, target, kind, expected, status, reason, error):
        self.t0, self.t1, self.target, self.kind = t0, t1, target, kind
        self.expected, self.status, self.reason, self.error = expected, status, reason, error
        self.verdict = classify(expected, status, reason, error)


def classify(expected, status, reason, error):
    """ok | false_allow | false_deny | expected_deny | error."""
    if error is not None:
        return "error"
    if status == 200:
        return "false_allow" if expected == "deny" else "ok"
    # A deny is Portcullis's when its body names a reason code (behind NGINX the deny
    # page is fetched from Portcullis too); a bare 403 from Envoy or a 500 from NGINX
    # means Portcullis could not be asked: an error, not a decision.
    if status in (401, 403) and reason:
        if expected == "allow":
            return "false_deny"
        if expected == "either":
            return "ok"
        return "ok" if status == 401 else "error"
    return "error"


class Conn:
    def __init__(self, port):
        self.port = port
        self.reader = None
        self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self):
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def request(self, raw):
        """Sends one request, returns (status, headers, body)."""
        if self.writer is None:
            await self.open()
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                body += chunk[:-2]
                if size == 0:
                    break
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


def build_request(path, token):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: app.faults.test\r\n{auth}Accept: application/json\r\n\r\n"
    ).encode()


def reason_of(body):
    try:
        return json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return None


class Load:
    """Runs `clients` paced clients per target until stopped; every result is kept."""

    def __init__(self, targets, oracle, clients, rate, timeout=5.0, seed=18):
        self.targets = targets  # name -> (port, path)
        self.oracle = oracle
        self.clients = clients
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.results = []
        self.running = False
        self.tasks = []
        self.seed = seed

    def start(self):
        self.running = True
        n = 0
        for name, (port, path) in self.targets.items():
            for i in range(self.clients):
                n += 1
                self.tasks.append(asyncio.ensure_future(self._client(name, port, path, n)))

    async def stop(self):
        self.running = False
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(self, name, port, path, n):
        rng = random.Random(self.seed * 1000 + n)
        mix = list(MIX)
        rng.shuffle(mix)
        conn = Conn(port)
        i = rng.randrange(len(mix))
        next_at = time.monotonic() + rng.random() * self.interval
        while self.running:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.interval
            kind = mix[i % len(mix)]
            i += 1
            if kind in self.oracle.disabled:
                continue
            pool = self.oracle.tokens[kind]
            token = pool[i % len(pool)]
            await self.one(conn, name, path, kind, token)
            if next_at < time.monotonic() - 1.0:
                next_at = time.monotonic()  # fell behind (a stall): do not burst
        conn.close()

    async def one(self, conn, name, path, kind, token):
        t0 = time.monotonic()
        expected = self.oracle.expect(kind, t0)
        status = reason = error = None
        try:
            status, _, body = await asyncio.wait_for(
                conn.request(build_request(path, token)), self.timeout
            )
            if status != 200:
                reason = reason_of(body)
        except asyncio.TimeoutError:
            error = "timeout"
            conn.close()
        except ConnectionRefusedError:
            error = "refused"
            conn.close()
            await asyncio.sleep(0.05)
        except (ConnectionResetError, BrokenPipeError):
            error = "reset"
            conn.close()
        except asyncio.IncompleteReadError as e:
            # Closed by the server: before any byte of an answer on a reused
            # connection is what a keep-alive client retries; count it apart.
            error = "closed_idle" if not e.partial else "closed_mid_answer"
            conn.close()
        except (OSError, ValueError, IndexError) as e:
            error = type(e).__name__
            conn.close()
        self.results.append(
            Result(t0, time.monotonic(), name, kind, expected, status, reason, error)
        )
        return self.results[-1]


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]
