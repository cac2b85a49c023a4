"""RecBole's Config, plus the YAML defaults that ship in recbole-unlearn's ``properties/``.

RecBole reads model and dataset YAML only from its own package folder. This subclass merges ours after
RecBole's internal files (so they win over RecBole's defaults) and before the user's files, dicts and
command line (which win over ours), in the same fixed order RecBole uses. A key in one of our
namespaces that no default declares is a typo, and fails naming the closest known key.
"""

import copy
import difflib
import os
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from logging import getLogger

import recbole
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType, get_model

from recbole_unlearn import distributed
from recbole_unlearn.errors import BadInput
from recbole_unlearn.model.answer import has_answer_vocabulary
from recbole_unlearn.model.ranking import is_ranking
from recbole_unlearn.precision import AUTO, resolve_precision
from recbole_unlearn.unlearn.method import METHODS, selects_unlearning

PROPERTIES = files("recbole_unlearn.properties")
BUNDLED_DATASETS = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
# Key prefixes that belong to recbole-unlearn (each method's name adds one).
NAMESPACES = ("unlearn_", "forget_", "llm_", "prompt_")


def property_files(model, model_class, dataset):
    """Our YAML files that apply to ``model`` on ``dataset``, in merge order.

    Every registered method's defaults are always loaded: their keys carry the method's name, so one run
    can compare several methods. A dataset's file holds the labeled protocol (LLMRec's and the CTR
    models'); RecBole's own context-aware models (scored by a click logit, not a language model) also get
    ``model/ctr.yaml``, as RecBole gives them ``context-aware.yaml``. Ranking models keep RecBole's own
    data settings, with ``model/ranking.yaml`` (and ``model/sequential.yaml``) added.
    """
    labeled = model_class.type == ModelType.CONTEXT
    is_ctr = labeled and not has_answer_vocabulary(model_class)
    candidates = [
        PROPERTIES / "overall.yaml",
        PROPERTIES / "unlearn.yaml",
        *(method.defaults() for method in METHODS.values()),
        *([PROPERTIES / "dataset" / f"{dataset}.yaml"] if labeled else []),
        *([PROPERTIES / "model" / "ctr.yaml"] if is_ctr else []),
        *([PROPERTIES / "model" / "ranking.yaml"] if is_ranking(model_class) else []),
        *([PROPERTIES / "model" / "sequential.yaml"] if model_class.type == ModelType.SEQUENTIAL else []),
        PROPERTIES / "model" / f"{model}.yaml",
    ]
    return [str(path) for path in candidates if path and os.path.isfile(str(path))]


