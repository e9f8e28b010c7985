"""Both checkpoint kinds load; a CheXzero-format ViT-B/32 gives, through the service, exactly the
vectors of the model that was saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from open_clip.model import CLIP

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc
from raddiff_embedding.app import SERVICE, build_app
from raddiff_embedding.checkpoints import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, load_checkpoint, main
from raddiff_embedding.engine import OpenClipEngine
from raddiff_embedding.preprocess import chexzero_tensor
from raddiff_embedding.settings import EmbeddingSettings
from raddiff_kit.client import open_channel
from raddiff_kit.images import ImageStore
from raddiff_kit.settings import SharedSettings
from tests.embedding.conftest import DataDirs, xray_like

TEXTS = ["no acute cardiopulmonary process", "moderate right pleural effusion"]


@pytest.fixture(scope="module")
def chexzero_like(tmp_path_factory: pytest.TempPathFactory):
    """A randomly initialised OpenAI-CLIP ViT-B/32 (QuickGELU), saved as CheXzero publishes: torch.save(state_dict)."""
    torch.manual_seed(7)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    path = tmp_path_factory.mktemp("chexzero") / "best_64_5e-05_original_22000_0.864.pt"
    torch.save(model.state_dict(), path)
    yield model, path
    path.unlink()  # 600 MB


async def test_chexzero_format_through_the_service_equals_the_saved_model(chexzero_like, data_dirs: DataDirs) -> None:
    model, path = chexzero_like
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert "visual.conv1.weight" in state and "transformer.resblocks.0.attn.in_proj_weight" in state
    assert {"positional_embedding", "text_projection", "logit_scale"} <= state.keys()

    settings = EmbeddingSettings(checkpoint=path, preprocessing="chexzero", metrics_port=0)
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    server, port = await build_app(settings, shared).start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE)
    try:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        names = ["cxr0.png", "cxr5.png"]
        images = embedding_pb2.EmbedImagesRequest(images=[common_pb2.ImageRef(uri=data_dirs.uri(n)) for n in names])
        got_images = await stub.EmbedImages(images, timeout=60)
        got_texts = await stub.EmbedTexts(embedding_pb2.EmbedTextsRequest(texts=TEXTS), timeout=60)
        info = await stub.Info(embedding_pb2.EmbeddingInfoRequest(), timeout=10)
    finally:
        await channel.close()
        await server.stop(0)

    store = ImageStore([data_dirs.root], data_dirs.scratch)
    batch = torch.stack([chexzero_tensor(store.load(data_dirs.uri(n)), 224) for n in names])
    with torch.inference_mode():
        want_images = model.encode_image(batch, normalize=True).numpy()
        want_texts = model.encode_text(open_clip.get_tokenizer("ViT-B-32")(TEXTS), normalize=True).numpy()
    np.testing.assert_allclose([list(v.values) for v in got_images.embeddings], want_images, atol=1e-5)
    np.testing.assert_allclose([list(v.values) for v in got_texts.embeddings], want_texts, atol=1e-5)
    assert (info.dim, info.image_size, info.preprocessing) == (512, 224, "chexzero")
    assert info.model_id.startswith("best_64_5e-05_original_22000_0.864@sha256:")
    assert info.model_id.endswith("+chexzero") and got_images.model_id == info.model_id


def _tiny_openai_clip() -> CLIP:
    """A small CLIP whose state dict has OpenAI's layout (heads = width / 64, as the format implies)."""
    torch.manual_seed(11)
    return CLIP(
        embed_dim=64,
        vision_cfg={"image_size": 64, "patch_size": 32, "width": 128, "layers": 2, "head_width": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
        quick_gelu=True,
    ).eval()


def test_wrapped_and_dataparallel_state_dicts_load(tmp_path: Path) -> None:
    model = _tiny_openai_clip()
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    engine = OpenClipEngine.from_checkpoint(path, "raddiff")
    image = xray_like(2)
    with torch.inference_mode():
        want = model.encode_image(engine.prepare_image(image)[None], normalize=True).numpy()
    np.testing.assert_allclose(engine.embed_images([image]), want, atol=1e-6)
    assert engine.image_size == 64 and engine.dim == 64


def test_bad_checkpoints_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not exist.*init-random"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a torch state dict"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match="not an OpenAI-format CLIP ViT state dict"):
        load_checkpoint(tmp_path / "resnet.pt")
    state = _tiny_openai_clip().state_dict()
    del state["ln_final.weight"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="does not fit a CLIP model"):
        load_checkpoint(tmp_path / "broken.pt")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / CONFIG_NAME).write_text(json.dumps({"model_cfg": {}}))
    with pytest.raises(CheckpointError, match=f"has no {WEIGHTS_NAME}"):
        load_checkpoint(tmp_path / "folder")


def test_init_random_writes_a_loadable_small_model_identified_by_its_weights(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    seed3 = OpenClipEngine.from_checkpoint(small_checkpoint, "raddiff").model_id  # written with seed 3
    folder = str(tmp_path / "a")
    assert main(["init-random", folder, "--seed", "3"]) == 0
    assert json.loads((tmp_path / "a" / CONFIG_NAME).read_text())["model_name"] == "raddiff-clip-small"
    assert OpenClipEngine.from_checkpoint(tmp_path / "a", "raddiff").model_id == seed3  # same seed, same weights
    assert main(["init-random", folder, "--seed", "4"]) == 2  # refuses to overwrite
    assert main(["init-random", folder, "--seed", "4", "--if-missing"]) == 0  # keeps what is there
    assert OpenClipEngine.from_checkpoint(tmp_path / "a", "raddiff").model_id == seed3
    assert main(["init-random", folder, "--seed", "4", "--force"]) == 0
    reseeded = OpenClipEngine.from_checkpoint(tmp_path / "a", "raddiff")
    assert reseeded.model_id != seed3 and reseeded.model_id.startswith("raddiff-clip-small@sha256:")
    assert OpenClipEngine.from_checkpoint(tmp_path / "a", "chexzero").model_id.endswith("+chexzero")
    params = sum(p.numel() for p in load_checkpoint(tmp_path / "a").model.parameters())
    assert params < 30_000_000
