"""The VLM service's throughput with the vLLM engine and with the transformers engine, as a ratio.

    .venv-vllm/bin/python loadtest/vlm_bench.py [--clients 8] [--requests 8] [--max-tokens 48]

Run from .venv-vllm (scripts/make-vllm-env.sh), where both engines exist. The same checkpoint
($RADDIFF_MODEL_DIR/vlm, else a fresh random-init one), the same requests and the same machine for both:
each engine is served by the real service process (`python -m raddiff_vlm`, RADDIFF_VLM_ENGINE=...), both
started and warmed up first, then loaded over gRPC in rounds that alternate between the engines (the machine's
other load comes and goes; medians are reported). A round is concurrent clients x requests, every one a
different image, greedy; answers differ in length as real captions do (max_tokens cycles through a third, two
thirds and all of --max-tokens: the random-init model never stops early). Figures, never pass/fail; prints a
table and, with --json, writes the rows. vLLM runs with a small KV cache (--kv-cache-mib) and is always
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image, ImageDraw

from raddiff.v1 import common_pb2, vlm_pb2, vlm_pb2_grpc
from raddiff_kit.client import open_channel

PROMPT = "Describe the findings in this chest X-ray."
SERVICE = "raddiff.v1.VLMService"
START_TIMEOUT_S = 300.0


@dataclass
class Row:
    engine: str
    requests: int
    seconds: float
    images_per_s: float
    tokens_per_s: float
    p50_ms: float
    p95_ms: float
    max_running: float  # the engine's own running-request figure, polled from /metrics during the load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def radiograph(seed: int, size: int = 320) -> Image.Image:
    """A distinct grayscale picture per seed: two lung-like ellipses and a bar, placed by the seed."""
    image = Image.new("L", (size, size), 10 + seed % 40)
    draw = ImageDraw.Draw(image)
    shift = (seed * 29) % (size // 6)
    draw.ellipse((size // 10 + shift, size // 6, size // 2 - 5, 5 * size // 6), fill=200 - seed % 60)
    draw.ellipse((size // 2 + 5, size // 6, 9 * size // 10 - shift, 5 * size // 6), fill=180 + seed % 50)
    y = (seed * 47) % (size - 12)
    draw.rectangle((0, y, size - 1, y + 10), fill=90)
    return image


def checkpoint_folder(given: Path | None, scratch: Path) -> Path:
    if given is not None:
        return given
    cached = Path(os.environ.get("RADDIFF_MODEL_DIR", ".models")) / "vlm"
    if (cached / "config.json").is_file():
        return cached
    from raddiff_vlm.checkpoints import init_random

    return init_random(scratch / "tiny-vlm", seed=0)


@contextmanager
def served(engine: str, checkpoint: Path, data_root: Path, scratch: Path, args: argparse.Namespace) -> Iterator[dict]:
    """The service process on `engine`; stopped (its whole process group, vLLM's engine core included) on exit."""
    ports = {"grpc": free_port(), "metrics": free_port()}
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RADDIFF_VLM_ENGINE": engine,
        "RADDIFF_VLM_CHECKPOINT": str(checkpoint),
        "RADDIFF_VLM_HOST": "127.0.0.1",
        "RADDIFF_VLM_GRPC_PORT": str(ports["grpc"]),
        "RADDIFF_VLM_METRICS_PORT": str(ports["metrics"]),
        "RADDIFF_VLM_MAX_BATCH": str(args.clients),
        "RADDIFF_VLM_VLLM_KV_CACHE_BYTES": str(args.kv_cache_mib * 2**20),
        "RADDIFF_VLM_DRAIN_SECONDS": "5",
        "RADDIFF_DATA_ROOTS": str(data_root),
        "RADDIFF_SCRATCH_DIR": str(scratch / "store"),
        "RADDIFF_LOG_LEVEL": "WARNING",
    }
    log_path = scratch / f"{engine}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "raddiff_vlm"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield {"process": process, "log": log_path, **ports}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with suppress(ProcessLookupError):  # whatever is left of the group it started (vLLM's engine core)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def wait_until_serving(target: str, process: subprocess.Popen, log: Path) -> None:
    channel = grpc.aio.insecure_channel(target)
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the service exited with {process.returncode}; see {log}")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.5)
        raise SystemExit(f"the service did not start within {START_TIMEOUT_S:.0f} s; see {log}")
    finally:
        await channel.close()


