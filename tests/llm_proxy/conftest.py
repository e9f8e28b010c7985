"""A scripted OpenAI-compatible HTTP server (it stands in for a paid API), image files, and the proxy on loopback."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from raddiff.v1 import llm_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.settings import SharedSettings
from raddiff_llm_proxy.app import SERVICE_FULL_NAME, build_app
from raddiff_llm_proxy.settings import LLMSettings


@dataclass
class Reply:
    """One scripted answer: a status, a JSON body (None: a completion echoing the prompt), headers, a delay."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class ScriptedUpstream:
    """Answers POST /v1/chat/completions from a script, records every request, counts concurrent ones."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = upstream._begin(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                try:
                    time.sleep(reply.delay_s)
                    payload = json.dumps(reply.body or completion_for(body)).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    upstream._end()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _begin(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        with self._lock:
            self.seen.append(Seen(path, headers, body, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.popleft() if self.script else self.default

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1


def completion_for(request: dict[str, Any]) -> dict[str, Any]:
    """A chat completion whose text names the last user text, with usage derived from the request."""
    last = request["messages"][-1]["content"]
    text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last if p["type"] == "text")
    prompt_tokens = len(json.dumps(request["messages"])) // 4
    answer = f"finding: {text}"
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": request["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"},
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(answer.split()),
            "total_tokens": prompt_tokens + len(answer.split()),
        },
    }


def error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@pytest.fixture()
def upstream() -> Iterator[ScriptedUpstream]:
    scripted = ScriptedUpstream()
    thread = threading.Thread(target=scripted.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield scripted
    scripted.server.shutdown()
    scripted.server.server_close()


@dataclass
class Files:
    root: Path
    scratch: Path

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()


def chest_picture(seed: int) -> Image.Image:
    image = Image.new("L", (96, 80), 30 + seed)
    ImageDraw.Draw(image).ellipse((10 + seed, 10, 50 + seed, 70), fill=200)
    return image


@pytest.fixture()
def files(tmp_path: Path) -> Files:
    found = Files(tmp_path / "data", tmp_path / "scratch")
    found.root.mkdir()
    chest_picture(1).save(found.root / "a.png")
    chest_picture(2).save(found.root / "b.png")
    chest_picture(3).save(found.root / "c.tif")
    (found.root / "notes.png").write_text("not an image")
    return found


StartProxy = Callable[..., contextlib.AbstractAsyncContextManager[llm_pb2_grpc.LLMProxyServiceStub]]


@pytest.fixture()
def start_proxy(files: Files, tmp_path: Path) -> StartProxy:
    """start_proxy(**settings) runs the proxy in-process, fast retries and a per-test cache unless overridden."""

    @contextlib.asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[llm_pb2_grpc.LLMProxyServiceStub]:
        values: dict[str, Any] = {
            "metrics_port": 0,
            "model": "scripted-model",
            "api_key": "test-key",
            "max_attempts": 3,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
            "timeout_s": 5.0,
            "cache_dir": tmp_path / "cache",
        }
        values.update(overrides)
        shared = SharedSettings(data_roots=str(files.root), scratch_dir=files.scratch)
        app = build_app(LLMSettings(**values), shared)
        server, port = await app.start("127.0.0.1:0")
        channel = open_channel(f"127.0.0.1:{port}", SERVICE_FULL_NAME)
        try:
            yield llm_pb2_grpc.LLMProxyServiceStub(channel)
        finally:
            await channel.close()
            await app.drain(server)

    return running
