"""build_app(): settings -> image store -> engine loader -> servicer -> ServiceApp."""

from __future__ import annotations

import torch

from raddiff.v1 import embedding_pb2_grpc
from raddiff_embedding.checkpoints import CheckpointError
from raddiff_embedding.engine import EmbeddingEngine, OpenClipEngine
from raddiff_embedding.servicer import EmbeddingServicer
from raddiff_embedding.settings import EmbeddingSettings
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import SharedSettings, load_settings

SERVICE = "raddiff.v1.EmbeddingService"


def build_app(settings: EmbeddingSettings | None = None, shared: SharedSettings | None = None) -> ServiceApp:
    settings = settings or load_settings(EmbeddingSettings)
    shared = shared or load_settings(SharedSettings)
    store = ImageStore(shared.root_paths(), shared.scratch_dir)
    checkpoint = settings.checkpoint_path(shared)

    def load_engine() -> EmbeddingEngine:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        return OpenClipEngine.from_checkpoint(checkpoint, settings.preprocessing, settings.device, settings.batch_shape)

    servicer = EmbeddingServicer(settings, store, load_engine)

    async def on_start() -> None:
        try:
            await servicer.start()
        except CheckpointError as exc:
            raise SystemExit(f"raddiff-embedding: {exc}") from None

    return ServiceApp(
        name="embedding",
        settings=settings,
        registrations=[Registration(servicer, embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, SERVICE)],
        on_start=on_start,
    )
