"""The LLM proposers (RadDiff's "visdiff", "raddiff" and "reports" styles) and the "auto" fallback:
the prompt, the answer's JSON schema, and its parsing with one repair round (raddiff_kit.llm_json)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raddiff_kit.json_schema import short_text
from raddiff_kit.llm_json import NoUsableAnswer, Refusal, Unusable, ask_json, loads_answer
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.ports import ChatMessage, ChatModel, DependencyError, NotConfigured, Sampling
from raddiff_orchestrator.agent.proposers.base import Evidence, Proposal, ProposalInput, Proposer, clean_findings
from raddiff_orchestrator.agent.results import RankedBrief

RADIOLOGY_SYSTEM = (
    "You are an expert radiologist. You compare two groups of chest X-rays and name, in radiology "
    "language, the findings that distinguish the first group from the second."
)
GENERAL_SYSTEM = "You are a careful analyst who compares two groups of images and names what sets them apart."
_MAX_TEXT_CHARS = 1200  # per caption or report; keeps a 2 x 20 image prompt well inside any context

_PHRASING = (
    "Each finding is one short phrase a radiologist would write about a single image, specific about side, "
    'location and severity when they matter (for example "right pleural effusion", "enlarged cardiac '
    'silhouette", "left lower lobe consolidation"). Name what is present in group A, never an absence, and do '
    "not mention the groups in a finding."
)
_GENERAL_PHRASING = (
    "Each concept is a short phrase that could describe a single image of group A (for example "
    '"bright region at the bottom", "large round shape"). Do not mention the groups in a concept.'
)


def findings_schema(config: AgentConfig) -> dict[str, Any]:
    proposer = config.proposer
    return {
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": short_text(120),
                "minItems": min(proposer.min_hypotheses, proposer.num_hypotheses),
                "maxItems": proposer.num_hypotheses,
            }
        },
        "required": ["findings"],
        "additionalProperties": False,
    }


def group_lines(a: Sequence[Evidence], b: Sequence[Evidence], source: str) -> str:
    """RadDiff's layout: one line per image, "Group A: ..." then "Group B: ..."; source caption or report."""

    def one(group: str, item: Evidence) -> str:
        text = item.report if source == "report" else item.caption
        flat = " ".join((text or "(none)").split())[:_MAX_TEXT_CHARS]
        return f"Group {group}: {flat}"

    return "\n".join([*(one("A", e) for e in a), *(one("B", e) for e in b)])


def feedback_block(feedback: Sequence[RankedBrief]) -> str:
    """RadDiff's previous-results block: "Top k Difference: ..." / "Top k Score: ..." lines."""
    lines = []
    for i, item in enumerate(feedback, 1):
        lines.append(f"Top {i} Difference: {item.finding}")
        lines.append(f"Top {i} Score: {item.auroc:.3f}")
    return "\n".join(lines)


def proposal_prompt(style: str, given: ProposalInput, config: AgentConfig) -> str:
    """The user message of one proposal round; the images travel beside it (see proposal_images)."""
    low, high = min(config.proposer.min_hypotheses, config.proposer.num_hypotheses), config.proposer.num_hypotheses
    source = "report" if style == "reports" else "caption"
    what = "radiology reports" if source == "report" else "descriptions written by a vision-language model"
    parts: list[str] = []
    if style == "visdiff":
        parts.append(
            "Here are descriptions of the images of two groups, one per line, each starting with its group.\n\n"
            + group_lines(given.a, given.b, source)
        )
    else:
        if given.searches:
            parts.append(_zoom_intro(given))
        else:
            parts.append(
                f"The first image is a 4x5 grid of group A's chest X-rays ({len(given.a)} images, up to 20 shown); "
                f"the second is the same for group B ({len(given.b)} images)."
            )
        parts.append(
            f"Here are the {what} of the same X-rays, one per line:\n\n" + group_lines(given.a, given.b, source)
        )
    if given.feedback:
        parts.append(
            "In the previous iteration these were the top findings. Each score is the AUROC with which the "
            "finding's image-text similarity separates group A (positive) from group B: 0.5 is chance, 1.0 is "
            "perfect separation.\n" + feedback_block(given.feedback) + "\n"
            "Refine them: keep what scores well, make it more specific (side, location, severity), and replace "
            "what scores near 0.5 with findings the images support better."
        )
    if style == "visdiff":
        parts.append(
            f"List {low} to {high} distinct concepts that are more often true of group A's images than of group "
            f"B's. {_GENERAL_PHRASING}"
        )
    else:
        parts.append(
            f"List {low} to {high} radiological findings that are more common in group A than in group B. {_PHRASING}"
        )
    parts.append('Answer with JSON only: {"findings": ["...", "..."]}.')
    return "\n\n".join(parts)


