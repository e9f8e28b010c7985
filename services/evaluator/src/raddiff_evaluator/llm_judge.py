"""RadDiff's LLM judge: one chat call scores every prediction against the truths
of A and B, answering JSON under a schema. A bad answer (not JSON, the wrong
number of scores, a score outside 0..2) is sent back with its problems named,
up to max_attempts answers; what is still wrong after that is repaired (a score
clamped into 0..2, a missing one scored 0), and every retry or repair is said in
the rationale it touches. An answer that is never JSON is an error, not zeros."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

from raddiff_evaluator.engine import JudgeBackend, JudgeInput, Verdict
from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import ServiceError
from raddiff_kit.json_schema import short_text
from raddiff_kit.llm_json import NoUsableAnswer, Refusal, Unusable, ask_json, loads_answer


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system", "user" or "assistant"
    text: str


class ChatClient(Protocol):
    """Sends a conversation to a chat model and returns its answer's text."""

    async def chat(
        self, turns: list[ChatTurn], json_schema: str, max_tokens: int, fresh: bool, deadline: Deadline
    ) -> str: ...

    async def close(self) -> None: ...


SYSTEM_PROMPT = """\
You are a board-certified radiologist grading a system that explains how one set of chest X-rays (group A) \
differs from another (group B). You are given the true difference and the system's ranked predictions, each of \
which claims a finding that is more common in group A than in group B. Grade each prediction on its own:

2 = it states group A's finding (a synonym counts) with every attribute the truth gives: side, severity, \
lobe or zone, device and device position.
1 = partially right: A's finding with a missing or wrong side, severity, location or position; a broader \
category that contains A's finding; or a closely related finding or sign of it.
0 = unrelated; or it negates A's finding; or it describes group B's state instead.

Example: truth A "moderate right pleural effusion", truth B "no pleural effusion": "moderate right-sided \
effusion" is 2; "pleural effusion" and "left pleural effusion" are 1; "no pleural effusion" and "cardiomegaly" \
are 0. Truth A "NG tube in bronchus", truth B "NG tube in stomach": "enteric tube in the right main bronchus" \
is 2; "malpositioned NG tube" is 1; "NG tube tip below the diaphragm" is 0.

Answer with JSON only, no prose and no code fences."""


def user_prompt(item: JudgeInput) -> str:
    # One line per prediction, whatever the caller sent: a newline inside one would break the numbering.
    lines = "\n".join(f"{i}. {' '.join(p.split())}" for i, p in enumerate(item.predictions, start=1))
    n = len(item.predictions)
    return (
        f'Truth, group A: "{item.truth_a}"\nTruth, group B: "{item.truth_b}"\n\nPredictions:\n{lines}\n\n'
        f'Return {{"scores": [{{"index": 1, "score": 0, "reason": "a few words"}}, ...]}} with exactly {n} '
        f"entries, index 1 to {n} in order, each score 0, 1 or 2."
    )


def answer_schema(n: int) -> str:
    entry = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 1, "maximum": n},
            "score": {"type": "integer", "enum": [0, 1, 2]},
            "reason": short_text(80),
        },
        "required": ["index", "score", "reason"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"scores": {"type": "array", "items": entry, "minItems": n, "maxItems": n}},
        "required": ["scores"],
        "additionalProperties": False,
    }
    return json.dumps(schema)


