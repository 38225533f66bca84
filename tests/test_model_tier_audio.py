"""The model tier hears: a tiny random audio-text model (Qwen2-Audio class: a Whisper-style
encoder, a projector and a Qwen2 text model, built and saved here from a small config, no
download) through the local transformers backend, and the audio settings (``audio: off |
fallback | always``, ``max_audio_s``) through the routing policy.

A random model writes gibberish, so these tests check that the audio reaches the model (its
features and audio tokens go into ``generate``), that the random output is rejected, and,
with the generation step replaced by fixed text, that a well-formed answer is validated."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from devices.registry import HomeConfig, load_demo_config  # noqa: E402
from intents.model_tier import (  # noqa: E402
    AudioInput,
    AudioMode,
    ImageInput,
    ModelAnswer,
    ModelBackend,
    ModelNoToolCallError,
    ModelQuery,
    ModelTier,
    ModelTierAudioTooLong,
    ModelTierConfigError,
    ModelTierPolicy,
    ModelTierSettings,
    TieredRecognizer,
    ToolCall,
    build_model_tier,
)
from intents.model_tier_transformers import TransformersModelTier  # noqa: E402
from intents.recognizer import Recognizer  # noqa: E402
from intents.schema import Recognition  # noqa: E402

SPECIALS = [
    "<|pad|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
]

#: Qwen2-Audio-like: content parts, an audio part rendered as its placeholder tokens.
AUDIO_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if 'audio_url' in c %}"
    "Audio: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [
        '{"name": "hearth_command", "arguments": {"intent": "light_on", '
        '"device_ids": ["kitchen_light"]}}',
        "turn on the kitchen light please, it is too dark where I cook",
        "You are the command interpreter of a smart home. Functions (JSON schema)",
    ]
    tok.train_from_iterator(corpus * 5, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    fast.chat_template = AUDIO_TEMPLATE
    return fast


@pytest.fixture(scope="module")
def audio_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    path = tmp_path_factory.mktemp("tiny-qwen2-audio")
    tok = _tokenizer()
    mel_bins = 16
    cfg = Qwen2AudioConfig(
        audio_config={
            "num_mel_bins": mel_bins,
            "d_model": 16,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    Qwen2AudioForConditionalGeneration(cfg).save_pretrained(path)
    features = WhisperFeatureExtractor(feature_size=mel_bins, sampling_rate=16000)
    Qwen2AudioProcessor(
        feature_extractor=features, tokenizer=tok, chat_template=AUDIO_TEMPLATE
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def home() -> HomeConfig:
    return load_demo_config()


def _settings(path: Path, **kw: Any) -> ModelTierSettings:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("timeout_s", 60)
    return ModelTierSettings(backend=ModelBackend.TRANSFORMERS, path=str(path), **kw)


@pytest.fixture(scope="module")
def audio_tier(audio_model_dir: Path) -> Iterator[TransformersModelTier]:
    tier = build_model_tier(_settings(audio_model_dir, audio=AudioMode.FALLBACK))
    assert isinstance(tier, TransformersModelTier)
    tier.load()
    yield tier
    tier.close()


def _tone(seconds: float, hz: float = 220.0) -> AudioInput:
    t = np.arange(int(16000 * seconds), dtype=np.float32) / 16000
    return AudioInput.from_samples(0.3 * np.sin(2 * np.pi * hz * t))


def test_audio_input_is_16_bit_wav() -> None:
    import io
    import wave

    audio = _tone(0.5)
    assert audio.duration_s == pytest.approx(0.5)
    with wave.open(io.BytesIO(audio.to_wav())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() == 8000
    back = audio.to_float32()
    assert back.dtype == np.float32 and abs(float(back.max()) - 0.3) < 1e-3
    # out-of-range samples are clipped, not wrapped round
    loud = AudioInput.from_samples(np.array([2.0, -2.0], dtype=np.float32))
    assert list(np.frombuffer(loud.pcm, "<i2")) == [32767, -32767]


def test_audio_model_loads_as_a_listener(audio_tier: TransformersModelTier) -> None:
    assert audio_tier.hears and not audio_tier.multimodal
    assert audio_tier.load_seconds is not None


def test_prompt_has_the_audio_placeholder_only_with_audio(
    audio_tier: TransformersModelTier, home: HomeConfig
) -> None:
    with_audio = audio_tier.build_prompt("make it brighter", config=home, n_audio=1)
    without = audio_tier.build_prompt("make it brighter", config=home)
    assert "<|audio_bos|><|AUDIO|><|audio_eos|>" in with_audio
    assert "<|AUDIO|>" not in without
    assert with_audio.index("<|AUDIO|>") < with_audio.index("make it brighter")
    # a user cannot type the audio token into the prompt
    assert "<|AUDIO|>" not in audio_tier.sanitize("say <|AUDIO|> now")


def test_audio_reaches_generate_and_random_output_is_rejected(
    audio_tier: TransformersModelTier, home: HomeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    model = audio_tier._model
    real_generate = model.generate

    def spy(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return real_generate(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    try:
        rec = audio_tier.recognize("it is too dark where I cook", config=home, audio=_tone(1.0))
    except ModelNoToolCallError:
        rec = None  # gibberish with no function call at all: also a refusal
    assert rec is None or rec.intent is None
    feats = seen["input_features"]
    assert feats.shape[1] == 16  # mel bins of this model's feature extractor
    audio_id = audio_tier._tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    n_audio_tokens = int((seen["input_ids"] == audio_id).sum())
    # one second of audio -> 100 mel frames -> 50 encoder frames -> 25 audio tokens
    assert n_audio_tokens == 25
    assert int(seen["feature_attention_mask"].sum()) == 100


def test_no_audio_with_audio_off(audio_model_dir: Path, home: HomeConfig) -> None:
    tier = build_model_tier(_settings(audio_model_dir, audio=AudioMode.OFF))
    assert isinstance(tier, TransformersModelTier)
    tier.load()
    seen: list[str] = []
    tier._generate = lambda prompt, *a, **k: seen.append(prompt) or "{}"  # type: ignore[method-assign]
    with pytest.raises(ModelNoToolCallError):
        tier.recognize("it is too dark where I cook", config=home, audio=_tone(1.0))
    assert "<|AUDIO|>" not in seen[0]
    tier.close()


def test_well_formed_answer_from_the_audio_model_is_validated(
    audio_model_dir: Path, home: HomeConfig
) -> None:
    tier = build_model_tier(_settings(audio_model_dir, audio=AudioMode.ALWAYS))
    assert isinstance(tier, TransformersModelTier)
    tier.load()
    calls: list[tuple[str, int]] = []

    def fixed(prompt: str, images: Any, deadline: float, cancel: Any, prefix: Any,
              sound: Any = None) -> str:
        calls.append((prompt, len(sound or [])))
        return (
            '<tool_call>{"name": "hearth_command", "arguments": {"intent": "light_on", '
            '"device_ids": ["kitchen_light"], "confidence": 0.9}}</tool_call>'
        )

    tier._generate = fixed  # type: ignore[method-assign]
    rec = tier.recognize("it is too dark where I cook", config=home, audio=_tone(0.5))
    assert rec.intent is not None and rec.intent.name == "light_on"
    assert rec.intent.slots.device_ids == ["kitchen_light"] and rec.intent.source == "llm"
    assert calls[0][1] == 1 and "<|AUDIO|>" in calls[0][0]
    tier.close()


def test_audio_longer_than_the_limit_is_refused(
    audio_tier: TransformersModelTier, home: HomeConfig
) -> None:
    limited = build_model_tier(
        _settings(Path(audio_tier.path), audio=AudioMode.FALLBACK, max_audio_s=1.0)
    )
    with pytest.raises(ModelTierAudioTooLong) as e:
        limited.recognize("it is too dark where I cook", config=home, audio=_tone(1.5))
    assert e.value.code == "model_audio_too_long"
    assert "too long" in e.value.public_message


def test_audio_setting_needs_an_audio_model(tmp_path: Path, home: HomeConfig) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = _tokenizer()
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tier = build_model_tier(_settings(tmp_path, audio=AudioMode.FALLBACK))
    with pytest.raises(ModelTierConfigError, match="audio-text model"):
        tier.load()


def test_cuda_device_is_accepted_in_settings(audio_model_dir: Path) -> None:
    s = ModelTierSettings.from_config(
        _home_with_llm({"backend": "transformers", "path": str(audio_model_dir),
                        "device": "cuda", "audio": "always", "max_audio_s": 20}),
    )
    assert (s.device, s.audio, s.max_audio_s) == ("cuda", AudioMode.ALWAYS, 20)
    with pytest.raises(ModelTierConfigError, match="audio"):
        ModelTierSettings.from_config(
            _home_with_llm({"backend": "transformers", "path": "x", "audio": "sometimes"})
        )


def _home_with_llm(llm: dict[str, Any]) -> HomeConfig:
    cfg = load_demo_config()
    cfg.assistant = {"llm": llm}
    return cfg


# -- the policy: when the model hears ---------------------------------------------------------


class _Listener(ModelTier):
    """Records what the tier would send (unit test of the routing layer only)."""

    def __init__(self, settings: ModelTierSettings) -> None:
        super().__init__(settings)
        self.heard_audio: list[AudioInput | None] = []

    def _ask(self, query: ModelQuery) -> ModelAnswer:
        self.heard_audio.append(query.audio)
        args = '{"intent": "light_on", "device_ids": ["kitchen_light"]}'
        return ModelAnswer(tool_calls=(ToolCall("hearth_command", args),))


def _listener(mode: AudioMode) -> _Listener:
    return _Listener(
        ModelTierSettings(backend=ModelBackend.OPENAI, url="http://127.0.0.1:9/v1", audio=mode,
                          policy=ModelTierPolicy.PREFER_LOCAL)
    )


@pytest.fixture(scope="module")
def grammar(home: HomeConfig) -> Recognizer:
    return Recognizer(home)


@pytest.mark.parametrize(
    ("mode", "grammar_text_asks", "other_asks", "hears"),
    [
        (AudioMode.OFF, False, True, False),
        (AudioMode.FALLBACK, False, True, True),
        (AudioMode.ALWAYS, True, True, True),
    ],
)
def test_audio_modes(
    grammar: Recognizer, home: HomeConfig, mode: AudioMode, grammar_text_asks: bool,
    other_asks: bool, hears: bool,
) -> None:
    tier = _listener(mode)
    tiered = TieredRecognizer(grammar, tier, home)
    audio = _tone(0.5)
    rec: Recognition = tiered.recognize("turn on the kitchen light", audio=audio)
    assert rec.intent is not None and rec.intent.name == "light_on"
    assert bool(tier.heard_audio) == grammar_text_asks
    tier.heard_audio.clear()
    tiered.recognize("it's too dark where I cook", audio=audio)
    assert len(tier.heard_audio) == int(other_asks)
    assert (tier.heard_audio[0] is audio) == hears
    # typed text (no audio) never makes "always" ask when the grammar is sure
    tier.heard_audio.clear()
    tiered.recognize("turn on the kitchen light")
    assert tier.heard_audio == []


def test_always_too_long_falls_back_to_a_confident_grammar(
    grammar: Recognizer, home: HomeConfig
) -> None:
    tier = _Listener(
        ModelTierSettings(backend=ModelBackend.OPENAI, url="http://127.0.0.1:9/v1",
                          audio=AudioMode.ALWAYS, max_audio_s=1)
    )
    tiered = TieredRecognizer(grammar, tier, home)
    rec = tiered.recognize("turn on the kitchen light", audio=_tone(2.0))
    assert rec.intent is not None and rec.intent.source != "llm"
    with pytest.raises(ModelTierAudioTooLong):
        tiered.recognize("it's too dark where I cook", audio=_tone(2.0))
    assert tier.heard_audio == []


def test_images_and_audio_travel_together(home: HomeConfig) -> None:
    tier = _listener(AudioMode.FALLBACK)
    png = ImageInput.from_base64(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    rec = tier.recognize("is it on", config=home, images=[png], audio=_tone(0.2))
    assert rec.intent is not None
    assert tier.heard_audio[0] is not None


# -- the understanding stage: which turns the model hears ---------------------------------------


class _Decoder:
    """The hypothesis decoder's stand-in: every hypothesis parses as the kitchen light."""

    def __init__(self) -> None:
        self.calls = 0

    def decode(self, hypotheses: Any, **kw: Any) -> Recognition:
        from tests.test_server_session import light_on

        self.calls += 1
        return Recognition(intent=light_on(str(hypotheses[0].text)), reason="decoded")


