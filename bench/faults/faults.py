"""The fault-injection harness (issue 18). Run it through scripts/faults.

Portcullis (`serve`), NGINX (examples/nginx) and Envoy (examples/envoy/http.yaml) on
127.0.0.1; a JWKS endpoint this process controls; paced keep-alive clients sending
valid, bad-signature, expired and missing tokens, each answer checked against what
the issuer publishes at the moment the request was sent. Phases inject one fault each.
"""

import argparse
import asyncio
from collections import Counter
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time

import jwt

import procs
import report
from flood import FloodProcess
from jwks import JwksServer
from sessions import Sessions
from load import Conn, Load, Oracle, build_request

ISS_CORP = "https://corp.faults.test"
ISS_ROT = "https://rot.faults.test"
AUD = "faults-api"


# ------------------------------------------------------------------ keys and tokens
class Keys:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.pem, self.jwk = {}, {}

    def make(self, kid):
        path = os.path.join(self.work, f"{kid}.pem")
        out = subprocess.run(
            [self.binary, "keygen", "--alg", "ES256", "--kid", kid, "--out", path],
            check=True, capture_output=True, text=True,
        )
        self.jwk[kid] = json.loads(out.stdout)["keys"][0]
        self.pem[kid] = open(path).read()

    def mint(self, kid, iss, n, exp_in=7200, header_kid=None, sub="alice"):
        now = int(time.time())
        return [
            jwt.encode(
                {"iss": iss, "aud": AUD, "sub": f"{sub}{i}", "iat": now - 5, "exp": now + exp_in,
                 "jti": f"{kid}-{i}-{random.random()}"},
                self.pem[kid], algorithm="ES256", headers={"kid": header_kid or kid},
            )
            for i in range(n)
        ]


# ------------------------------------------------------------------ config
def config_text(ports, jwks, timeout="2s"):
    http, admin, grpc = ports
    # NGINX and Envoy here send traffic without asking /readyz, as many set-ups do:
    # the documented setting for them holds the listeners until the keys are in.
    return f"""# written by scripts/faults
listen:
  http: 127.0.0.1:{http}
  grpc: 127.0.0.1:{grpc}
  admin: 127.0.0.1:{admin}
startup:
  wait_for_keys: 5s
providers:
  - name: corp
    issuer: {ISS_CORP}
    audiences: [{AUD}]
    jwks:
      uri: {jwks.url('/corp.json')}
      refresh: 1s
      min_refresh: 1s
      timeout: {timeout}
    algorithms: [ES256]
  - name: rot
    issuer: {ISS_ROT}
    audiences: [{AUD}]
    jwks:
      uri: {jwks.url('/rot.json')}
    algorithms: [ES256]
rules:
  - name: default
    match: {{}}
"""


