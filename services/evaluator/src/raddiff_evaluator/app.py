from __future__ import annotations

from raddiff.v1 import evaluator_pb2, evaluator_pb2_grpc
from raddiff_evaluator.embedder import SentenceEmbedder
from raddiff_evaluator.engine import Evaluator
from raddiff_evaluator.llm_client import ProxyChatClient
from raddiff_evaluator.llm_judge import LLMJudge
from raddiff_evaluator.semantic import SemanticJudge
from raddiff_evaluator.servicer import EvaluatorServicer
from raddiff_evaluator.settings import EvaluatorSettings
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import load_settings

SERVICE = evaluator_pb2.DESCRIPTOR.services_by_name["EvaluatorService"].full_name


def build_evaluator(settings: EvaluatorSettings) -> Evaluator:
    chat = ProxyChatClient(settings.llm_target, settings.llm_model, settings.llm_timeout_s)
    return Evaluator(
        [
            SemanticJudge(SentenceEmbedder(settings.embedder_path)),
            LLMJudge(chat, settings.llm_max_attempts, settings.llm_max_tokens),
        ],
        default=settings.default_backend,
        max_predictions=settings.max_predictions,
        max_text_chars=settings.max_text_chars,
    )


def build_app(settings: EvaluatorSettings | None = None) -> ServiceApp:
    settings = settings or load_settings(EvaluatorSettings)
    evaluator = build_evaluator(settings)
    registration = Registration(
        EvaluatorServicer(evaluator), evaluator_pb2_grpc.add_EvaluatorServiceServicer_to_server, SERVICE
    )
    return ServiceApp("evaluator", settings, [registration], on_start=evaluator.load, on_stop=evaluator.close)
