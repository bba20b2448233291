"""A webhook consumer for shouhou's tests that verifies every delivery with the off-the-shelf
Standard Webhooks library (PyPI `standardwebhooks`), not with shouhou's own code.

    python3 consumer.py PORT LOG SECRET

Listens on 127.0.0.1:PORT (0 picks one; the port is printed as the first stdout line).
Each verified delivery is appended to LOG as one JSON line:
    {"id": webhook-id, "type": ..., "conversation_id": ..., "body_sha": ..., "verified": true}
A delivery that fails verification gets 401 and a line with "verified": false.
Returns 204 on success; de-duplication is the reader's job (the log keeps every attempt).
"""

import hashlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, LOG, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
HOOK = Webhook(SECRET)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        try:
            event = HOOK.verify(body, headers)
            line = {
                "id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                "type": event["type"],
                "conversation_id": event["data"].get("conversation_id"),
                "body_sha": hashlib.sha256(body).hexdigest(),
                "verified": True,
            }
            status = 204
        except WebhookVerificationError as e:
            line = {"id": self.headers.get("webhook-id"), "verified": False, "error": str(e)}
            status = 401
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
