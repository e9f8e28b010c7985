"""The judge engine: backends score ranked predictions 2/1/0 against the truths of A
and B; the Evaluator validates input, picks the backend and computes RadDiff's
Acc@1 = s[0]/2, Acc@5 = max(s[:5])/2 and Acc@N = max(s)/2. No gRPC in here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import InvalidArgument

SCORES = (0, 1, 2)


@dataclass(frozen=True)
class Verdict:
    score: int
    rationale: str


@dataclass(frozen=True)
class JudgeInput:
    predictions: list[str]
    truth_a: str
    truth_b: str


def accuracy_at(scores: Sequence[int], k: int | None = None) -> float:
    """RadDiff's Acc@k: the best score among the top k (all when k is None), over 2."""
    top = scores if k is None else scores[:k]
    return max(top) / 2.0


@dataclass(frozen=True)
class Judgement:
    backend: str
    verdicts: list[Verdict]

    @property
    def scores(self) -> list[int]:
        return [v.score for v in self.verdicts]

    @property
    def acc_at_1(self) -> float:
        return accuracy_at(self.scores, 1)

    @property
    def acc_at_5(self) -> float:
        return accuracy_at(self.scores, 5)

    @property
    def acc_at_n(self) -> float:
        return accuracy_at(self.scores)


class JudgeBackend(ABC):
    """Scores each prediction against the truths; one Verdict per prediction, in order."""

    name: str

    async def load(self) -> None:
        """Load weights or open connections before the server accepts calls."""
        return None

    async def close(self) -> None:
        """Release what load() took."""
        return None

    @abstractmethod
    async def judge(self, item: JudgeInput, deadline: Deadline) -> list[Verdict]: ...


class Evaluator:
    def __init__(
        self, backends: Sequence[JudgeBackend], default: str, max_predictions: int, max_text_chars: int
    ) -> None:
        self.backends = {b.name: b for b in backends}
        if default not in self.backends:
            raise ValueError(f"default backend {default!r} is not one of {sorted(self.backends)}")
        self.default = default
        self.max_predictions = max_predictions
        self.max_text_chars = max_text_chars

    def backend(self, name: str) -> JudgeBackend:
        chosen = name.strip() or self.default
        if chosen not in self.backends:
            choices = ", ".join(sorted(self.backends))
            raise InvalidArgument(f"unknown backend {name!r}; choose one of: {choices} (empty means {self.default})")
        return self.backends[chosen]

    def validate(self, item: JudgeInput) -> JudgeInput:
        if not item.predictions:
            raise InvalidArgument("predictions is empty; send at least one ranked prediction")
        if len(item.predictions) > self.max_predictions:
            raise InvalidArgument(f"{len(item.predictions)} predictions, over the limit of {self.max_predictions}")
        texts = {f"predictions[{i}]": p for i, p in enumerate(item.predictions)}
        texts |= {"truth_a": item.truth_a, "truth_b": item.truth_b}
        for field, text in texts.items():
            if not text.strip():
                raise InvalidArgument(f"{field} is empty")
            if len(text) > self.max_text_chars:
                raise InvalidArgument(f"{field} has {len(text)} characters, over the limit of {self.max_text_chars}")
        return JudgeInput([p.strip() for p in item.predictions], item.truth_a.strip(), item.truth_b.strip())

    async def judge(self, item: JudgeInput, backend: str, deadline: Deadline) -> Judgement:
        chosen = self.backend(backend)
        clean = self.validate(item)
        verdicts = await chosen.judge(clean, deadline)
        if len(verdicts) != len(clean.predictions) or any(v.score not in SCORES for v in verdicts):
            raise RuntimeError(f"backend {chosen.name} broke its contract: {verdicts!r}")
        return Judgement(chosen.name, verdicts)

    async def load(self) -> None:
        for b in self.backends.values():
            await b.load()

    async def close(self) -> None:
        for b in self.backends.values():
            await b.close()