@dataclass
class ParsedAnswer:
    # index (1-based) -> (score as given, reason); a score may still be outside 0..2.
    entries: dict[int, tuple[int, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    is_json: bool = True


def _as_score(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def parse_answer(text: str, n: int) -> ParsedAnswer:
    parsed = ParsedAnswer()
    try:
        # Models wrap JSON in code fences or a sentence; the kit reads through both.
        data = loads_answer(text, not_json="the answer was not valid JSON")
    except Unusable as exc:
        return ParsedAnswer(problems=[exc.problem], is_json=False)
    rows = data.get("scores") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        return ParsedAnswer(problems=['the answer had no "scores" list'], is_json=False)
    for position, row in enumerate(rows, start=1):
        row = row if isinstance(row, dict) else {"score": row}
        index = _as_score(row.get("index", position))
        score = _as_score(row.get("score"))
        if index is None or not 1 <= index <= n:
            parsed.problems.append(f"entry {position} has index {row.get('index')!r}, not 1..{n}")
            continue
        if score is None:
            parsed.problems.append(f"prediction {index}: score {row.get('score')!r} is not a whole number")
            continue
        if index in parsed.entries:
            parsed.problems.append(f"prediction {index} was scored twice")
            continue
        if score not in (0, 1, 2):
            parsed.problems.append(f"prediction {index}: score {score} is outside 0..2")
        parsed.entries[index] = (score, str(row.get("reason", "")).strip())
    if len(rows) != n:
        parsed.problems.append(f"{len(rows)} scores for {n} predictions")
    missing = sorted(set(range(1, n + 1)) - parsed.entries.keys())
    if missing:
        parsed.problems.append(f"no score for prediction(s) {', '.join(map(str, missing))}")
    return parsed


def repair(parsed: ParsedAnswer, n: int, note: str) -> list[Verdict]:
    """Verdicts from the last usable answer: clamp out-of-range scores, score missing ones 0, say so."""
    verdicts = []
    for index in range(1, n + 1):
        if index not in parsed.entries:
            verdicts.append(Verdict(0, f"llm: no usable score for this prediction; scored 0{note}"))
            continue
        score, reason = parsed.entries[index]
        fixed = min(max(score, 0), 2)
        clamp = f" [score {score} outside 0..2, clamped to {fixed}]" if fixed != score else ""
        verdicts.append(Verdict(fixed, f"llm: {reason or 'no reason given'}{clamp}{note}"))
    return verdicts


class LLMJudge(JudgeBackend):
    name = "llm"

    def __init__(self, client: ChatClient, max_attempts: int = 3, max_tokens: int = 8192) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens

    async def close(self) -> None:
        await self.client.close()

    async def judge(self, item: JudgeInput, deadline: Deadline) -> list[Verdict]:
        n = len(item.predictions)
        schema = answer_schema(n)
        # About 30 tokens per scored entry, with room to spare; a cut-off answer is invalid JSON.
        budget = min(self.max_tokens, 256 + 64 * n)

        # A retry must reach the model, not the proxy's cache of the answer just refused.
        async def send(conversation: list[ChatTurn], attempt: int) -> str:
            return await self.client.chat(conversation, schema, budget, fresh=attempt > 1, deadline=deadline)

        try:
            answer = await ask_json(
                send,
                [ChatTurn("system", SYSTEM_PROMPT), ChatTurn("user", user_prompt(item))],
                lambda text: _complete(parse_answer(text, n)),
                attempts=self.max_attempts,
                message=ChatTurn,
                correction=lambda problem: (
                    f"That answer had problems: {problem}. Answer again with "
                    f"JSON only: exactly {n} entries, index 1 to {n}, each score 0, 1 or 2."
                ),
            )
        except NoUsableAnswer as exc:
            tried = _history(exc.refusals)
            if not isinstance(exc.partial, ParsedAnswer):
                raise ServiceError(
                    f"the LLM judge gave no usable JSON in {self.max_attempts} answers: {tried}"
                ) from None
            return repair(exc.partial, n, f" [repaired after {self.max_attempts} answers: {tried}]")
        if not answer.refusals:
            return repair(answer.value, n, "")
        return repair(answer.value, n, f" [retried: {_history(answer.refusals)}]")


def _history(refusals: list[Refusal]) -> str:
    return " | ".join(f"answer {r.attempt}: {r.problem}" for r in refusals)


def _complete(parsed: ParsedAnswer) -> ParsedAnswer:
    """The answer when nothing is wrong with it, else Unusable naming every problem; a JSON answer rides
    along, since its scores can still be repaired (clamped, missing ones 0) if no later answer is clean."""
    if parsed.problems:
        raise Unusable("; ".join(parsed.problems), partial=parsed if parsed.is_json else None)
    return parsed
