"""Causal and masked backbones: tiny random GPT-2 / Llama / BERT checkpoints saved to disk, loaded by
``llm_path``, trained on a real ML-100K slice and unlearned by every method."""

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model
from tokenizers import (
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    T5Config,
    T5ForConditionalGeneration,
)

from recbole_unlearn.evaluation.outputs import collect_outputs
from recbole_unlearn.model.backbone import BACKBONES, backbone_kind, detect_kind
from recbole_unlearn.model.lora import matching_layers
from recbole_unlearn.model.tokenizer import vocabulary_size
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn.methods.e2urec import E2URec
from recbole_unlearn.unlearn.protocol import UnlearnProtocol

from conftest import (
    QUICK_WINDOW,
    inside,
    result_rows,
    rows_by_method,
    small_config,
    tiny_unlearn_config,
)

SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "eos_token": "[EOS]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


def word_tokenizer(corpus, kind):
    """A word-level tokenizer over ``corpus``: BERT-style [CLS] ... [SEP] for masked, plain for causal."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=list(SPECIALS.values())))
    if kind == "masked":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            special_tokens=[(token, tokenizer.token_to_id(token)) for token in ("[CLS]", "[SEP]")],
        )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIALS)


def tiny_model(kind, tokenizer):
    vocabulary = vocabulary_size(tokenizer)
    if kind == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocabulary,
                n_embd=64,
                n_layer=1,
                n_head=4,
                n_positions=512,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    shared = {
        "vocab_size": vocabulary,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**shared, num_key_value_heads=2))
    return BertForMaskedLM(BertConfig(**shared, max_position_embeddings=512))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with inside(tmp_path_factory.mktemp("corpus")):
        return create_dataset(small_config()).prompt_template.vocabulary_text()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, corpus):
    """A saved tiny checkpoint (model + tokenizer) per architecture."""
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for architecture, kind in (("gpt2", "causal"), ("llama", "causal"), ("bert", "masked")):
        torch.manual_seed(0)
        tokenizer = word_tokenizer(corpus, kind)
        paths[architecture] = str(root / architecture)
        tiny_model(architecture, tokenizer).save_pretrained(paths[architecture])
        tokenizer.save_pretrained(paths[architecture])
    return paths


@pytest.mark.parametrize(
    "model_config, kind",
    [
        (T5Config(architectures=["T5ForConditionalGeneration"]), "seq2seq"),
        (GPT2Config(architectures=["GPT2LMHeadModel"]), "causal"),
        (LlamaConfig(architectures=["LlamaForCausalLM"]), "causal"),
        (Qwen2Config(), "causal"),
        (BertConfig(architectures=["BertForMaskedLM"]), "masked"),
        (BertConfig(architectures=["BertModel"]), "masked"),  # a sentence-transformers checkpoint: bare encoder
        (BertConfig(is_decoder=True), "causal"),
    ],
)
def test_kind_is_detected_from_the_checkpoint_config(model_config, kind):
    assert detect_kind(model_config) == kind


def test_llm_kind_overrides_detection_and_is_checked(checkpoints, workdir):
    assert backbone_kind({"llm_kind": None, "llm_path": checkpoints["bert"]}) == "masked"
    assert backbone_kind({"llm_kind": "causal", "llm_path": checkpoints["bert"]}) == "causal"
    with pytest.raises(ValueError, match="llm_kind 'decoder' is not one of"):
        backbone_kind({"llm_kind": "decoder", "llm_path": checkpoints["bert"]})
    with pytest.raises(ValueError, match="llm_kind 'causal' needs an llm_path"):
        backbone_kind({"llm_kind": "causal", "llm_path": None})


@pytest.mark.parametrize(
    "build, targets",
    [
        (
            lambda: T5ForConditionalGeneration(T5Config(d_model=16, d_ff=32, d_kv=4, num_heads=2, num_layers=1)),
            ["q", "v"],
        ),
        (lambda: GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2)), ["c_attn"]),
        (
            lambda: LlamaForCausalLM(
                LlamaConfig(
                    hidden_size=16,
                    intermediate_size=32,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                    num_key_value_heads=1,
                )
            ),
            ["q_proj", "v_proj"],
        ),
        (
            lambda: BertForMaskedLM(
                BertConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
            ),
            ["query", "value"],
        ),
    ],
)
def test_lora_targets_are_chosen_per_architecture(build, targets):
    backbone = BACKBONES["causal"](build(), PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel())))
    assert backbone.lora_targets == targets
    assert matching_layers(backbone, targets)


def test_unknown_architecture_asks_for_explicit_lora_targets():
    backbone = BACKBONES["causal"](
        torch.nn.Module(), PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel()))
    )
    backbone.model.config = GPT2Config()
    backbone.model.config.model_type = "homemade"
    with pytest.raises(ValueError, match="model_type 'homemade'.*e2urec_lora_targets"):
        _ = backbone.lora_targets


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "bert"])
def test_answer_logits_are_the_full_forward_at_the_answer_slot(checkpoints, architecture, workdir):
    """The output layer runs only at the answer position; the logits equal a plain forward's there."""
    config = small_config(llm_path=checkpoints[architecture])
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("LLMRec")(config, train._dataset).eval()
    batch = next(iter(train))
    ids, mask = model._prompts(batch)
    with torch.no_grad():
        full = model.backbone.model(input_ids=ids, attention_mask=mask).logits
        fast = model.answer_logits(batch)
    if architecture == "bert":
        slot = (ids == model.tokenizer.mask_token_id).int().argmax(1)
        assert ((ids == model.tokenizer.mask_token_id).sum(1) == 1).all()
        assert (slot == mask.sum(1) - 2).all()  # the mask is last, before [SEP]
    else:
        slot = mask.sum(1) - 1
    assert torch.allclose(fast, full[torch.arange(len(ids)), slot], atol=1e-5)


