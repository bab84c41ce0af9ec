"""Drives a server with the KServe SDK's REST client (kserve.InferenceRESTClient, Open Inference Protocol).

Runs in its own virtualenv (.venv-kserve: the SDK pins pandas<3 and protobuf 6, which the project's
environment does not take), started by test_protocol_clients.py. Reads {"url", "model", "rows", "bad_row"}
as JSON on stdin and prints what the client returned as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


def _result(response) -> dict:
    out = response.outputs[0]
    return {
        "id": response.id,
        "model_version": response.model_version,
        "name": out.name,
        "datatype": out.datatype,
        "shape": list(out.shape),
        "scores": out.as_numpy().astype(float).ravel().tolist(),
    }


async def main(job: dict) -> dict:
    url, model = job["url"], job["model"]
    rows = np.asarray(job["rows"], dtype=np.float64)
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        out: dict = {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "other_model_ready": await client.is_model_ready(url, model + "-nope"),
        }
        # One input per feature, as JSON (data given as a numpy array is sent as JSON by to_rest()).
        per_feature = [
            InferInput(name=name, shape=[len(rows)], datatype="FP64", data=rows[:, j])
            for j, name in enumerate(job["features"])
        ]
        out["per_feature"] = _result(
            await client.infer(url, InferRequest(model, per_feature, request_id="kserve-1"), model_name=model)
        )
        # One [N, F] FP32 tensor in the binary tensor data format (set_data_from_numpy's default).
        matrix = InferInput(name="input", shape=list(rows.shape), datatype="FP32")
        matrix.set_data_from_numpy(rows.astype(np.float32), binary_data=True)
        out["matrix_binary"] = _result(
            await client.infer(url, InferRequest(model, [matrix], request_id="kserve-2"), model_name=model)
        )
        bad = InferInput(name="input", shape=[1, len(job["bad_row"])], datatype="FP64")
        bad.set_data_from_numpy(np.asarray([job["bad_row"]], dtype=np.float64), binary_data=False)
        try:
            await client.infer(url, InferRequest(model, [bad]), model_name=model)
            out["bad"] = None
        except httpx.HTTPStatusError as exc:
            out["bad"] = {"status": exc.response.status_code, "message": str(exc)}
        return out
    finally:
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
