"""Hostile connections to Portcullis's http listener while valid traffic goes on:
idle keep-alive connections, partial headers trickled a byte at a time (slowloris),
and connections that send garbage. Counts what the server did with them."""

import asyncio
import json
import os
import sys


class Flood:
    def __init__(self, port, idle, partial, garbage_loops):
        self.port = port
        self.idle = idle
        self.partial = partial
        self.garbage_loops = garbage_loops
        self.running = False
        self.tasks = []
        self.writers = []
        self.opened = 0
        self.open_failed = 0
        self.closed_by_server = 0
        self.garbage_sent = 0
        self.garbage_answers = {}

    async def start(self):
        self.running = True
        for i in range(0, self.idle, 100):
            await asyncio.gather(*(self._open_idle() for _ in range(min(100, self.idle - i))))
        for _ in range(self.partial):
            self.tasks.append(asyncio.ensure_future(self._slowloris()))
        for _ in range(self.garbage_loops):
            self.tasks.append(asyncio.ensure_future(self._garbage()))

    async def _open_idle(self):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 2)
        except (OSError, asyncio.TimeoutError):
            self.open_failed += 1
            return
        self.opened += 1
        self.writers.append(w)
        self.tasks.append(asyncio.ensure_future(self._watch(r)))

    async def _watch(self, reader):
        try:
            while await reader.read(4096):
                pass
            self.closed_by_server += 1
        except (OSError, asyncio.CancelledError):
            pass

    async def _slowloris(self):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.open_failed += 1
            return
        self.opened += 1
        self.writers.append(w)
        watcher = asyncio.ensure_future(self._watch(r))
        self.tasks.append(watcher)
        head = b"GET /verify HTTP/1.1\r\nHost: app.faults.test\r\nX-Slow: " + b"a" * 4096
        try:
            for b in head:
                if not self.running or watcher.done():
                    return
                w.write(bytes([b]))
                await w.drain()
                await asyncio.sleep(0.5)
        except OSError:
            pass

    async def _garbage(self):
        while self.running:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 2
                )
                w.write(os.urandom(2048) + b"\r\n\r\n")
                await w.drain()
                self.garbage_sent += 1
                try:
                    answer = await asyncio.wait_for(r.read(64), 2)
                    key = answer.split(b"\r\n", 1)[0].decode("latin-1")[:40] or "(closed)"
                except asyncio.TimeoutError:
                    key = "(no answer in 2 s)"
                self.garbage_answers[key] = self.garbage_answers.get(key, 0) + 1
                w.transport.abort()
            except (OSError, asyncio.TimeoutError):
                self.open_failed += 1
            await asyncio.sleep(0.02)

    async def stop(self):
        self.running = False
        for w in self.writers:
            w.transport.abort()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class FloodProcess:
    """The same flood in a process of its own, so that its busy garbage loops and its
    thousands of watchers do not slow the event loop that sends and times the valid
    requests: the latencies the phase reports are then the server's, not ours.

    Same interface as Flood (start, stop, and the counters once stopped)."""

    def __init__(self, port, idle, partial, garbage_loops, python=None):
        self.args = [str(port), str(idle), str(partial), str(garbage_loops)]
        self.python = python or sys.executable
        self.proc = None
        self.opened = self.open_failed = self.closed_by_server = self.garbage_sent = 0
        self.garbage_answers = {}

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            self.python, os.path.abspath(__file__), *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"flood process did not start: {line!r}")

    async def stop(self):
        self.proc.stdin.close()
        out = await asyncio.wait_for(self.proc.stdout.read(), 60)
        await self.proc.wait()
        stats = json.loads(out)
        self.opened = stats["opened"]
        self.open_failed = stats["open_failed"]
        self.closed_by_server = stats["closed_by_server"]
        self.garbage_sent = stats["garbage_sent"]
        self.garbage_answers = stats["garbage_answers"]


async def _child(port, idle, partial, garbage_loops):
    f = Flood(port, idle, partial, garbage_loops)
    await f.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    # The parent closes our stdin when the phase ends.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    await f.stop()
    json.dump({
        "opened": f.opened, "open_failed": f.open_failed,
        "closed_by_server": f.closed_by_server, "garbage_sent": f.garbage_sent,
        "garbage_answers": f.garbage_answers,
    }, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_child(*(int(a) for a in sys.argv[1:5])))