@cache
def downloadable_datasets():
    """The dataset names RecBole downloads when no local folder has them."""
    with open(os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", "url.yaml")) as f:
        return frozenset(yaml.safe_load(f))


@cache
def _yaml_keys(path):
    with open(path, encoding="utf-8") as f:
        return frozenset(yaml.safe_load(f) or {})


def declared_keys():
    """Every key any of our YAML files (any model, dataset or registered method) declares."""
    paths = [str(path) for path in PROPERTIES.rglob("*.yaml")]
    paths += [method.defaults() for method in METHODS.values() if method.defaults()]
    return frozenset().union(*(_yaml_keys(path) for path in paths))


def check_declared(user_keys):
    """Fail on a key of our namespaces that no default declares (a typo would silently run defaults)."""
    namespaces = (*NAMESPACES, *(f"{name}_" for name in METHODS))
    known = declared_keys()
    for key in user_keys:
        if key.startswith(namespaces) and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise BadInput(f"Unknown config key '{key}': no recbole-unlearn default declares it{hint}")


_recbole_load_internal_config_dict = RecBoleConfig._load_internal_config_dict
_recbole_init_device = RecBoleConfig._init_device


def uses_recbole_unlearn(config, model_class):
    """Whether our defaults apply to a Config: always for ours; for RecBole's own, when the model is ours or
    the config names an unlearning method (RecBole's flow then runs the experiment, ``recbole_flow``)."""
    return (
        isinstance(config, Config)
        or model_class.__module__.startswith("recbole_unlearn.")
        or selects_unlearning(config.external_config_dict.get("unlearn_method"))
    )


def is_model_name(name):
    try:
        get_model(name)
    except (ValueError, ImportError, AttributeError):  # RecBole's lookup: not found, or a name in other case
        return False
    return True


def model_sections_applied(layer, model):
    """One layer of the user's settings (files, config_dict or command line) with its model sections
    resolved: a mapping under a RecBole model's name (``SASRec: {hidden_size: 32}``) holds that model's
    settings, merged over the layer's other keys when ``model`` runs and dropped otherwise, so that one
    file serves a several-model run. A capitalised mapping that names no model is refused (a typo would
    silently drop its settings)."""
    sections = [key for key, value in layer.items() if isinstance(value, dict) and key[:1].isupper()]
    for key in sections:
        if not is_model_name(key):
            raise BadInput(f"Config key '{key}' holds settings, but no RecBole model is called '{key}'.")
    if not sections:
        return layer
    own = {key: value for key, value in (layer.get(model) or {}).items() if value is not None}
    return {**{key: value for key, value in layer.items() if key not in sections}, **own}


def load_internal_config_dict(config, model, model_class, dataset):
    """RecBole's internal YAML files, then ours where they apply, below the user's files, dicts and command
    line (each with its ``model_sections_applied``). ``registry`` installs this on RecBole's own Config
    too, so ``recbole.config.Config`` and ``run_recbole`` see the same values as ours."""
    for layer in ("file_config_dict", "variable_config_dict", "cmd_config_dict"):
        setattr(config, layer, model_sections_applied(getattr(config, layer), model))
    config._merge_external_config_dict()
    _recbole_load_internal_config_dict(config, model, model_class, dataset)
    if not uses_recbole_unlearn(config, model_class):
        return
    check_declared(config.external_config_dict)
    for path in property_files(model, model_class, dataset):
        config_dict = config._update_internal_config_dict(path)
        if "dataset" in os.path.basename(os.path.dirname(path)):
            config.parameters["Dataset"] += [key for key in config_dict if key not in config.parameters["Dataset"]]


def init_device(config):
    """RecBole's device set-up, then ``enable_amp: auto`` resolved for that device (``precision``).
    ``registry`` installs this on RecBole's own Config too, where a RecBole model's configuration is left
    as RecBole makes it unless it asks for ``auto``."""
    _recbole_init_device(config)
    if uses_recbole_unlearn(config, config.model_class) or config.final_config_dict.get("enable_amp") == AUTO:
        resolve_precision(config.final_config_dict)


class Config(RecBoleConfig):
    """RecBole's Config with our defaults; a local dataset copy wins over the one in the recbole wheel, and a
    multi-process run on CPU joins a gloo group."""

    _load_internal_config_dict = load_internal_config_dict

    def _init_device(self):
        """``init_device``, except that a multi-process run (``local_rank`` set by
        ``distributed.spawn``) joins a gloo process group on CPU instead of always asking for nccl."""
        if "local_rank" not in self.final_config_dict:
            return init_device(self)
        gpu_id = self.final_config_dict["gpu_id"]
        gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
        self.final_config_dict["gpu_id"] = os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
        self.final_config_dict["device"] = distributed.init_process_group(self.final_config_dict)
        self.final_config_dict["single_spec"] = False
        if not distributed.is_main():
            self.final_config_dict.update(state="error", show_progress=False, verbose=False)
        resolve_precision(self.final_config_dict)
        return None

    def _get_model_and_dataset(self, model, dataset):
        try:
            return super()._get_model_and_dataset(model, dataset)
        except ValueError as error:  # RecBole's "`model_name` [...] is not the name of an existing model."
            raise BadInput(str(error)) from error
        except ImportError as error:  # RecBole's lookup imports every model family, LightGBM's too
            raise BadInput(
                f"Model '{model}' is not a RecBole model here: looking it up imported '{error.name}', which is "
                "not installed."
            ) from error

    def _set_default_parameters(self):
        data_root = self.final_config_dict["data_path"]
        try:
            super()._set_default_parameters()
        except (ValueError, TypeError) as error:  # RecBole's checks of settings (topk, negative sampling, ...)
            raise BadInput(str(error)) from error
        self.final_config_dict["data_path"] = resolve_data_path(data_root, self.dataset)


class RecordedConfig(Config):
    """A Config of recorded options only (a receipt's), deaf to this process's command line, whose
    flags belong to the current request."""

    def _load_cmd_line(self):
        return {}


def config_with(config, **overrides):
    """A shallow copy of a RecBole Config with some keys replaced (the original is left as it is)."""
    changed = copy.copy(config)
    changed.final_config_dict = {**config.final_config_dict, **overrides}
    return changed


@contextmanager
def configured_as(holder, config):
    """Within the block ``holder.config`` is ``config`` (a method's chosen values), then its own again."""
    own, holder.config = holder.config, config
    try:
        yield holder
    finally:
        holder.config = own


def resolve_data_path(data_root, dataset):
    """``data_root/dataset`` if it exists, else the copy inside the installed recbole wheel, if any.

    RecBole itself always uses its bundled ml-100k, even when the user has a local copy. A dataset with
    neither a folder nor a name RecBole can download is refused here, before anything runs.
    """
    local = os.path.join(data_root, dataset)
    bundled = os.path.join(BUNDLED_DATASETS, dataset)
    if not os.path.isdir(local) and not os.path.isdir(bundled) and dataset not in downloadable_datasets():
        raise BadInput(
            f"dataset '{dataset}': no folder {local} (data_path) with its atomic files, and not a dataset "
            "name RecBole can download."
        )
    if os.path.isdir(local) or not os.path.isdir(bundled):
        return local
    getLogger().info(
        f"No local copy of dataset [{dataset}] under [{data_root}]; using the copy shipped with recbole: [{bundled}]"
    )
    return bundled
