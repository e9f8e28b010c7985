"""build_app(): the VLM service wired to its engine, and create_engine(), which picks that engine."""

from __future__ import annotations

from raddiff.v1 import vlm_pb2, vlm_pb2_grpc
from raddiff_kit.errors import FailedPrecondition, ServiceError
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_vlm.engine import VLMEngine
from raddiff_vlm.servicer import VLMServicer
from raddiff_vlm.settings import VLMSettings

SERVICE_FULL_NAME = vlm_pb2.DESCRIPTOR.services_by_name["VLMService"].full_name


def create_engine(settings: VLMSettings, shared: SharedSettings) -> VLMEngine:
    """The engine RADDIFF_VLM_ENGINE names (settings already refused unknown names).

    Each engine module is imported here, only when chosen: it imports its base from raddiff_vlm.engine, so the
    factory cannot live there without an import circle, and an image without vllm can still serve transformers.
    """
    if settings.engine == "transformers":
        from raddiff_vlm.transformers_engine import TransformersEngine

        return TransformersEngine(settings, checkpoint=settings.checkpoint_path(shared))
    if settings.engine == "vllm":
        try:
            from raddiff_vlm.vllm_engine import VLLMEngine
        except ImportError as exc:
            raise FailedPrecondition(
                f"RADDIFF_VLM_ENGINE=vllm but vLLM cannot be imported ({exc}); serve from an image or venv with "
                "vllm installed (scripts/make-vllm-env.sh), or choose RADDIFF_VLM_ENGINE=transformers"
            ) from exc
        return VLLMEngine(settings, checkpoint=settings.checkpoint_path(shared))
    raise ValueError(f"unknown VLM engine {settings.engine!r}")


def build_app(
    settings: VLMSettings | None = None, shared: SharedSettings | None = None, engine: VLMEngine | None = None
) -> ServiceApp:
    """The service around `engine`, or around the engine the settings choose (RADDIFF_VLM_ENGINE)."""
    settings = settings or load_settings(VLMSettings)
    shared = shared or load_settings(SharedSettings)
    if engine is None:
        try:
            engine = create_engine(settings, shared)
        except ServiceError as exc:  # the chosen engine is not installed here
            raise SystemExit(f"raddiff-vlm cannot start: {exc.message}") from None
    images = ImageStore(shared.root_paths(), shared.scratch_dir)

    async def start_engine() -> None:
        try:
            await engine.start()
        except ServiceError as exc:  # a configuration problem: say what, and exit
            raise SystemExit(f"raddiff-vlm cannot start: {exc.message}") from None

    return ServiceApp(
        name="vlm",
        settings=settings,
        registrations=[
            Registration(VLMServicer(engine, images), vlm_pb2_grpc.add_VLMServiceServicer_to_server, SERVICE_FULL_NAME)
        ],
        on_start=start_engine,
        on_stop=engine.stop,
        engine_healthy=engine.healthy,
    )
