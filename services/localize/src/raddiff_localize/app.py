"""build_app(): settings -> image store -> grid engine and backends -> servicer -> ServiceApp."""

from __future__ import annotations

from raddiff.v1 import localize_pb2_grpc
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_localize.backends import LLMBackend, LocalizeBackend
from raddiff_localize.engine import GridEngine
from raddiff_localize.model_backend import ModelBackend
from raddiff_localize.servicer import LocalizeServicer
from raddiff_localize.settings import LocalizeSettings
from raddiff_localize.vlm_backend import VLMBackend

SERVICE = "raddiff.v1.LocalizeService"


def build_app(settings: LocalizeSettings | None = None, shared: SharedSettings | None = None) -> ServiceApp:
    settings = settings or load_settings(LocalizeSettings)
    shared = shared or load_settings(SharedSettings)
    grids = GridEngine(ImageStore(shared.root_paths(), shared.scratch_dir), settings.crop_max_px)
    # Every backend exists; one whose service has no target answers FAILED_PRECONDITION when asked.
    backend_list: list[LocalizeBackend] = [
        ModelBackend(settings.embedding_target, settings.embedding_timeout_s, settings.map_options()),
        VLMBackend(
            settings.vlm_target,
            settings.vlm_timeout_s,
            settings.vlm_retries,
            settings.vlm_max_images,
            settings.vlm_max_tokens,
            settings.vlm_concurrency,
        ),
        LLMBackend(grids, settings.llm_target, settings.llm_model, settings.llm_timeout_s, settings.llm_retries),
    ]
    backends = {backend.name: backend for backend in backend_list}
    if settings.default_backend not in backends:
        raise SystemExit(
            f"raddiff-localize: RADDIFF_LOCALIZE_DEFAULT_BACKEND={settings.default_backend!r} is not one of "
            f"{', '.join(sorted(backends))}"
        )

    async def on_start() -> None:
        for backend in backend_list:
            await backend.start()

    async def on_stop() -> None:
        for backend in backend_list:
            await backend.stop()

    servicer = LocalizeServicer(settings, grids, backends)
    return ServiceApp(
        name="localize",
        settings=settings,
        registrations=[Registration(servicer, localize_pb2_grpc.add_LocalizeServiceServicer_to_server, SERVICE)],
        on_start=on_start,
        on_stop=on_stop,
    )
