"""Lints a Helm chart with Helm's own engine: the Helm v4 Go library that PyPI's
`helm-sdkpy` ships as libhelm_sdkpy.so (scripts/install-peers fetches it). Lint
renders every template with the chart's values and parses the output, so a template
Helm cannot render, or renders to invalid YAML, is reported as an error.

Usage: helm_lint.py LIBRARY CHART_DIR [VALUES_JSON]
With VALUES_JSON the chart is copied and its values.yaml replaced by those values
(JSON is YAML), as `helm lint --values` would merge them. Prints the lint result as
JSON on stdout: {"messages": [{"severity": N, "path": P}], "errors": K}. Helm's
severities: 1 info, 2 warning, 3 error. Exit 0 when lint ran, 2 when it could not.
"""
import ctypes
import json
import pathlib
import shutil
import sys
import tempfile


def main() -> int:
    lib_path, chart = sys.argv[1], pathlib.Path(sys.argv[2])
    lib = ctypes.CDLL(lib_path)
    lib.helm_sdkpy_config_create.argtypes = [ctypes.c_char_p] * 4 + [
        ctypes.POINTER(ctypes.c_ulonglong)
    ]
    lib.helm_sdkpy_lint.argtypes = [
        ctypes.c_ulonglong,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
    ]
    lib.helm_sdkpy_last_error.restype = ctypes.c_void_p
    handle = ctypes.c_ulonglong()
    if lib.helm_sdkpy_config_create(b"default", b"", b"", b"{}", ctypes.byref(handle)):
        print(ctypes.string_at(lib.helm_sdkpy_last_error()).decode(), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        if len(sys.argv) > 3:
            copy = pathlib.Path(scratch) / chart.name
            shutil.copytree(chart, copy)
            (copy / "values.yaml").write_text(pathlib.Path(sys.argv[3]).read_text())
            chart = copy
        out = ctypes.c_void_p()
        if lib.helm_sdkpy_lint(handle, str(chart).encode(), ctypes.byref(out)):
            print(ctypes.string_at(lib.helm_sdkpy_last_error()).decode(), file=sys.stderr)
            return 2
        result = json.loads(ctypes.string_at(out.value).decode()) if out.value else {}
    messages = [
        {"severity": m["Severity"], "path": m["Path"]} for m in result.get("Messages") or []
    ]
    print(json.dumps({"messages": messages, "errors": len(result.get("Errors") or [])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
