"""The catalogue of bad inputs: each fails with a message naming the problem, and nothing is lost.

One test per row; the forget-request parser is also fuzzed (hypothesis).
"""

import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model

from recbole_unlearn.checkpoint import load_checkpoint
from recbole_unlearn.data.forget import ForgetRequest, read_id_file
from recbole_unlearn.precision import configured_amp_dtype
from recbole_unlearn.trainer import SafeTrainer
from recbole_unlearn.unlearn.method import get_unlearn_methods

from conftest import small_config

RATINGS_WITHOUT_TIME = {"split": {"RS": [0.6, 0.2, 0.2]}, "order": "RO", "group_by": None, "mode": "labeled"}


def raw_users(dataset):
    return sorted(set(dataset.field2id_token["user_id"][dataset.inter_feat["user_id"].numpy()]))


def trained(model, directory, **overrides):
    """A DeepFM-family model trained one epoch, its trainer, its test data and its checkpoint."""
    config = small_config(model, epochs=1, checkpoint_dir=str(directory), **overrides)
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    trainer = SafeTrainer(config, get_model(model)(config, train_data._dataset))
    trainer.fit(train_data, valid_data, saved=True)
    return trainer, test_data, trainer.saved_model_file


@pytest.fixture(scope="module")
def deepfm(tmp_path_factory):
    return trained("DeepFM", tmp_path_factory.mktemp("deepfm"))


def copy_checkpoint(path, directory):
    target = os.path.join(directory, os.path.basename(path))
    shutil.copy(path, target)
    shutil.copy(os.path.splitext(path)[0] + ".json", os.path.splitext(target)[0] + ".json")
    return target


# Forget requests.


def test_unknown_user_id(train):
    with pytest.raises(ValueError, match=r"forget_ids has 1 user id\(s\) not in the training split.*'999999'"):
        ForgetRequest(level="user", ids=("999999",)).masks_after(train)


def test_unknown_item_id(train):
    with pytest.raises(ValueError, match=r"forget_ids has 1 item id\(s\) not in the training split.*'no-such-item'"):
        ForgetRequest(level="item", ids=("no-such-item",)).masks_after(train)


def test_unknown_interaction_pair(train):
    with pytest.raises(ValueError, match=r"interaction id\(s\) not in the training split.*'1-2'"):
        ForgetRequest(level="interaction", ids=("1-2",)).masks_after(train)


def test_duplicate_ids():
    with pytest.raises(ValueError, match=r"forget_ids lists these ids more than once: \['7'\]"):
        ForgetRequest(ids=("7", 7))


def test_empty_id_list():
    config = {"forget_ids": [], "forget_file": None, "forget_level": "user", "forget_ratio": 0.2, "seed": 1}
    with pytest.raises(ValueError, match="forget_ids is empty"):
        ForgetRequest.from_config(config)


def test_empty_id_file(tmp_path):
    path = tmp_path / "forget.txt"
    path.write_text("\n  \r\n")
    config = {"forget_ids": None, "forget_file": str(path), "forget_level": "user", "forget_ratio": 0.2, "seed": 1}
    with pytest.raises(ValueError, match="forget_file '.*forget.txt' lists no ids"):
        ForgetRequest.from_config(config)


def test_request_covering_every_training_user(train):
    with pytest.raises(ValueError, match="covers the whole training split: nothing would be retained"):
        ForgetRequest(level="user", ids=tuple(raw_users(train))).masks_after(train)


@pytest.mark.parametrize("ratio", [0, -0.5, 1.0, 1.5, None, -2, True, "10"])
def test_ratio_neither_a_share_nor_a_whole_number(ratio):
    with pytest.raises(ValueError, match=rf"forget_ratio must be a share in \(0, 1\) or a whole number.*got {ratio!r}"):
        ForgetRequest(ratio=ratio)


def test_ratio_that_selects_nobody(train):
    with pytest.raises(ValueError, match=r"forget_ratio 0.0001 of \d+ training users is zero"):
        ForgetRequest(level="user", ratio=0.0001).masks_after(train)


def test_unknown_forget_level():
    with pytest.raises(
        ValueError, match=r"forget_level must be one of \['user', 'item', 'interaction'\], got 'session'"
    ):
        ForgetRequest(level="session")


def test_unknown_unlearn_method():
    with pytest.raises(ValueError, match=r"unlearn_method \['forgetful'\] is unknown"):
        get_unlearn_methods("neggrad,forgetful")


# Models and data.


def test_llm_path_that_does_not_exist(workdir):
    with pytest.raises(ValueError, match="llm_path '.*no-such-model' does not exist"):
        create_dataset(small_config(llm_path=str(workdir / "no-such-model")))


def test_amp_dtype_that_is_not_a_mixed_precision_dtype(workdir):
    with pytest.raises(ValueError, match=r"amp_dtype 'half' is not one of \['bfloat16', 'float16'\]"):
        configured_amp_dtype(small_config(amp_dtype="half"))


def test_llm_path_that_is_not_a_model_directory(workdir):
    with pytest.raises(ValueError, match="is not a Hugging Face model directory"):
        create_dataset(small_config(llm_path=str(workdir)))


def test_prompt_template_with_a_missing_field(workdir):
    template = "The user's shoe size is {shoe_size}. Will {he} like {title}?"
    with pytest.raises(ValueError, match="prompt_template names field 'shoe_size'"):
        create_dataset(small_config(prompt_template=template))


