"""The thin adapter: JudgeRequest -> Evaluator.judge -> JudgeResponse."""

from __future__ import annotations

import grpc

from raddiff.v1 import evaluator_pb2, evaluator_pb2_grpc
from raddiff_evaluator.engine import Evaluator, JudgeInput
from raddiff_kit.deadlines import Deadline


class EvaluatorServicer(evaluator_pb2_grpc.EvaluatorServiceServicer):
    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    async def Judge(
        self, request: evaluator_pb2.JudgeRequest, context: grpc.aio.ServicerContext
    ) -> evaluator_pb2.JudgeResponse:
        item = JudgeInput(list(request.predictions), request.truth_a, request.truth_b)
        judgement = await self.evaluator.judge(item, request.backend, Deadline.from_context(context))
        return evaluator_pb2.JudgeResponse(
            scores=judgement.scores,
            acc_at_1=judgement.acc_at_1,
            acc_at_5=judgement.acc_at_5,
            acc_at_n=judgement.acc_at_n,
            backend=judgement.backend,
            rationales=[v.rationale for v in judgement.verdicts],
        )