@pytest.fixture(scope="module")
def quick_settings(checkpoints, tmp_path_factory):
    """Per architecture: the unlearning config of these tests, one output folder (so the Original trained
    by one test is the cached Original of the next)."""
    output = tmp_path_factory.mktemp("unlearn-backbones")
    return lambda architecture: tiny_unlearn_config(
        output / architecture,
        llm_path=checkpoints[architecture],
        learning_rate=0.003,
        sisa_n_shards=2,
    )


@pytest.mark.parametrize("architecture", ["bert", pytest.param("gpt2", marks=pytest.mark.slow)])
def test_every_method_unlearns_a_causal_and_a_masked_backbone(quick_settings, architecture, workdir):
    """Runs and reports; whether unlearning moves toward Retrain is tested on the T5 (test_unlearn.py):
    one epoch on 1,800 prompts teaches a random one-layer GPT-2 or BERT too little to tell."""
    rows = rows_by_method(unlearn_one("LLMRec", "ml-100k", config_dict=quick_settings(architecture)))
    assert list(rows) == result_rows(language_model=True)
    for row in rows.values():
        assert all(np.isfinite(row[key]) for key in ("test_auc", "test_logloss", "forget_jsd", "forget_l2_yesno"))
    assert 0 < rows["e2urec"]["trainable_share"] < rows["neggrad"]["trainable_share"] == 1


@pytest.mark.parametrize("architecture", ["bert", "gpt2", "llama"])
def test_e2urec_trains_only_lora_on_each_backbone(quick_settings, architecture, workdir):
    protocol = UnlearnProtocol(small_config(**quick_settings(architecture)))
    original, _ = protocol.original()
    before = {name: p.detach().clone() for name, p in original.named_parameters()}
    unlearned = E2URec.run(protocol, original)
    lora = {name: p for name, p in unlearned.named_parameters() if "lora_" in name}
    assert lora and all(p.requires_grad == (n in lora) for n, p in unlearned.named_parameters())
    assert any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)
    for name, parameter in unlearned.named_parameters():
        if name not in lora:
            assert torch.equal(parameter, before[name.replace(".base_layer", "")]), name
    for name, parameter in original.named_parameters():
        assert torch.equal(parameter, before[name])


def test_long_prompts_lose_their_oldest_history_items_not_their_question(workdir):
    full = create_dataset(small_config())
    dataset = create_dataset(small_config(prompt_max_length=80))
    assert max(full.inter_feat["prompt_length"]) > 80 >= max(dataset.inter_feat["prompt_length"])
    for row in range(len(dataset.inter_feat)):
        text = dataset.prompt_text(row)
        assert text.endswith("you should only tell me yes or no .")
        assert full.prompt_text(row).startswith(text.split(" watched the following")[0] + " watched")
    with pytest.raises(ValueError, match="without any history.*raise prompt_max_length"):
        create_dataset(small_config(prompt_max_length=20))


def test_llm_dtype_loads_the_backbone_in_that_dtype(checkpoints, workdir):
    config = small_config(llm_path=checkpoints["gpt2"], llm_dtype="bfloat16", val_interval=QUICK_WINDOW)
    train, valid, _ = data_preparation(config, create_dataset(config))
    model = get_model("LLMRec")(config, train._dataset).eval()
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        assert torch.isfinite(model.predict(next(iter(train)))).all()
        # RecBole's metrics and ours go through numpy, which has no bfloat16.
        assert model.predict(next(iter(train))).dtype == torch.float32
    assert np.isfinite(collect_outputs(model, valid, config["LABEL_FIELD"]).scores).all()
    with pytest.raises(ValueError, match="llm_dtype 'fp8' is not one of"):
        get_model("LLMRec")(
            small_config(llm_path=checkpoints["gpt2"], llm_dtype="fp8", val_interval=QUICK_WINDOW), train._dataset
        )
