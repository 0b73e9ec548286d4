"""What the kit needs to know about a backbone, answered in one place: its family, whether it is an encoder,
its transformer body, its end token and the tokenizer's padding side.

Every part (loader, injectors, heads, Yes/No scoring, the planner) asks here instead of reading
``config.model_type`` or the tokenizer's special tokens itself, so one rule holds everywhere.

Encoders. ``ENCODER_TYPES`` lists the ``model_type`` values whose Hugging Face models are bidirectional
encoders without a causal LM class: in transformers 5.24 none of them is in ``MODEL_FOR_CAUSAL_LM_MAPPING``
except ``bert``, ``roberta``, ``xlm-roberta`` and ``electra``, whose ``*ForCausalLM`` classes are the encoder
run with ``is_decoder=True`` (a different model from the pretrained one). ``albert`` (``AlbertModel``) and
``deberta-v2`` (``DebertaV2Model``) are encoders as much as ``bert`` and ``deberta`` are; an older list in the
pooled head left them out, so an ALBERT or DeBERTa-v2 backbone got decoder (last-token) pooling while the
loader loaded it as an encoder. The union below is the one list.
"""

from __future__ import annotations

from typing import Any

from benchbed.errors import ConfigError

ENCODER_TYPES = frozenset(
    {"bert", "roberta", "distilbert", "xlm-roberta", "deberta", "deberta-v2", "electra", "mpnet", "albert"}
)
# The side every tokenizer pads on (``loaded.load_tokenizer`` sets it explicitly): left, so the answer
# position is the last column of every row; Llama-family models give NaN losses with a wrong side (CoLLM
# issue #6).
PADDING_SIDE = "left"
UNKNOWN_FAMILY = "?"


def unwrap_peft(model: Any) -> Any:
    """The model under a peft wrapper (``PeftModel.get_base_model``), or ``model`` itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def backbone_body(model: Any) -> Any:
    """The transformer without its LM head (LlamaModel, GPT2Model, BertModel itself), LoRA layers kept.

    Heads that need hidden states call this instead of the causal LM, so no vocabulary-wide projection is
    computed (30k-150k columns: most of the cost of a small model's forward); layer-prefix injectors reach
    the attention layers through it."""
    model = unwrap_peft(model)  # a peft model: its LoRA layers live inside the wrapped model
    return getattr(model, "base_model", model)


def family(model_or_config: Any) -> str:
    """The backbone's ``model_type`` (``llama``, ``gpt2``, ``bert``...) from a model, a peft-wrapped model or
    a config; ``"?"`` when it has none."""
    own = getattr(model_or_config, "model_type", None)
    if isinstance(own, str):  # a config
        return own
    config = getattr(unwrap_peft(model_or_config), "config", None)
    return str(getattr(config, "model_type", UNKNOWN_FAMILY))


def is_encoder(model_or_config: Any) -> bool:
    """True for bidirectional encoders (``ENCODER_TYPES``): loaded with ``AutoModel``, no next-token head."""
    return family(model_or_config) in ENCODER_TYPES


def end_token(tokenizer: Any, model_or_config: Any = None, *, who: str = "") -> int:
    """The one id the kit closes answers, item ids and generations with: the tokenizer's eos, else the model
    config's eos (the first of a list), else the tokenizer's ``[SEP]`` (the BERT-vocabulary presets).

    ``who`` names the method for the one-line error when there is none."""
    config = getattr(model_or_config, "config", model_or_config)
    for tid in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(config, "eos_token_id", None),
        getattr(tokenizer, "sep_token_id", None),
    ):
        if isinstance(tid, int):
            return tid
        if isinstance(tid, list) and tid:
            return int(tid[0])
    raise ConfigError(f"{who or 'this method'}: the backbone's tokenizer has no end-of-sequence token")