@pytest.mark.parametrize(
    "inter_columns, role",
    [
        (["user_id", "item_id", "rating"], "TIME_FIELD 'timestamp'"),
        (["user_id", "item_id", "timestamp"], "RATING_FIELD 'rating'"),
    ],
)
def test_dataset_without_the_fields_history_needs(workdir, inter_columns, role):
    load_col = {
        "inter": inter_columns,
        "user": ["user_id", "age", "gender", "occupation"],
        "item": ["item_id", "movie_title"],
    }
    overrides = {"load_col": load_col, "val_interval": None, "unused_col": None, "normalize_field": None}
    if "timestamp" not in inter_columns:
        overrides["eval_args"] = RATINGS_WITHOUT_TIME
    if "rating" not in inter_columns:
        overrides["threshold"] = None
    with pytest.raises(ValueError, match=role):
        create_dataset(small_config(**overrides))


# Checkpoints.


def test_corrupted_checkpoint(deepfm, tmp_path):
    trainer, test_data, checkpoint = deepfm
    corrupted = copy_checkpoint(checkpoint, tmp_path)
    data = bytearray(open(corrupted, "rb").read())
    data[-5] ^= 0xFF
    open(corrupted, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="is corrupted or truncated"):
        trainer.evaluate(test_data, model_file=corrupted)


def test_truncated_checkpoint(deepfm, tmp_path):
    trainer, test_data, checkpoint = deepfm
    truncated = copy_checkpoint(checkpoint, tmp_path)
    size = os.path.getsize(truncated)
    with open(truncated, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ValueError, match="is corrupted or truncated"):
        trainer.evaluate(test_data, model_file=truncated)


def test_checkpoint_without_its_provenance_file(deepfm, tmp_path):
    trainer, test_data, checkpoint = deepfm
    bare = tmp_path / "bare.safetensors"
    shutil.copy(checkpoint, bare)
    with pytest.raises(ValueError, match="has no readable provenance file"):
        trainer.evaluate(test_data, model_file=str(bare))


def test_checkpoint_of_another_model(deepfm, tmp_path):
    _, _, deepfm_checkpoint = deepfm
    widedeep_trainer, test_data, _ = trained("WideDeep", tmp_path)
    with pytest.raises(ValueError, match="was written for model 'DeepFM', not 'WideDeep'"):
        widedeep_trainer.evaluate(test_data, model_file=deepfm_checkpoint)


def test_checkpoint_of_another_configuration(deepfm, tmp_path):
    _, _, checkpoint = deepfm
    other_trainer, test_data, _ = trained("DeepFM", tmp_path, mlp_hidden_size=[32])
    with pytest.raises(ValueError, match="was written for config_sha256 '[0-9a-f]{64}', not '[0-9a-f]{64}'"):
        other_trainer.evaluate(test_data, model_file=checkpoint)


def test_a_refused_checkpoint_changes_neither_the_file_nor_the_model(deepfm):
    trainer, _, checkpoint = deepfm
    file_before = open(checkpoint, "rb").read()
    model = trainer.model
    for parameter in model.parameters():
        parameter.data.zero_()
    with pytest.raises(ValueError, match="was written for dataset 'ml-100k', not 'ml-1m'"):
        load_checkpoint(model, checkpoint, expect={"dataset": "ml-1m"})
    assert all(not parameter.any() for parameter in model.parameters())
    assert open(checkpoint, "rb").read() == file_before


# The forget-request parser, fuzzed.


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_ids_as_ints_strings_or_mixed_select_the_same_users(train, data):
    users = data.draw(st.lists(st.sampled_from(raw_users(train)), min_size=1, max_size=8, unique=True))
    as_given = [data.draw(st.sampled_from([str, int]))(user) for user in users]
    mask = ForgetRequest(level="user", ids=tuple(as_given)).mask(train)
    chosen = train.field2id_token["user_id"][train.inter_feat["user_id"].numpy()[mask]]
    assert set(chosen) == set(users)


@settings(max_examples=50, deadline=None)
@given(
    ids=st.lists(st.from_regex(r"[A-Za-z0-9_:\-]{1,12}", fullmatch=True), min_size=1, max_size=10),
    bom=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    blank_lines=st.lists(st.integers(0, 3), min_size=10, max_size=10),
    padding=st.sampled_from(["", " ", "\t", "  "]),
)
def test_id_files_with_bom_crlf_blank_lines_and_padding(tmp_path_factory, ids, bom, newline, blank_lines, padding):
    lines = []
    for token, blanks in zip(ids, blank_lines):
        lines += [padding + token + padding] + [padding] * blanks
    path = tmp_path_factory.mktemp("ids") / "forget.txt"
    path.write_bytes((("\ufeff" if bom else "") + newline.join(lines)).encode("utf-8"))
    assert read_id_file(path) == ids


def test_a_mistyped_key_of_our_namespaces_names_the_closest_key():
    with pytest.raises(ValueError, match=r"Unknown config key 'e2urec_alfa'.*did you mean 'e2urec_alpha'"):
        small_config(e2urec_alfa=1.0)


def test_recbole_keys_outside_our_namespaces_stay_as_recbole_treats_them():
    assert small_config(some_recbole_key=1)["some_recbole_key"] == 1
