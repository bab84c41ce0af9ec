"""The benchmark's floor: the same ONNX Runtime session behind the thinnest possible ASGI app.

No validation, metrics, cache or batching - only parse JSON, build the row, run, reply. Whatever
our server costs above this is the price of its features. Configured by BENCH_ONNX_PATH and
BENCH_FEATURES (comma-separated, in model order). Run: uvicorn floor_app:app.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort

_so = ort.SessionOptions()
_so.intra_op_num_threads = 1
_sess = ort.InferenceSession(os.environ["BENCH_ONNX_PATH"], _so, providers=["CPUExecutionProvider"])
_names = os.environ["BENCH_FEATURES"].split(",")
_out = ["probabilities"]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    feats = json.loads(body)["features"]
    x = np.array([[feats[n] for n in _names]], dtype=np.float32)
    p = float(_sess.run(_out, {"input": x})[0][0, 1])
    out = ('{"prediction":' + repr(p) + "}").encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": out})
