"""Language-model backbones behind one small interface.

A backbone turns a batch of tokenized prompts into (a) the full-vocabulary logits at the answer
position and (b) the LM loss on a target answer. ``Seq2SeqBackbone`` covers the T5 family (the paper's
choice and our default).
"""

import os

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5Config, T5ForConditionalGeneration

from recbole_unlearn.model.tokenizer import vocabulary_size


def check_model_dir(llm_path):
    if not os.path.isdir(llm_path):
        raise ValueError(f"llm_path '{llm_path}' does not exist (or is not a directory).")
    if not os.path.isfile(os.path.join(llm_path, "config.json")):
        raise ValueError(
            f"llm_path '{llm_path}' is not a Hugging Face model directory (no config.json there)."
        )


def load_tokenizer(llm_path):
    check_model_dir(llm_path)
    return AutoTokenizer.from_pretrained(llm_path)


class Seq2SeqBackbone(nn.Module):
    """Encoder-decoder LM: the answer is the first decoder token."""

    lora_targets = ["q", "v"]

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.decoder_start_token_id = model.config.decoder_start_token_id

    @classmethod
    def from_config(cls, config, tokenizer):
        if config["llm_path"]:
            check_model_dir(config["llm_path"])
            model = AutoModelForSeq2SeqLM.from_pretrained(config["llm_path"])
        else:
            model = T5ForConditionalGeneration(
                T5Config(
                    vocab_size=vocabulary_size(tokenizer),
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    decoder_start_token_id=tokenizer.pad_token_id,
                    **config["llm_config"],
                )
            )
        if vocabulary_size(tokenizer) > model.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"The tokenizer has ids up to {vocabulary_size(tokenizer) - 1} but the model embeds only "
                f"{model.get_input_embeddings().num_embeddings} tokens; they do not belong together."
            )
        return cls(model)

    def answer_logits(self, input_ids, attention_mask):
        start = torch.full(
            (input_ids.size(0), 1), self.decoder_start_token_id, dtype=torch.long, device=input_ids.device
        )
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start)
        return output.logits[:, 0, :]

    def answer_loss(self, input_ids, attention_mask, target_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=target_ids).loss

    def save_pretrained(self, directory):
        self.model.save_pretrained(directory)
