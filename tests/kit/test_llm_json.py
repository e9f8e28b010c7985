"""The kit's ask-for-JSON loop against a scripted sender (a stand-in for an LLM API): what is sent each round,
corrections, the bound, what a refusal carries, and the lenient JSON reading."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raddiff_kit.llm_json import NoUsableAnswer, Refusal, Unusable, ask_json, cannot_be_used, loads_answer

Turn = tuple[str, str]  # (role, text): the simplest message type a caller could have


class ScriptedSender:
    """Answers with the scripted texts in order; records every conversation and attempt number it is sent."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[list[Turn], int]] = []

    async def __call__(self, conversation: list[Turn], attempt: int) -> str:
        self.sent.append((conversation, attempt))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def parse_count(text: str) -> int:
    """A caller's parser: {"count": n} with 0 <= n <= 10; an answer with a count out of range is partly usable."""
    data = loads_answer(text)
    if not isinstance(data, dict) or not isinstance(data.get("count"), int):
        raise Unusable('the answer has no whole "count"')
    if not 0 <= data["count"] <= 10:
        raise Unusable(f"count {data['count']} is outside 0..10", partial=min(max(data["count"], 0), 10))
    return data["count"]


START: list[Turn] = [("system", "count things"), ("user", "how many?")]


async def ask(
    sender: ScriptedSender,
    attempts: int = 3,
    correction: Callable[[str], str] = cannot_be_used,
    on_refusal: Callable[[Refusal], None] | None = None,
) -> tuple[int, list[Refusal]]:
    answer = await ask_json(
        sender,
        START,
        parse_count,
        attempts=attempts,
        message=lambda role, text: (role, text),
        correction=correction,
        on_refusal=on_refusal,
    )
    return answer.value, answer.refusals


async def test_a_good_first_answer_is_used_and_nothing_else_is_sent() -> None:
    sender = ScriptedSender('{"count": 4}')
    assert await ask(sender) == (4, [])
    assert sender.sent == [(START, 1)]


async def test_a_non_json_answer_is_sent_back_with_the_reason_and_the_retry_used() -> None:
    sender = ScriptedSender("Sure! About four.", '{"count": 4}')
    value, refusals = await ask(sender)
    assert value == 4
    problem = "the answer is not JSON (Expecting value at position 0)"
    assert refusals == [Refusal(1, "Sure! About four.", problem)]
    (first, _), (second, attempt) = sender.sent
    assert first == START and attempt == 2  # the attempt number lets a caller bypass a response cache
    assert second == [*START, ("assistant", "Sure! About four."), ("user", cannot_be_used(problem))]
    assert second[-1][1] == f"That answer cannot be used: {problem}. Answer again with JSON only."


async def test_a_json_answer_failing_validation_is_corrected_in_the_callers_words() -> None:
    sender = ScriptedSender('{"count": 12}', '{"count": 9}')
    value, refusals = await ask(sender, correction=lambda problem: f"No: {problem}. Try again.")
    assert value == 9
    assert [(r.attempt, r.problem, r.partial) for r in refusals] == [(1, "count 12 is outside 0..10", 10)]
    assert sender.sent[1][0][-1] == ("user", "No: count 12 is outside 0..10. Try again.")


async def test_each_round_grows_the_conversation_and_never_touches_the_callers_list() -> None:
    sender = ScriptedSender("no", "{}", '{"count": 1}')
    start = list(START)
    await ask_json(sender, start, parse_count, attempts=3, message=lambda r, t: (r, t))
    assert start == START
    assert [len(conversation) for conversation, _ in sender.sent] == [2, 4, 6]
    assert [attempt for _, attempt in sender.sent] == [1, 2, 3]


async def test_giving_up_after_the_bound_names_the_last_problem_and_keeps_the_best_partial() -> None:
    sender = ScriptedSender('{"count": -3}', "not json", '{"count": "five"}', '{"count": 1}')
    noted: list[Refusal] = []
    last = 'the answer has no whole "count"'
    with pytest.raises(NoUsableAnswer, match=f"^no usable answer in 3 attempts: {last}$") as caught:
        await ask(sender, on_refusal=noted.append)
    assert len(sender.sent) == 3  # the bound, never the fourth scripted answer
    assert [r.attempt for r in caught.value.refusals] == [1, 2, 3] and noted == caught.value.refusals
    assert caught.value.problem == last
    assert caught.value.partial == 0  # from answer 1, the latest refusal with something left to repair


async def test_refusals_are_reported_as_they_happen_even_when_a_later_send_fails() -> None:
    sender = ScriptedSender("nope", ConnectionError("upstream is down"))
    noted: list[Refusal] = []
    with pytest.raises(ConnectionError, match="upstream is down"):  # transport errors pass through as raised
        await ask(sender, on_refusal=noted.append)
    assert [r.answer for r in noted] == ["nope"]


async def test_only_unusable_means_ask_again() -> None:
    def broken(text: str) -> int:
        raise KeyError("a bug in the parser")

    sender = ScriptedSender('{"count": 1}', '{"count": 1}')
    with pytest.raises(KeyError):
        await ask_json(sender, START, broken, attempts=2, message=lambda r, t: (r, t))
    assert len(sender.sent) == 1


async def test_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await ask(ScriptedSender(), attempts=0)


def test_loads_answer_reads_through_fences_and_sentences() -> None:
    assert loads_answer('  {"a": 1} ') == {"a": 1}
    assert loads_answer('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert loads_answer('Here you go: {"a": 1}. Anything else?') == {"a": 1}
    assert loads_answer("[1, 2]") == [1, 2]


def test_loads_answer_names_what_is_wrong_in_the_callers_words() -> None:
    with pytest.raises(Unusable, match=r"^the answer is not JSON \(Expecting value at position 0\)$"):
        loads_answer("no")
    # the position is the fenced body's, the part the model should fix
    with pytest.raises(Unusable, match=r"^no JSON here \(Expecting ',' delimiter at position 8\)$") as caught:
        loads_answer('```json\n{"a": 1 "b": 2}\n```', not_json="no JSON here")
    assert isinstance(caught.value, ValueError) and caught.value.partial is None