def broken_configs(good):
    return [
        ("empty file", ""),
        ("YAML syntax error", good.replace("rules:\n", "rules: [\n", 1)),
        ("unknown key", good + "bogus_key: 1\n"),
        ("no rules", good.split("rules:")[0]),
        ("truncated mid-file", good[: len(good) // 2]),
    ]


def write(path, text):
    with open(path, "w") as f:  # truncate then write, as editors do
        f.write(text)


# ------------------------------------------------------------------ the run
class Run:
    def __init__(self, args, root):
        self.args = args
        self.root = root
        self.short = args.short
        self.work = tempfile.mkdtemp(prefix="portcullis-faults.")
        self.phase_s = args.phase_seconds or (4.0 if self.short else 20.0)
        self.tail_s = 2.0 if self.short else 8.0
        self.soak_s = args.soak_seconds or (20.0 if self.short else 600.0)
        self.phases = []
        self.baseline = self.flood = self.soak = self.sigterm = None
        self.readyz = []
        self.rss = []
        self.procs = []
        self.sampling = True

    def log(self, msg):
        print(f"[faults {time.monotonic() - self.t_begin:6.1f}s] {msg}", file=sys.stderr, flush=True)

    async def setup(self):
        a = self.args
        self.t_begin = time.monotonic()
        keys = Keys(a.bin, self.work)
        for kid in ("corp-a", "corp-old", "rot-1", "rot-2", "rot-3", "evil"):
            keys.make(kid)
        self.keys = keys
        self.tokens = {
            "valid_corp": keys.mint("corp-a", ISS_CORP, 8),
            "valid_old": keys.mint("corp-old", ISS_CORP, 4),
            "valid_rot": keys.mint("rot-1", ISS_ROT, 4),
            "badsig": keys.mint("evil", ISS_CORP, 4, header_kid="corp-a"),
            "expired": keys.mint("corp-a", ISS_CORP, 4, exp_in=-600),
            "missing": [None],
            "junk": [t for i in range(16) for t in keys.mint("evil", ISS_ROT, 1, header_kid=f"junk-{i}")],
        }
        self.next_rot = {
            "rot-2": keys.mint("rot-2", ISS_ROT, 4),
            "rot-3": keys.mint("rot-3", ISS_ROT, 4),
        }
        (http, admin, jwks_port, ng_main, ng_ingress, upstream, env_listen, env_admin,
         grpc, envg_listen, envg_admin) = procs.free_ports(11)
        self.jwks = JwksServer(jwks_port)
        self.jwks.publish("/corp.json", [keys.jwk["corp-a"], keys.jwk["corp-old"]])
        self.jwks.publish("/rot.json", [keys.jwk["rot-1"]])
        await self.jwks.start()
        self.ports = (http, admin, grpc)
        self.config_path = os.path.join(self.work, "portcullis.yaml")
        self.good = config_text(self.ports, self.jwks)
        write(self.config_path, self.good)
        self.pc = procs.Portcullis(a.bin, self.config_path, self.ports[:2], self.work)
        self.pc.start()
        self.t_pc_start = time.monotonic()
        await self.wait(lambda: self.status(admin, "/readyz"), 200, 30, "portcullis /readyz")
        self.nginx = procs.start_nginx(self.root, self.work, ng_main, ng_ingress, http, upstream)
        self.envoy = procs.start_envoy(
            self.root, self.work, procs.envoy_binary(a.python), env_listen, env_admin, http, upstream
        )
        # Envoy with ext_authz over gRPC (examples/envoy/grpc.yaml) on the grpc listener.
        self.envoy_grpc = procs.start_envoy(
            self.root, self.work, procs.envoy_binary(a.python), envg_listen, envg_admin, grpc, upstream,
            mode="grpc",
        )
        self.procs += [self.nginx, self.envoy, self.envoy_grpc]
        self.targets = {
            "direct": (http, "/verify"),
            "nginx": (ng_main, "/orders/1"),
            "envoy": (env_listen, "/orders/1"),
            "envoy-grpc": (envg_listen, "/orders/1"),
        }
        # Every target routes: a valid token is allowed, no token is refused (401).
        for name, (port, path) in self.targets.items():
            tok = self.tokens["valid_corp"][0]
            await self.wait(lambda: self.status(port, path, tok), 200, 30, f"{name} allows a valid token")
            st = await self.status(port, path, None)
            if st != 401:
                raise RuntimeError(f"{name}: no token answered {st}, not 401")
        self.oracle = Oracle(self.tokens, grace=1.0 + 2.0 + 2.0)  # refresh + timeout + margin
        self.oracle.disabled.add("junk")
        rate = a.rate or 20.0
        self.load = Load(self.targets, self.oracle, clients=a.clients, rate=rate)
        self.log(f"ready: work dir {self.work}; {a.clients} clients x {len(self.targets)} targets at {rate}/s each")

    async def status(self, port, path, token=None):
        c = Conn(port)
        try:
            st, _, _ = await asyncio.wait_for(c.request(build_request(path, token)), 2)
            return st
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            return None
        finally:
            c.close()

    async def wait(self, probe, want, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await probe() == want:
                return time.monotonic()
            await asyncio.sleep(0.05)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

    async def sample(self):
        n = 0
        while self.sampling:
            t = time.monotonic()
            self.readyz.append((t, await self.status(self.ports[1], "/readyz")))
            if n % 5 == 0 and self.pc.proc.alive():
                self.rss.append((t, self.pc.proc.rss_kib()))
            n += 1
            await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - t)))

    async def metrics(self):
        """The counters the notes quote: JWKS fetches and config reloads by outcome."""
        c = Conn(self.ports[1])
        try:
            raw = b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
            st, _, body = await asyncio.wait_for(c.request(raw), 2)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            return {}
        finally:
            c.close()
        out = {}
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith(("portcullis_jwks_fetches_total", "portcullis_config_reloads_total")):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def log_bytes(self):
        try:
            return os.path.getsize(self.pc.proc.log_path)
        except OSError:
            return 0

    # -------------------------------------------------------------- phase helpers
    async def begin(self, name, expectation):
        p = report.PhaseRecord(name, expectation)
        p.t_start = time.monotonic()
        p.log0 = (self.pc.proc.log_path, self.log_bytes())
        self.phases.append(p)
        self.log(f"phase {name}")
        p.metrics0 = await self.metrics()
        return p

    async def finish(self, p):
        """Notes from the counters and the log, at the end of a phase."""
        m1 = await self.metrics()
        m0 = getattr(p, "metrics0", None)
        if m0 is not None and m1:
            d = {k: v - m0.get(k, 0.0) for k, v in m1.items() if v - m0.get(k, 0.0) > 0}
            if d:
                p.notes.append("counters: " + ", ".join(f"{k.replace('portcullis_', '')} +{v:.0f}" for k, v in sorted(d.items())))
        path, b0 = p.log0
        if path == self.pc.proc.log_path:
            grown = self.log_bytes() - b0
            p.notes.append(f"Portcullis log: {grown / 1024:.0f} KiB in {p.t_end - p.t_start:.0f} s ({grown / 1024 / max(0.1, p.t_end - p.t_start):.0f} KiB/s)")

    async def hold(self, p, seconds):
        await asyncio.sleep(seconds)

    async def lift_and_tail(self, p):
        p.t_lifted = time.monotonic()
        await asyncio.sleep(self.tail_s)
        p.t_end = time.monotonic()
        await self.finish(p)

    async def jwks_fault(self, mode, expectation):
        p = await self.begin(f"jwks {mode}", expectation)
        f0 = dict(self.jwks.fetches)
        await self.jwks.set_mode(mode)
        await asyncio.sleep(self.phase_s)
        await self.jwks.set_mode("up")
        p.notes.append(
            f"JWKS requests during the fault: {self.jwks.fetches.get('/corp.json', 0) - f0.get('/corp.json', 0)} (corp, refresh 1s)"
        )
        await self.lift_and_tail(p)

    # -------------------------------------------------------------- phases
    def want(self, group):
        """Whether `--only` (a comma list of PHASE_GROUPS; default all) names this group."""
        return not self.args.only or group in self.args.only.split(",")

    async def phases_all(self):
        p = await self.begin("baseline", "every answer as the oracle says")
        await asyncio.sleep(self.phase_s)
        p.t_end = time.monotonic()
        await self.finish(p)
        self.baseline = p

        if self.want("jwks"):
            self.jwks.slow_seconds = 3.0 if self.short else 10.0
            await self.jwks_fault("down", "nothing listens: last good keys kept, valid tokens 200, /readyz 200")
            await self.jwks_fault("slow", f"answers after {self.jwks.slow_seconds:.0f} s (fetch timeout 2 s): last good keys kept")
            await self.jwks_fault("garbage", "a 200 whose body is no JWKS: last good keys kept")
            await self.jwks_fault("error500", "500s: last good keys kept")
        if self.want("rotation"):
            await self.rotation_phase()

        if self.want("removed"):
            p = await self.begin("key removed", "corp-old leaves the JWKS: its tokens pass until the refresh (grace 5 s), then 401 key_not_found (counted as expected denies)")
            self.jwks.publish("/corp.json", [self.keys.jwk["corp-a"]])
            self.oracle.remove_key("valid_old")
            await asyncio.sleep(max(self.phase_s, self.oracle.grace + 1.0))
            await self.lift_and_tail(p)

        if self.want("flood"):
            await self.flood_phase()
        if self.want("junk"):
            await self.junk_phase()
        if self.want("reload"):
            await self.reload_phase(by_signal=False)
            await self.reload_phase(by_signal=True)

        if self.want("tuning"):
            p = await self.begin("reload tuning only, JWKS down", "JWKS down, then a reload that changes only jwks.timeout: the keys carry over, valid tokens 200, /readyz 200")
            await self.jwks.set_mode("down")
            await asyncio.sleep(1.0)
            write(self.config_path, config_text(self.ports, self.jwks, timeout="3s"))
            self.pc.proc.signal(signal.SIGHUP)
            await asyncio.sleep(self.phase_s)
            await self.jwks.set_mode("up")
            write(self.config_path, self.good)
            self.pc.proc.signal(signal.SIGHUP)
            await self.lift_and_tail(p)

        if self.want("redis"):
            await self.redis_phase()
        if self.want("sigterm"):
            await self.sigterm_phase()

        if self.want("soak"):
            p = await self.begin("soak", f"{self.soak_s:.0f} s of the same mix: RSS growth < 10 %, /readyz steady")
            await asyncio.sleep(self.soak_s)
            p.t_end = time.monotonic()
            await self.finish(p)
            self.soak = p

    async def rotation_phase(self):
        # The rot JWKS answers in 0.3 s (a distant issuer), so that requests with the
        # new kid pile up while the refetch is in flight.
        p = await self.begin("rotation (unknown kid)", "rot-2 published, tokens switch to it at once; provider rot refreshes every 5 min, so only the unknown-kid refetch finds it (its JWKS answers in 0.3 s): every rot-2 token 200; rot-1 removed later")
        f0 = self.jwks.fetches.get("/rot.json", 0)
        self.jwks.delay["/rot.json"] = 0.3
        self.jwks.publish("/rot.json", [self.keys.jwk["rot-1"], self.keys.jwk["rot-2"]])
        self.t_rot = time.monotonic()
        self.tokens["valid_rot"] = self.next_rot["rot-2"]
        await asyncio.sleep(self.phase_s)
        self.jwks.publish("/rot.json", [self.keys.jwk["rot-2"]])  # the old key goes later
        p.notes.append(f"rot JWKS fetched {self.jwks.fetches.get('/rot.json', 0) - f0} times after the rotation")
        await self.lift_and_tail(p)

    async def junk_phase(self):
        p = await self.begin("junk kids, then rotation", "tokens with random unknown kids from every client (401), then rot-3 published and used 1 s later: every rot-3 token 200 (junk kids must not starve a real rotation)")
        f0 = self.jwks.fetches.get("/rot.json", 0)
        self.oracle.disabled.discard("junk")
        await asyncio.sleep(1.0)
        self.jwks.publish("/rot.json", [self.keys.jwk["rot-2"], self.keys.jwk["rot-3"]])
        self.tokens["valid_rot"] = self.next_rot["rot-3"]
        await asyncio.sleep(self.phase_s)
        self.oracle.disabled.add("junk")
        p.notes.append(f"rot JWKS fetched {self.jwks.fetches.get('/rot.json', 0) - f0} times in this phase")
        await self.lift_and_tail(p)

    async def reload_phase(self, by_signal):
        how = "SIGHUP" if by_signal else "file change"
        p = await self.begin(
            f"reload every 0.5 s ({how})",
            "good (jwks.timeout 2s/3s) and broken files alternate: every broken one refused, no request lost, every answer as the oracle says",
        )
        broken = broken_configs(self.good)
        rng = random.Random(18 + by_signal)
        goods = [config_text(self.ports, self.jwks, timeout=t) for t in ("3s", "2s")]
        n = 0
        deadline = time.monotonic() + max(self.phase_s, 2.0 * len(broken))
        while time.monotonic() < deadline:
            if n % 2 == 0:
                write(self.config_path, goods[(n // 2) % 2])
            else:
                write(self.config_path, broken[(n // 2) % len(broken)][1])
            if by_signal:
                self.pc.proc.signal(signal.SIGHUP)
            n += 1
            # Every half second, give or take 50 ms: Portcullis polls the file every
            # second, and a fixed 0.5 s would let it see only the good (or only the
            # broken) half of the writes.
            await asyncio.sleep(0.5 + rng.uniform(-0.05, 0.05))
        write(self.config_path, self.good)
        if by_signal:
            self.pc.proc.signal(signal.SIGHUP)
        p.notes.append(f"{n} writes ({', '.join(b[0] for b in broken)} among the broken ones)")
        if not by_signal:
            passed = []
            for name, text in broken:
                path = os.path.join(self.work, "broken.yaml")
                write(path, text)
                r = subprocess.run([self.args.bin, "check", "--config", path], capture_output=True)
                if r.returncode == 0:
                    passed.append(name)
            if passed:
                p.extra_failures.append("`portcullis check` accepts broken files: " + ", ".join(passed))
        await self.lift_and_tail(p)

    async def flood_phase(self):
        idle = 1000 if self.short else 4000
        partial = 50 if self.short else 300
        p = await self.begin(
            "flood (idle, partial headers, garbage)",
            f"{idle} idle connections, {partial} slowloris, 4 garbage loops on the http listener; valid traffic and a new connection every 0.2 s keep their answers; valid p99 within 2x baseline",
        )
        f = FloodProcess(self.ports[0], idle, partial, 4, python=self.args.python)
        await f.start()
        probes = []

        async def probe_loop():
            while time.monotonic() < p_end:
                c = Conn(self.ports[0])
                r = await self.load.one(c, "direct-new-conn", "/verify", "valid_corp", self.tokens["valid_corp"][0])
                probes.append(r)
                c.close()
                await asyncio.sleep(0.2)

        p_end = time.monotonic() + self.phase_s * 1.5
        await probe_loop()
        await f.stop()
        p.notes.append(
            f"flood connections opened {f.opened}, failed to open {f.open_failed}, closed by the server while held {f.closed_by_server}; "
            f"garbage connections {f.garbage_sent}, first answer line: "
            + ", ".join(f"{k!r} x{v}" for k, v in sorted(f.garbage_answers.items(), key=lambda kv: -kv[1])[:4])
        )
        ok = [x for x in probes if x.verdict == "ok"]
        p.notes.append(f"new-connection probes: {len(ok)}/{len(probes)} answered 200")
        await self.lift_and_tail(p)
        self.flood = p

    async def redis_phase(self):
        p = await self.begin(
            "Redis killed under the session store",
            "a second Portcullis with sessions.store redis:// and a logged-in session cookie (3 clients), plus clients with no cookie: "
            "Redis SIGKILLed, restarted on the same port (append-only file): while it is down a session request is refused "
            "with a reason (fail closed) or still served, never hangs; after it is back the session passes again without a restart; "
            "no cookie is always 401",
        )
        sess = Sessions(self.root, self.work, self.args.bin, self.args.peers)
        self.sessions = sess
        try:
            await sess.start()
        except (RuntimeError, OSError) as e:
            p.extra_failures.append(f"could not set up: {e}")
            p.t_end = time.monotonic()
            sess.stop()
            await self.finish(p)
            return
        down = self.phase_s
        t_kill, t_back, res = await sess.phase(down, self.tail_s + 2.0)
        sess.stop()
        extra = {"requests": len(res), "false_allow": 0, "false_deny": 0, "errors": 0}
        during, first_ok, slowest = Counter(), None, 0.0
        for (t0, t1, with_cookie, status, reason, error) in res:
            if not with_cookie:
                if status == 200:
                    extra["false_allow"] += 1
                elif not (status == 401 and reason):
                    extra["errors"] += 1
                continue
            # Answered before the kill, or started after sessions passed again: must
            # pass. In flight at the kill or started while Redis was down: the outage.
            if t1 < t_kill or (first_ok is not None and t0 >= first_ok):
                if status == 200:
                    continue
                if status in (401, 403) and reason:
                    extra["false_deny"] += 1
                    p.notes.append(f"session refused at +{t0 - t_kill:.2f} s: {status} {reason}")
                else:
                    extra["errors"] += 1
            elif t0 < t_back:  # started before Redis was back
                took = t1 - t0
                hung = took > 2.0
                slowest = max(slowest, took)
                during[f"{error or status}:{reason or '-'}" + (" after >2 s" if hung else "")] += 1
                if hung or error is not None or not (status == 200 or (status in (401, 403, 503) and reason)):
                    extra["errors"] += 1
            else:
                if status == 200 and first_ok is None:
                    first_ok = t0
        p.extra = extra
        p.notes.append(f"Redis down {t_back - t_kill:.1f} s; slowest session answer started while it was down: {slowest:.2f} s (more than 2 s counts as an error: no clear answer)")
        p.notes.append(
            "session requests while Redis was down (status:reason): "
            + (", ".join(f"{k} x{v}" for k, v in during.most_common()) or "none")
        )
        if first_ok is None:
            p.extra_failures.append("sessions did not pass again after Redis came back (no restart of Portcullis)")
        else:
            p.notes.append(f"first session allowed {first_ok - t_back:.2f} s after Redis was back")
            p.recovery = first_ok - t_back
        p.t_lifted = t_back
        p.t_end = time.monotonic()
        await self.finish(p)

    async def sigterm_phase(self):
        p = await self.begin(
            "SIGTERM under load, restart",
            "SIGTERM: in-flight requests complete (no reset), exit 0; then the same config started again behind NGINX and Envoy; failures in the restart window counted apart; no false allow ever",
        )
        await asyncio.sleep(1.0)
        old = self.pc.proc
        t_term = time.monotonic()
        old.signal(signal.SIGTERM)
        while old.alive() and time.monotonic() - t_term < 60:
            await asyncio.sleep(0.02)
        t_exit = time.monotonic()
        code = old.popen.poll()
        if code is None:
            old.popen.kill()
            p.extra_failures.append("portcullis did not exit within 60 s of SIGTERM (killed)")
        old.log.close()
        p.notes.append(f"exit code {code}, {t_exit - t_term:.2f} s after SIGTERM")
        draining = [t for (t, st) in self.readyz if t_term <= t < t_exit and st == 503]
        if draining:
            p.notes.append(f"/readyz answered 503 from {draining[0] - t_term:.2f} s after SIGTERM until the exit")
        else:
            p.extra_failures.append(
                f"no drain grace: /readyz never answered 503 between SIGTERM and the exit ({t_exit - t_term:.2f} s later)"
            )
        if code != 0:
            p.extra_failures.append(f"exit code {code} after SIGTERM, not 0")
        # A distant issuer: the restarted process gets its first keys 1 s after it asks.
        self.jwks.delay["/corp.json"] = 1.0
        self.pc.start()
        t_ready = await self.wait(lambda: self.status(self.ports[1], "/readyz"), 200, 30, "portcullis /readyz after restart")
        p.notes.append(f"restarted: /readyz 200 {t_ready - t_exit:.2f} s after the old process exited")
        # The window: from SIGTERM until /readyz answers 200 again.
        p.window = (t_term, t_ready)
        self.t_term = t_term
        self.jwks.delay.pop("/corp.json", None)
        await asyncio.sleep(self.phase_s)
        p.t_lifted = time.monotonic()
        await asyncio.sleep(self.tail_s)
        p.t_end = time.monotonic()
        await self.finish(p)
        self.sigterm = p

    # -------------------------------------------------------------- verdicts
    def verdicts(self):
        results = self.load.results
        rows = []
        base = report.summarize(self.baseline, results, self.readyz, self.rss)
        failed = False
        for p in self.phases:
            s = report.summarize(p, results, self.readyz, self.rss)
            if p is self.flood and base["p99"] and s["p99"]:
                ratio = s["p99"] / base["p99"]
                p.notes.append(f"valid p99 {s['p99']:.1f} ms vs baseline {base['p99']:.1f} ms: x{ratio:.2f}")
                if ratio > 2.0:
                    p.extra_failures.append(f"valid p99 x{ratio:.2f} the baseline's (over 2x) [timing: warning only on a shared machine]")
            if p is self.soak and len(s["rss"]) >= 4:
                k = max(1, len(s["rss"]) // 5)
                first = sum(s["rss"][:k]) / k
                last = sum(s["rss"][-k:]) / k
                growth = (last - first) / first * 100.0
                p.notes.append(f"RSS {first / 1024:.1f} MiB (first fifth) -> {last / 1024:.1f} MiB (last fifth): {growth:+.1f} %")
                if growth >= 10.0:
                    p.extra_failures.append(f"RSS grew {growth:.1f} % over the soak (limit 10 %)")
            if p is self.sigterm:
                lost = [r for r in results if r.t0 < self.t_term <= r.t1 and r.verdict == "error"]
                p.notes.append(f"requests in flight at SIGTERM that failed: {len(lost)}")
                if lost:
                    p.extra_failures.append(
                        f"{len(lost)} requests in flight at SIGTERM failed: "
                        + ", ".join(sorted({f'{r.target}:{r.error or r.status}' for r in lost}))
                    )
            if p is not self.sigterm and s["readyz_not_ready"]:
                p.extra_failures.append(f"/readyz not 200 in {s['readyz_not_ready']} of {s['readyz_samples']} samples")
            hard = [f for f in p.extra_failures if "[timing" not in f]
            ok = s["false_allow"] == 0 and s["false_deny"] == 0 and s["errors"] == 0 and not hard
            failed |= not ok
            rows.append((p, s, ok))
        return rows, failed

    async def main(self):
        try:
            await self.setup()
            self.load.start()
            sampler = asyncio.ensure_future(self.sample())
            await self.phases_all()
            await self.load.stop()
            self.sampling = False
            await sampler
        finally:
            for pr in self.procs + ([self.pc.proc] if getattr(self, "pc", None) and self.pc.proc else []):
                pr.stop()
            if getattr(self, "sessions", None):
                self.sessions.stop()
            if getattr(self, "jwks", None):
                await self.jwks.stop()
        return self.verdicts()


HEADER = """# Reliability under faults

Written by `scripts/faults` (the full run; `scripts/faults --short` prints the same table
in CI). Portcullis directly, behind NGINX `auth_request` (examples/nginx) and behind Envoy
ext_authz (examples/envoy/http.yaml, HTTP mode; examples/envoy/grpc.yaml, gRPC), under steady load whose every answer is checked one
by one: false allows (a 200 the token did not earn), false denies (a 401/403 for a valid
token whose key is published, outside the grace of a removed key), errors (anything that
is no decision: resets, timeouts, a proxy's own 5xx or bare 403, a 403 where 401 is due).
Failures to connect while the process restarts are counted apart (restart window); wrong
decisions never are. How it works: [bench/faults/README.md](bench/faults/README.md).

"""


def machine():
    cpus = os.cpu_count()
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {cpus} cores ({model})"


PHASE_GROUPS = ("jwks", "rotation", "removed", "flood", "junk", "reload", "tuning", "redis", "sigterm", "soak")


def main():
    ap = argparse.ArgumentParser(description="Portcullis fault-injection harness (issue 18)")
    ap.add_argument("--short", action="store_true", help="a few seconds per fault (CI)")
    ap.add_argument(
        "--gate",
        choices=["all", "false-allows"],
        default="all",
        help="what makes the exit status non-zero: any failed row (default), or only a false allow",
    )
    ap.add_argument("--bin", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--peers", default=None)
    ap.add_argument("--clients", type=int, default=3, help="clients per target")
    ap.add_argument("--rate", type=float, default=None, help="requests/s per client")
    ap.add_argument("--phase-seconds", type=float, default=None)
    ap.add_argument("--soak-seconds", type=float, default=None)
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    ap.add_argument(
        "--only",
        default=None,
        help="run the baseline and only these phase groups (comma list of "
        + ",".join(PHASE_GROUPS) + "), e.g. --only flood to re-measure one fault",
    )
    ap.add_argument("--command", default="scripts/faults")
    args = ap.parse_args()
    unknown = [g for g in (args.only or "").split(",") if g and g not in PHASE_GROUPS]
    if unknown:
        ap.error(f"--only: unknown phase group(s) {', '.join(unknown)}; known: {', '.join(PHASE_GROUPS)}")
    if args.peers is None:
        args.peers = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(args.python))))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # `timeout` (scripts/faults) sends SIGTERM: unwind, so that every process started
    # here is stopped by the cleanup in Run.main.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(args, root)
    t0 = time.time()
    rows, failed = asyncio.run(run.main())
    total = sum(s["requests"] for _, s, _ in rows)
    text = (
        f"Command: `{args.command}`\n\n"
        f"Machine: {machine()}; shared with other builds and tests while it ran.\n"
        f"Binary: `{os.path.relpath(args.bin, root) if os.path.abspath(args.bin).startswith(root + os.sep) else args.bin}`; load: {args.clients} clients per target "
        f"(direct /verify, NGINX auth_request, Envoy ext_authz HTTP, Envoy ext_authz gRPC) at {run.load.interval and 1 / run.load.interval:.0f} req/s each; "
        f"{total} answers checked one by one in {time.time() - t0:.0f} s; work dir {run.work}.\n\n"
        + report.table(rows)
        + "\n\n"
        + report.details(rows)
        + "\n"
    )
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(HEADER + text)
    false_allows = sum(s["false_allow"] for _, s, _ in rows)
    print("faults: " + ("FAILED (see the rows marked FAIL)" if failed else "all phases passed"), file=sys.stderr)
    if args.gate == "false-allows":
        # CI's gate (scripts/test): a false allow anywhere fails the build; the other
        # rows are printed as they are (the open ones are listed in RELIABILITY.md).
        print(f"faults: gate false-allows: {false_allows} false allows", file=sys.stderr)
        sys.exit(1 if false_allows else 0)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