@pytest.mark.parametrize("mode", [AudioMode.FALLBACK, AudioMode.ALWAYS, AudioMode.OFF])
async def test_understanding_gives_the_model_the_turns_audio(
    home: HomeConfig, mode: AudioMode
) -> None:
    from assistant.app import _Tiered
    from assistant.turn.types import Heard
    from intents.decode import Hypothesis
    from tests.test_server_session import FakeRecognizer
    from tests.test_turn_stages import Stages, utterance

    tier = _listener(mode)
    grammar = FakeRecognizer()
    decoder = _Decoder()
    s = Stages(tiered=_Tiered(TieredRecognizer(grammar, tier, home), ImageInput, AudioInput),
               decoder=decoder)
    samples = np.zeros(8000, dtype=np.float32)
    samples[::50] = 0.25

    def heard(text: str) -> Heard:
        return Heard(text, (Hypothesis(text),))

    # a turn the grammar tiers parse: only "always" asks the model, with the audio
    text = "turn on the kitchen light"
    rec = await s.understanding.recognize(utterance(), text, "en", heard(text), samples)
    assert rec.intent is not None and rec.intent.name == "light_on"
    if mode is AudioMode.ALWAYS:
        assert len(tier.heard_audio) == 1 and tier.heard_audio[0] is not None
        assert tier.heard_audio[0].pcm == AudioInput.from_samples(samples).pcm
        assert rec.intent.source == "llm"
    else:
        assert tier.heard_audio == [] and rec.intent.source == "grammar"
    # typed text: no audio, never heard
    tier.heard_audio.clear()
    rec = await s.understanding.recognize(utterance(), "brighten up where I cook", "en", None)
    assert tier.heard_audio == [None]


def test_yaml_off_and_on_are_audio_modes() -> None:
    import yaml

    raw = yaml.safe_load("llm: {backend: openai, url: 'http://x/v1', audio: off}")["llm"]
    assert raw["audio"] is False  # what YAML makes of a bare off
    assert ModelTierSettings.model_validate(raw).audio is AudioMode.OFF
    raw["audio"] = True
    assert ModelTierSettings.model_validate(raw).audio is AudioMode.FALLBACK
