"""LLMRec: a language model asked whether a user will like an item, scored as P("yes")."""

import contextlib
import functools

import torch
from peft import LoraConfig, inject_adapter_in_model
from recbole.model.abstract_recommender import AbstractRecommender, ContextRecommender
from recbole.utils import InputType

from recbole_unlearn.errors import BadInput
from recbole_unlearn.model.backbone import answer_token_id, build_backbone

IGNORE_INDEX = -100
# llm_eval_dtype: the autocast dtype evaluation runs in (None: the weights' own).
EVAL_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


def _answer_logits(backbone, input_ids, attention_mask):
    return backbone.answer_logits(input_ids, attention_mask)


@functools.cache
def compiled_answer_logits():
    """One compiled inference forward for every backbone (its weights are inputs, so models of one
    architecture share the compiled code), for any batch size and prompt length. Kept outside the
    modules so copies and state dicts never see it."""
    return torch.compile(_answer_logits, dynamic=True)


def like_probability(yes_no_logits):
    """P(yes) from (yes, no) logits, float32 whatever their dtype (RecBole's metrics and ours go through
    numpy, which has no bfloat16)."""
    return torch.softmax(yes_no_logits.float(), dim=-1)[:, 0]


def configured_eval_dtype(config):
    """The autocast dtype ``llm_eval_dtype`` names for evaluation (None: none)."""
    name = config["llm_eval_dtype"]
    if name not in EVAL_DTYPES:
        raise BadInput(f"llm_eval_dtype '{name}' is not one of {sorted(EVAL_DTYPES)}.")
    return EVAL_DTYPES[name]


class LLMRec(ContextRecommender):
    """A CONTEXT model, so RecBole's labeled evaluation (AUC, LogLoss) treats it exactly like DeepFM.

    Prompts are tokenized once by ``LLMRecDataset`` (fields ``prompt_ids``/``prompt_length``); a batch
    is trimmed to its longest prompt. The score is the softmax over the two answer tokens' logits.
    """

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        # ContextRecommender.__init__ would build an embedding table per dataset field, which LLMRec
        # never uses (the prompt carries the features); skip it to keep parameter counts honest.
        AbstractRecommender.__init__(self)
        self.LABEL = config["LABEL_FIELD"]
        self.device = config["device"]
        self.prompt_field = dataset.prompt_field
        self.prompt_length_field = dataset.prompt_length_field
        self.tokenizer = dataset.tokenizer
        self.backbone = build_backbone(config, self.tokenizer, dataset.llm_kind)
        if config["llm_lora_r"]:
            # Recommendation tuning of LoRA adapters on the frozen backbone (APA's shard models).
            lora = LoraConfig(
                r=config["llm_lora_r"],
                lora_alpha=config["llm_lora_alpha"],
                lora_dropout=config["llm_lora_dropout"],
                target_modules=list(self.backbone.lora_targets),
            )
            inject_adapter_in_model(lora, self.backbone)
        self.compile_inference = config["llm_compile_inference"]
        self.eval_dtype = configured_eval_dtype(config)
        self.answer_ids, targets = self._answers(config["answer_words"])
        # Row 0 is the "no" target, row 1 the "yes" target, so labels index them directly.
        self.register_buffer("target_ids", targets.flip(0), persistent=False)

    def _answers(self, answer_words):
        """Answer-token ids (looked up in the tokenizer, never hard-coded) and padded target sequences."""
        if len(answer_words) != 2 or not all(isinstance(word, str) for word in answer_words):
            raise BadInput(
                f"answer_words must be two strings, got {answer_words!r} "
                "(YAML reads unquoted Yes/No as booleans: quote them)."
            )
        answer_ids = [answer_token_id(self.tokenizer, word) for word in answer_words]
        if len(set(answer_ids)) != 2:
            raise BadInput(
                f"answer_words {answer_words} must start with two distinct tokens of the tokenizer; "
                f"got ids {answer_ids}."
            )
        targets = self.backbone.answer_targets(self.tokenizer, answer_words)
        width = max(map(len, targets))
        padded = torch.full((2, width), IGNORE_INDEX, dtype=torch.long)
        for row, target in enumerate(targets):
            padded[row, : len(target)] = torch.tensor(target)
        return answer_ids, padded

    def _prompts(self, interaction):
        lengths = interaction[self.prompt_length_field]
        ids = interaction[self.prompt_field][:, : int(lengths.max())]
        mask = torch.arange(ids.size(1), device=ids.device)[None, :] < lengths[:, None]
        return ids.masked_fill(~mask, self.backbone.pad_token_id), mask.long()

    def answer_logits(self, interaction):
        """Full-vocabulary logits at the answer position, shape [batch, vocab]."""
        if self.compile_inference and not torch.is_grad_enabled():
            return compiled_answer_logits()(self.backbone, *self._prompts(interaction))
        return self.backbone.answer_logits(*self._prompts(interaction))

    @property
    def lora_targets(self):
        """Module names E2URec adapts by default (the backbone's attention query and value, per architecture)."""
        return self.backbone.lora_targets

    def yes_no_logits(self, interaction):
        """Logits of the (yes, no) answer tokens, shape [batch, 2]."""
        return self.answer_logits(interaction)[:, self.answer_ids]

    def answer_token_ids(self, interaction):
        """The vocabulary id of each sample's true answer ("yes" for label 1, "no" for label 0)."""
        answer_ids = torch.tensor(self.answer_ids, device=interaction[self.LABEL].device)
        return answer_ids[1 - interaction[self.LABEL].long()]

    def answer_sequence_logits(self, interaction):
        """Logits at each position of every sample's true target sequence, shape [batch, positions, vocab],
        and those targets, shape [batch, positions] (``IGNORE_INDEX`` where a target is shorter)."""
        targets = self.target_ids[interaction[self.LABEL].long()]
        logits = self.backbone.answer_sequence_logits(*self._prompts(interaction), targets)
        return logits, targets[:, : logits.size(1)]

    def calculate_loss(self, interaction):
        targets = self.target_ids[interaction[self.LABEL].long()]
        return self.backbone.answer_loss(*self._prompts(interaction), targets)

    def evaluation_precision(self):
        """``llm_eval_dtype``'s autocast for evaluation's forwards (nothing for float32). Training, frozen
        teachers and references never run in it."""
        if self.eval_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.target_ids.device.type, dtype=self.eval_dtype)

    def predict(self, interaction):
        with self.evaluation_precision():
            return like_probability(self.yes_no_logits(interaction))

    def save_pretrained(self, directory):
        """Backbone and tokenizer, so ``llm_path: directory`` loads this model back."""
        self.backbone.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
