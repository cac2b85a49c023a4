"""LoRA adapters (peft) for any RecBole model, injected in place so the model keeps its class, its
``calculate_loss``/``predict`` and RecBole's trainer and evaluator work on it unchanged."""

import re

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer, check_target_module_exists
from transformers.pytorch_utils import Conv1D

from recbole_unlearn.model.answer import answer_logits, in_eval_mode

ADAPTABLE_LAYERS = (torch.nn.Linear, torch.nn.Embedding)


def traced_layers(model, example):
    """Names of the Linear and Embedding layers that one prediction of ``example`` runs through.

    Tracing, rather than listing every layer, skips tables a model builds but never reads (LR's
    second-order embeddings) and layers whose weights are read directly (MultiheadAttention's out_proj).
    """
    used = []
    hooks = [
        module.register_forward_hook(lambda *_, name=name: used.append(name))
        for name, module in model.named_modules()
        if isinstance(module, ADAPTABLE_LAYERS)
    ]
    try:
        with torch.no_grad(), in_eval_mode(model):
            answer_logits(model, example)
    finally:
        for hook in hooks:
            hook.remove()
    return list(dict.fromkeys(used))


def default_targets(model, example):
    """The model's own choice (LLMRec: its backbone's attention query/value), else the traced layers."""
    if hasattr(model, "lora_targets"):
        return list(model.lora_targets)
    return traced_layers(model, example)


def matching_layers(model, targets):
    """Module names that peft's own matching rule selects for ``targets``."""
    lora = LoraConfig(target_modules=list(targets))
    return [name for name, _ in model.named_modules() if check_target_module_exists(lora, name)]


def add_lora(model, targets, rank, alpha, dropout):
    """Inject LoRA into the ``targets`` layers; only the adapters stay trainable.

    A layer's rank is capped at its smaller dimension (a higher rank adds parameters, not
    expressiveness: a width-1 first-order table gets rank 1), with alpha scaled along so every layer
    keeps the configured ``alpha / rank``.
    """
    modules = dict(model.named_modules())
    rank_pattern, alpha_pattern = {}, {}
    for name in targets:
        module = modules.get(name)
        cap = min(module.weight.shape) if isinstance(module, ADAPTABLE_LAYERS) else rank
        if cap < rank:
            anchored = "^" + re.escape(name)
            rank_pattern[anchored] = cap
            alpha_pattern[anchored] = alpha * cap / rank
    # GPT-2's Conv1D stores its weight transposed; peft must be told (it would warn and switch itself).
    transposed = any(isinstance(modules[name], Conv1D) for name in matching_layers(model, targets))
    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        fan_in_fan_out=transposed,
    )
    return inject_adapter_in_model(lora, model)


def merge_lora(model):
    """Fold injected adapters into their layers and put the plain layers back, all trainable again:
    the model an unlearned-with-LoRA model is, for a later request to start from."""
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        # peft's record of the injected adapters: gone with them, so a new injection starts clean.
        del model.peft_config
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
