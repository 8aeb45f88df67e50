#!/usr/bin/python3
"""A tiny OTLP/HTTP (JSON) trace sink for the benchmarks: accepts, counts, answers 200 {}.

  POST /v1/traces   reads the body, counts its spans per resource service.name, answers 200 {}
  GET  /stats       JSON: posts, bytes, spans by service, parse checks, errors, mean body read time
  POST /reset       zeroes the counters (answers the stats they had)

Counting must stay cheap so that the sink takes as little CPU as possible from the machine
under test: spans are counted with a byte search for the `"spanId"` key (`"parentSpanId"`
does not match it), and the service from the first `service.name` attribute. Every Nth body
(--check-every, default 25, and always the first of each service) is also parsed in full with
the json module and counted exactly; a disagreement is counted in `check_mismatches`.

Usage: otlp_sink.py [--host 127.0.0.1] [--port 0] [--check-every 25]
Prints `listening on http://HOST:PORT` on stdout once bound. Python 3 standard library only.
"""
import argparse
import http.server
import json
import re
import signal
import sys
import threading
import time

SERVICE_RE = re.compile(rb'"key":"service\.name","value":\{"stringValue":"([^"]*)"')


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.posts = 0
        self.bytes = 0
        self.spans = {}
        self.checked = 0
        self.check_mismatches = 0
        self.errors = 0
        self.read_s = 0.0  # time spent receiving bodies (headers parsed to body complete)
        self.seen_services = set()

    def snapshot(self):
        return {"posts": self.posts, "bytes": self.bytes, "spans": dict(self.spans),
                "spans_total": sum(self.spans.values()), "checked": self.checked,
                "check_mismatches": self.check_mismatches, "errors": self.errors,
                "body_read_ms_mean": 1000.0 * self.read_s / self.posts if self.posts else 0.0}


def exact_count(body):
    """Spans per service.name, from a full parse of an ExportTraceServiceRequest."""
    counts = {}
    for rs in json.loads(body).get("resourceSpans", []):
        service = "unknown"
        for attr in rs.get("resource", {}).get("attributes", []):
            if attr.get("key") == "service.name":
                service = attr.get("value", {}).get("stringValue", "unknown")
        n = sum(len(ss.get("spans", [])) for ss in rs.get("scopeSpans", []))
        counts[service] = counts.get(service, 0) + n
    return counts


def make_handler(stats, check_every):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter expects
        # The status line and headers go out in one write and the body in another: without
        # TCP_NODELAY the second waits for the client's delayed ACK (~40 ms per export).
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # quiet
            pass

        def reply(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_GET(self):
            if self.path == "/stats":
                with stats.lock:
                    self.reply(200, stats.snapshot())
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            t0 = time.monotonic()
            body = self.read_body()
            read_s = time.monotonic() - t0
            if self.path == "/reset":
                with stats.lock:
                    snap = stats.snapshot()
                    stats.reset()
                self.reply(200, snap)
                return
            if not self.path.startswith("/v1/traces"):
                self.reply(404, {"error": "not found"})
                return
            n = body.count(b'"spanId"')
            m = SERVICE_RE.search(body)
            service = m.group(1).decode() if m else None
            with stats.lock:
                stats.posts += 1
                stats.bytes += len(body)
                stats.read_s += read_s
                check = (service not in stats.seen_services or m is None
                         or (check_every > 0 and stats.posts % check_every == 0))
            counts = None
            if check:
                try:
                    counts = exact_count(body)
                except ValueError:
                    with stats.lock:
                        stats.errors += 1
                    self.reply(400, {"error": "body is not JSON"})
                    return
            with stats.lock:
                if counts is None:
                    stats.spans[service] = stats.spans.get(service, 0) + n
                else:
                    stats.checked += 1
                    if service is not None:
                        stats.seen_services.add(service)
                    if sum(counts.values()) != n or (service is not None and set(counts) != {service}):
                        stats.check_mismatches += 1
                    for k, v in counts.items():
                        stats.spans[k] = stats.spans.get(k, 0) + v
            self.reply(200, {})

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--check-every", type=int, default=25)
    args = parser.parse_args()
    stats = Stats()
    server = http.server.ThreadingHTTPServer((args.host, args.port), make_handler(stats, args.check_every))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
