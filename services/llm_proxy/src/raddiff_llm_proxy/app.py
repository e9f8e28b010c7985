"""build_app(): the LLM proxy wired to its upstream and cache."""

from __future__ import annotations

from raddiff.v1 import llm_pb2, llm_pb2_grpc
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_llm_proxy.cache import CachingEngine, ResponseCache
from raddiff_llm_proxy.engine import ChatEngine, OpenAICompatibleEngine, UnconfiguredEngine
from raddiff_llm_proxy.servicer import LLMProxyServicer
from raddiff_llm_proxy.settings import LLMSettings

SERVICE_FULL_NAME = llm_pb2.DESCRIPTOR.services_by_name["LLMProxyService"].full_name


def build_engine(settings: LLMSettings) -> ChatEngine:
    # Without an upstream the service still starts (the embedded default runs without an LLM),
    # answers from the cache, and says what to configure for everything else.
    engine: ChatEngine = OpenAICompatibleEngine(settings) if settings.base_url else UnconfiguredEngine()
    if settings.cache_enabled:
        engine = CachingEngine(engine, ResponseCache(settings.cache_dir))
    return engine


def build_app(settings: LLMSettings | None = None, shared: SharedSettings | None = None) -> ServiceApp:
    settings = settings or load_settings(LLMSettings)
    shared = shared or load_settings(SharedSettings)
    engine = build_engine(settings)
    images = ImageStore(shared.root_paths(), shared.scratch_dir)
    servicer = LLMProxyServicer(engine, images, settings.model, settings.max_images_per_request)
    return ServiceApp(
        name="llm_proxy",
        settings=settings,
        registrations=[Registration(servicer, llm_pb2_grpc.add_LLMProxyServiceServicer_to_server, SERVICE_FULL_NAME)],
        on_stop=engine.close,
    )
