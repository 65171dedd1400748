"""Re-run Mozilla's scanner on every case of observatory-scanner-<version>.json and record it.

Not a test: a maintainer's tool for when ``@mdn/mdn-http-observatory`` moves. It serves each
case on 127.0.0.1 (https with a certificate from a throwaway local CA, plain http answering
as the case's ``http`` mode says), runs the scanner's own ``retrieve()``, tests and grader
against it (``scan()`` itself cannot take ports), and writes the scanner's results back::

    npm install --ignore-scripts @mdn/mdn-http-observatory@1.4.8   # in a scratch directory
    echo '{}' > node_modules/@mdn/mdn-http-observatory/conf/hsts-preload.json
    python tests/data/observatory_harness.py node_modules/@mdn/mdn-http-observatory --write

Then run ``pytest tests/test_cli_observatory.py``: every case renderkit grades differently
is a rule to update in ``renderkit/cli/_observatory.py``. Needs ``openssl`` and ``node``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("observatory-scanner-1.4.8.json")

DRIVER = """
import { retrieve } from "%(pkg)s/src/retriever/retriever.js";
import { ALL_TESTS } from "%(pkg)s/src/constants.js";
import { MINIMUM_SCORE_FOR_EXTRA_CREDIT } from "%(pkg)s/src/grader/charts.js";
import { getGradeForScore, getScoreModifier } from "%(pkg)s/src/grader/grader.js";
const [host, httpPort, httpsPort, ...paths] = process.argv.slice(2);
const out = {};
for (const path of paths) {
  const r = await retrieve(host, { httpPort, httpsPort, path });
  let withExtra = 100, uncurved = 100;
  const tests = {};
  for (const res of ALL_TESTS.map((t) => t(r))) {
    const m = getScoreModifier(res.result);
    withExtra += m;
    if (m < 0) uncurved += m;
    tests[res.constructor.name] = [res.result, m, res.pass];
  }
  const g = getGradeForScore(uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? withExtra : uncurved);
  out[path] = { score: g.score, grade: g.grade, tests };
}
console.log(JSON.stringify(out));
"""

OPENSSL_CONF = """[req]
distinguished_name=dn
[dn]
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign
[leaf]
basicConstraints=CA:FALSE
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A local CA (for NODE_EXTRA_CA_CERTS) and a leaf for 127.0.0.1 and localhost."""
    conf = directory / "openssl.cnf"
    conf.write_text(OPENSSL_CONF)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    leaf, leaf_key, csr = directory / "leaf.pem", directory / "leaf.key", directory / "leaf.csr"
    quiet = {"check": True, "capture_output": True}
    new_key = ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-config", str(conf)]
    subprocess.run([*new_key, "-x509", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
                    "-subj", "/CN=harness CA", "-extensions", "ca"], **quiet)  # fmt: skip
    subprocess.run([*new_key, "-keyout", str(leaf_key), "-out", str(csr),
                    "-subj", "/CN=127.0.0.1"], **quiet)  # fmt: skip
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                    str(ca_key), "-CAcreateserial", "-out", str(leaf), "-days", "2",
                    "-extfile", str(conf), "-extensions", "leaf"], **quiet)  # fmt: skip
    return ca, leaf, leaf_key


def _handlers(cases: dict[str, Any], https_port: int, http_port: int) -> tuple[type, type]:
    def lookup(path: str) -> tuple[str, dict[str, Any] | None, list[str]]:
        parts = path.split("?")[0].split("/")
        if len(parts) >= 3 and parts[1] == "s" and parts[2] in cases:
            return parts[2], cases[parts[2]], parts[3:]
        return "", None, []

    class Secure(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            name, case, rest = lookup(self.path)
            if case is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if case.get("redirect_cookies") and not rest:  # the page first redirects
                self.send_response(302)
                self.send_header("Location", f"/s/{name}/next")
                for cookie in case["redirect_cookies"]:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = case["body"].encode()
            self.send_response(case.get("status", 200))
            for key, value in case["headers"]:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:
            _, case, _ = lookup(self.path)
            self.send_response(204)
            preflight = (case or {}).get("preflight", [])
            if case and case.get("reflect_origin"):
                preflight = [
                    ("Access-Control-Allow-Origin", self.headers.get("Origin", "")),
                    ("Access-Control-Allow-Credentials", "true"),
                ]
            for key, value in preflight:
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    class Plain(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, location: str = "") -> None:
            self.send_response(code)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            name, case, rest = lookup(self.path)
            mode = (case or {}).get("http", "redirect")
            base = f"/s/{name}"
            if case is None:
                self._send(404)
            elif mode == "none" or (mode == "http-only" and rest):
                self._send(200)
            elif mode == "offhost":
                self._send(301, f"https://localhost:{https_port}{base}")
            elif mode == "http-first" and not rest:
                self._send(301, f"http://127.0.0.1:{http_port}{base}/hop")
            elif mode == "http-only":
                self._send(301, f"http://127.0.0.1:{http_port}{base}/final")
            else:
                self._send(301, f"https://127.0.0.1:{https_port}{base}")

        do_OPTIONS = do_GET

    return Secure, Plain


def _serve(cases: dict[str, Any], directory: Path) -> tuple[int, int, Path, list[Any]]:
    ca, leaf, leaf_key = _certificates(directory)
    https_port, http_port = _free_port(), _free_port()
    secure_handler, plain_handler = _handlers(cases, https_port, http_port)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(leaf), str(leaf_key))
    secure = ThreadingHTTPServer(("127.0.0.1", https_port), secure_handler)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    plain = ThreadingHTTPServer(("127.0.0.1", http_port), plain_handler)
    for server in (secure, plain):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return https_port, http_port, ca, [secure, plain]


def _scan(
    package: Path, directory: Path, ca: Path, ports: tuple[str, str], paths: list[str]
) -> Any:
    driver = directory / "driver.mjs"
    driver.write_text(DRIVER % {"pkg": package.resolve().as_posix()})
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(ca)}
    run = subprocess.run(
        ["node", str(driver), "127.0.0.1", *ports, *paths],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="the installed @mdn/mdn-http-observatory")
    parser.add_argument("--write", action="store_true", help="write the results into the table")
    args = parser.parse_args()
    table = json.loads(TABLE.read_text("utf-8"))
    cases: dict[str, Any] = table["cases"]
    version = json.loads((args.package / "package.json").read_text())["version"]
    with tempfile.TemporaryDirectory() as tmp:
        https_port, http_port, ca, servers = _serve(cases, Path(tmp))
        try:
            listening = [n for n, c in cases.items() if c["http"] != "closed"]
            closed = [n for n, c in cases.items() if c["http"] == "closed"]
            ports = (str(http_port), str(https_port))
            results = _scan(args.package, Path(tmp), ca, ports, [f"/s/{n}" for n in listening])
            if closed:  # a port nothing listens on: the scanner finds no http at all
                ports = (str(_free_port()), str(https_port))
                results |= _scan(args.package, Path(tmp), ca, ports, [f"/s/{n}" for n in closed])
        finally:
            for server in servers:
                server.shutdown()
    changed = 0
    for name, case in cases.items():
        fresh = results[f"/s/{name}"]
        changed += fresh != case["scanner"]
        case["scanner"] = fresh
    print(f"scanner {version}: {len(cases)} cases, {changed} changed")
    if args.write:
        table["version"] = version
        lines = [f' "{k}": {json.dumps(v)},' for k, v in table.items() if k != "cases"]
        rows = [f"  {json.dumps(n)}: {json.dumps(c)}" for n, c in cases.items()]
        TABLE.write_text(
            "{\n" + "\n".join(lines) + '\n "cases": {\n' + ",\n".join(rows) + "\n }\n}\n"
        )


if __name__ == "__main__":
    main()