def _zoom_intro(given: ProposalInput) -> str:
    n_a = len(given.searches[0].crop_uris.get("a", []))
    lines = [
        f"The images are zoom grids, one per previous top finding. Zoom grid k shows the region boxed for Top k "
        f"Difference, cropped from every sampled X-ray: the first {n_a} tiles (in reading order) are group A's, "
        "the rest group B's."
    ]
    for i, search in enumerate(given.searches, 1):
        box = search.box
        lines.append(
            f'Zoom grid {i}: Top {i} Difference "{search.finding}", region x {box.x0:.2f}-{box.x1:.2f}, '
            f"y {box.y0:.2f}-{box.y1:.2f} of the X-ray."
        )
    return "\n".join(lines)


def proposal_images(style: str, given: ProposalInput) -> tuple[str, ...]:
    """RadDiff's images: the two grids in iteration 1; the zoom grids once there are searches."""
    if style == "visdiff":
        return ()
    if given.searches:
        return tuple(s.grid_uri for s in given.searches)
    return tuple(u for u in (given.grid_a, given.grid_b) if u)


def parse_findings(text: str, limit: int) -> list[str]:
    """The findings in a model's JSON answer; Unusable (a ValueError) naming what is wrong."""
    data = loads_answer(text)
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise Unusable('the answer is not an object with a "findings" list')
    findings = clean_findings(data["findings"], limit)
    if not findings:
        raise Unusable("the answer lists no findings")
    return findings


class LLMProposer:
    """An LLM reads both groups (and, multimodal, looks at their grids) and names what A has more of.

    An unusable answer is sent back with what is wrong, up to `attempts` answers; the notes say so.
    """

    needs_captions = True
    uses_llm = True

    def __init__(self, chat: ChatModel, style: str = "raddiff", attempts: int = 2) -> None:
        if style not in ("visdiff", "raddiff", "reports"):
            raise ValueError(f"unknown LLM proposer style {style!r}")
        self._chat = chat
        self._attempts = attempts
        self.name = style
        self.needs_grids = style != "visdiff"
        self.needs_captions = style != "reports"

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        system = GENERAL_SYSTEM if self.name == "visdiff" else RADIOLOGY_SYSTEM
        user = ChatMessage("user", proposal_prompt(self.name, given, config), proposal_images(self.name, given))
        sampling = Sampling(max_tokens=1024, temperature=0.0, seed=config.seed)
        led_by = tuple(range(len(given.searches)))
        schema = findings_schema(config)

        # The changed conversation of a retry also bypasses any response cache, so the attempt is not needed.
        async def send(conversation: list[ChatMessage], attempt: int) -> str:
            return await self._chat.chat(conversation, schema, sampling)

        def note(refusal: Refusal) -> None:
            notes.append(f"{self.name} proposer: answer {refusal.attempt} unusable ({refusal.problem})")

        try:
            answer = await ask_json(
                send,
                [ChatMessage("system", system), user],
                lambda text: parse_findings(text, config.proposer.num_hypotheses),
                attempts=self._attempts,
                message=ChatMessage,
                on_refusal=note,
            )
        except NoUsableAnswer as exc:
            raise DependencyError(
                f"the LLM gave no usable findings after {self._attempts} attempts: {exc.problem}"
            ) from None
        return [Proposal(text, led_by) for text in answer.value]


class FallbackProposer:
    """The "auto" choice: the LLM while it has a model behind it; from its first NotConfigured, the fallback."""

    def __init__(self, primary: Proposer, fallback: Proposer) -> None:
        self._primary, self._fallback = primary, fallback
        self._active = primary

    @property
    def active(self) -> Proposer:
        return self._active

    @property
    def name(self) -> str:
        return self._active.name

    @property
    def needs_grids(self) -> bool:
        return self._active.needs_grids

    @property
    def needs_captions(self) -> bool:
        return self._primary.needs_captions or self._fallback.needs_captions

    @property
    def uses_llm(self) -> bool:
        return self._active.uses_llm

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        if self._active is self._primary:
            try:
                return await self._primary.propose(given, config, notes)
            except NotConfigured as exc:
                self._active = self._fallback
                notes.append(
                    f"the {self._primary.name} proposer is not available ({exc}); used the {self._fallback.name} "
                    "proposer from here on"
                )
        return await self._fallback.propose(given, config, notes)
