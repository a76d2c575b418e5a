#!/usr/bin/env python3
"""Stand-in for `portcullis serve --config FILE`, used only by tests/harness_real.rs to prove the
harness's Portcullis launcher: it checks its arguments and environment like the real binary would
see them, then answers /readyz on the admin address and /v2/ on the listen address until killed."""
import http.server, os, sys, threading

args = sys.argv[1:]
assert args[:2] == ["serve", "--config"] and os.path.isfile(args[2]), f"bad args {args}"
listen = os.environ["PORTCULLIS_SERVER__LISTEN"]
admin = os.environ["PORTCULLIS_SERVER__ADMIN_LISTEN"]
assert "REGISTRY_AUTH" not in os.environ, "environment not clean"
print(f"fake portcullis: config={args[2]} listen={listen} admin={admin} "
      f"cache={os.environ.get('PORTCULLIS_CACHE__DIR', '-')}", flush=True)


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n" if self.path in ("/readyz", "/healthz", "/v2/") else b"nope\n"
        self.send_response(200 if body == b"ok\n" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *a):
        print("fake portcullis: " + fmt % a, flush=True)


def bind(addr):
    host, port = addr.rsplit(":", 1)
    return http.server.ThreadingHTTPServer((host, int(port)), H)


# both listeners are bound before either serves, so /readyz = 200 means the API port is up too
api_srv, admin_srv = bind(listen), bind(admin)
threading.Thread(target=api_srv.serve_forever, daemon=True).start()
admin_srv.serve_forever()
