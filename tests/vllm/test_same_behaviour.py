"""The VLM service's behaviour tests (tests/vlm), run here against both engines on the same model.

The functions are imported, not copied: the `vlm` fixture of this folder's conftest is parametrised over
the engines. Engine-specific tests (micro-batching, json_schema UNIMPLEMENTED) stay in tests/vlm.
"""

from __future__ import annotations

from tests.vlm.test_service import (  # noqa: F401 (collected by pytest)
    test_a_prompt_without_images_is_answered,
    test_a_sha256_that_does_not_match_is_refused,
    test_a_too_short_deadline_stops_the_work,
    test_bad_input_gets_a_clear_error,
    test_generate_returns_text_for_an_image,
    test_greedy_is_deterministic_and_depends_on_the_image,
    test_max_tokens_is_honoured,
    test_seeded_sampling_repeats_and_seeds_differ,
)
