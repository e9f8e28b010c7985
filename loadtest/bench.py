"""`make bench`: figures, never pass/fail. Bounded load on loopback only.

Starts the local stack on free ports with the embedded default models, then measures:
- the embedding service: images embedded per second with 1 and with 8 concurrent clients (batching at work),
  and the mean batch size the server formed;
- the VLM service: captions per second with 1 and 4 concurrent clients;
- one full analysis through REST: seconds from POST to result.
Prints a table and writes loadtest/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc, vlm_pb2, vlm_pb2_grpc
from raddiff_kit import localstack
from raddiff_kit.client import open_channel

REPO = Path(__file__).resolve().parents[1]


async def _load(call, clients: int, requests_per_client: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def client() -> None:
        for _ in range(requests_per_client):
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - began, latencies


def _metric(url: str, name: str, labels: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name) and labels in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def measure(stack_env: dict[str, dict[str, str]], images: list[Path]) -> list[dict]:
    rows = []
    emb_env, vlm_env = stack_env["embedding"], stack_env["vlm"]
    emb = open_channel(f"127.0.0.1:{emb_env['RADDIFF_EMBEDDING_GRPC_PORT']}", "raddiff.v1.EmbeddingService")
    vlm = open_channel(f"127.0.0.1:{vlm_env['RADDIFF_VLM_GRPC_PORT']}", "raddiff.v1.VLMService")
    emb_stub, vlm_stub = embedding_pb2_grpc.EmbeddingServiceStub(emb), vlm_pb2_grpc.VLMServiceStub(vlm)
    refs = [common_pb2.ImageRef(uri=p.resolve().as_uri()) for p in images]
    metrics_url = f"http://127.0.0.1:{emb_env['RADDIFF_EMBEDDING_METRICS_PORT']}/metrics"
    per_call = 4
    embed_request = embedding_pb2.EmbedImagesRequest(images=refs[:per_call])
    for clients in (1, 8):
        count0 = _metric(metrics_url, "raddiff_batch_size_count", 'service="embedding-images"')
        sum0 = _metric(metrics_url, "raddiff_batch_size_sum", 'service="embedding-images"')
        elapsed, lat = await _load(
            lambda: emb_stub.EmbedImages(embed_request, timeout=120),
            clients, 8,
        )
        batches = _metric(metrics_url, "raddiff_batch_size_count", 'service="embedding-images"') - count0
        items = _metric(metrics_url, "raddiff_batch_size_sum", 'service="embedding-images"') - sum0
        rows.append({
            "what": f"embedding EmbedImages, {clients} client(s) x 8 calls x {per_call} images",
            "throughput": f"{clients * 8 * per_call / elapsed:.1f} images/s",
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p95_ms": round(1000 * sorted(lat)[int(0.95 * (len(lat) - 1))], 1),
            "mean_batch": round(items / batches, 1) if batches else None,
        })
    request = vlm_pb2.GenerateRequest(
        prompt="Describe this image in detail.", images=refs[:1], sampling=common_pb2.SamplingParams(max_tokens=32)
    )
    for clients in (1, 4):
        elapsed, lat = await _load(lambda: vlm_stub.Generate(request, timeout=300), clients, 4)
        rows.append({
            "what": f"vlm Generate (32 tokens), {clients} client(s) x 4 calls",
            "throughput": f"{clients * 4 / elapsed:.2f} captions/s",
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p95_ms": round(1000 * sorted(lat)[int(0.95 * (len(lat) - 1))], 1),
            "mean_batch": None,
        })
    await emb.close()
    await vlm.close()
    return rows


def analysis_seconds(url: str, data_dir: Path) -> float:
    images = data_dir / "images" / "effusion-right-moderate"
    a, b = (sorted(str(p) for p in (images / s).glob("*.png")) for s in ("A", "B"))
    body = {"input": {"kind": "sets", "set_a": a, "set_b": b},
            "ground_truth": {"a": "moderate right pleural effusion", "b": "no pleural effusion"}}
    request = urllib.request.Request(f"{url}/v1/analyses", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as reply:
        analysis = json.loads(reply.read())
    while True:
        with urllib.request.urlopen(f"{url}/v1/analyses/{analysis['id']}", timeout=60) as reply:
            view = json.loads(reply.read())
        if view["status"] in ("succeeded", "failed", "cancelled"):
            if view["status"] != "succeeded":
                raise SystemExit(f"the benchmark analysis ended {view['status']}: {view['error']}")
            return time.perf_counter() - began
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-set", type=int, default=40)
    parser.add_argument("--model-dir", type=Path, default=REPO / ".models")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="raddiff-bench-") as tmp:
        root = Path(tmp)
        synth = subprocess.run(
            [str(Path(sys.executable).parent / "raddiff-synth"), "bench"], capture_output=True, text=True, check=True
        )
        rows.append({"what": "synthetic radiograph generator", "throughput": synth.stdout.strip().splitlines()[-1]})
        subprocess.run(
            [str(Path(sys.executable).parent / "raddiff-synth"), "cohort", "default", str(root / "data"),
             "--pairs", "effusion-right-moderate", "--per-set", str(args.per_set), "--size", "256"],
            check=True, capture_output=True,
        )
        envs = localstack.stack_env(root / "run", [root / "data"], args.model_dir, localstack.free_base_port())
        began = time.perf_counter()
        localstack.start(root / "run", envs)
        try:
            addresses = localstack.wait_ready(root / "run", envs, 300)
            rows.append({"what": "local stack start (6 processes, to all healthy)",
                         "throughput": f"{time.perf_counter() - began:.1f} s"})
            images = sorted((root / "data" / "images").rglob("*.png"))
            rows += asyncio.run(measure(envs, images))
            seconds = analysis_seconds(addresses["orchestrator"], root / "data")
            rows.append({"what": f"one analysis, {args.per_set}+{args.per_set} images, embedded default",
                         "throughput": f"{seconds:.1f} s"})
        finally:
            localstack.stop(root / "run")
    width = max(len(r["what"]) for r in rows)
    for row in rows:
        extra = "  ".join(f"{k}={row[k]}" for k in ("p50_ms", "p95_ms", "mean_batch") if row.get(k) is not None)
        print(f"{row['what']:<{width}}  {row['throughput']:<24} {extra}")
    (REPO / "loadtest" / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    grpc.aio.init_grpc_aio()
    main()