def answer_length(index: int, longest: int) -> int:
    return max(1, longest * (1 + index % 3) // 3)


def running_figure(metrics_port: int, engine: str) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("raddiff_vlm_engine_requests_running{") and f'engine="{engine}"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@dataclass
class Round:
    seconds: float
    tokens: int
    latencies: list[float]
    texts: list[str]
    max_running: float


class Client:
    """One engine's service as the load sees it."""

    def __init__(self, engine: str, service: dict, images: list[Path], args: argparse.Namespace) -> None:
        self.engine = engine
        self.service = service
        self.images = images
        self.args = args
        self.channel = open_channel(f"127.0.0.1:{service['grpc']}", SERVICE)
        self.stub = vlm_pb2_grpc.VLMServiceStub(self.channel)

    def request(self, index: int) -> vlm_pb2.GenerateRequest:
        return vlm_pb2.GenerateRequest(
            prompt=PROMPT,
            images=[common_pb2.ImageRef(uri=self.images[index].resolve().as_uri())],
            sampling=common_pb2.SamplingParams(max_tokens=answer_length(index, self.args.max_tokens)),
        )

    async def warm_up(self) -> None:
        await wait_until_serving(f"127.0.0.1:{self.service['grpc']}", self.service["process"], self.service["log"])
        for index in range(2):  # first calls pay one-off costs; these two images are not in the load
            await self.stub.Generate(self.request(len(self.images) - 1 - index), timeout=120)

    async def round(self) -> Round:
        """clients x requests calls at once, every one a different image; the engine's running figure polled."""
        args = self.args
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        texts: dict[int, str] = {}
        tokens = 0
        max_running = 0.0
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal max_running
            while not done.is_set():
                figure = await loop.run_in_executor(None, running_figure, self.service["metrics"], self.engine)
                max_running = max(max_running, figure)
                await asyncio.sleep(0.05)

        async def client(number: int) -> None:
            nonlocal tokens
            for k in range(args.requests):
                index = number * args.requests + k
                began = time.perf_counter()
                reply = await self.stub.Generate(self.request(index), timeout=600)
                latencies.append(time.perf_counter() - began)
                texts[index] = reply.text
                tokens += reply.usage.completion_tokens

        watcher = asyncio.create_task(watch())
        began = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(args.clients)))
        seconds = time.perf_counter() - began
        done.set()
        await watcher
        return Round(seconds, tokens, latencies, [texts[i] for i in sorted(texts)], max_running)


def summarise(engine: str, rounds: list[Round]) -> Row:
    """Medians over rounds (load from other work on the machine comes and goes); latencies over all calls."""
    latencies = sorted(t for r in rounds for t in r.latencies)
    count = len(rounds[0].latencies)
    return Row(
        engine=engine,
        requests=count,
        seconds=round(statistics.median(r.seconds for r in rounds), 2),
        images_per_s=round(statistics.median(count / r.seconds for r in rounds), 2),
        tokens_per_s=round(statistics.median(r.tokens / r.seconds for r in rounds), 1),
        p50_ms=round(1000 * statistics.median(latencies), 1),
        p95_ms=round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        max_running=max(r.max_running for r in rounds),
    )


def print_table(rows: list[Row], per_round: dict[str, list[float]], args: argparse.Namespace, same: bool) -> None:
    print(
        f"\nVLM service, {args.clients} clients x {args.requests} requests, one image each, greedy, "
        f"max_tokens {answer_length(0, args.max_tokens)}/{answer_length(1, args.max_tokens)}/{args.max_tokens}; "
        f"{args.rounds} rounds per engine, alternating; medians. {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'engine':<13}{'requests':>9}{'seconds':>9}{'images/s':>10}{'tokens/s':>10}"
    print(header + f"{'p50 ms':>9}{'p95 ms':>9}{'max running':>13}  images/s per round")
    for r in rows:
        rounds = " ".join(f"{x:.1f}" for x in per_round[r.engine])
        print(
            f"{r.engine:<13}{r.requests:>9}{r.seconds:>9.2f}{r.images_per_s:>10.2f}{r.tokens_per_s:>10.1f}"
            f"{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.max_running:>13.0f}  {rounds}"
        )
    by_engine = {r.engine: r for r in rows}
    if {"vllm", "transformers"} <= by_engine.keys():
        ratio = by_engine["vllm"].images_per_s / by_engine["transformers"].images_per_s
        print(f"throughput ratio vllm / transformers: {ratio:.2f}x")
    print(f"same greedy answers from every engine and round: {'yes' if same else 'NO'}")


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="raddiff-vlm-bench-") as tmp, ExitStack() as services:
        scratch = Path(tmp)
        data_root = scratch / "data"
        data_root.mkdir()
        images = []
        for seed in range(args.clients * args.requests + 2):
            path = data_root / f"cxr{seed:03d}.png"
            radiograph(seed).save(path)
            images.append(path)
        checkpoint = checkpoint_folder(args.checkpoint, scratch).resolve()
        print(f"checkpoint: {checkpoint}")
        # Both services stay up (an idle engine takes no CPU), so the rounds can alternate between them.
        clients = [
            Client(engine, services.enter_context(served(engine, checkpoint, data_root, scratch, args)), images, args)
            for engine in args.engines
        ]
        for client in clients:
            await client.warm_up()
        rounds: dict[str, list[Round]] = {c.engine: [] for c in clients}
        for _ in range(args.rounds):
            for client in clients:
                rounds[client.engine].append(await client.round())
        for client in clients:
            await client.channel.close()
        rows = [summarise(engine, done) for engine, done in rounds.items()]
        per_round = {engine: [len(r.latencies) / r.seconds for r in done] for engine, done in rounds.items()}
        answers = [r.texts for done in rounds.values() for r in done]
        same = all(texts == answers[0] for texts in answers)
        print_table(rows, per_round, args, same)
        if args.json:
            args.json.write_text(
                json.dumps({"rows": [asdict(r) for r in rows], "images_per_s_per_round": per_round,
                            "same_answers": same}, indent=2)
            )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (also the engines' max batch)")
    parser.add_argument("--requests", type=int, default=8, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=48, help="the longest answer")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: $RADDIFF_MODEL_DIR/vlm")
    parser.add_argument("--rounds", type=int, default=3, help="load rounds per engine, alternating engines")
    parser.add_argument("--kv-cache-mib", type=int, default=64, help="vLLM's KV cache")
    parser.add_argument(
        "--engines", type=lambda s: s.split(","), default=["transformers", "vllm"], help="comma-separated, in order"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.max_tokens, args.rounds) < 1:
        parser.error("--clients, --requests, --max-tokens and --rounds must be >= 1")
    return args


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
