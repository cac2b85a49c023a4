"""The one place that registers recbole-unlearn's pieces: with RecBole's own lookups, and in our tables.

- ``recbole.utils.get_model(name)`` imports ``recbole.model.<kind>_recommender.<name.lower()>``:
  we publish our model modules under those names in ``sys.modules``.
- ``recbole.utils.get_trainer`` looks for ``recbole.trainer.<Model>Trainer``, and
  ``recbole.data.create_dataset`` for ``recbole.data.dataset.<Model>Dataset``: we add attributes there.
  LLMRec's trainer runs the unlearning experiment when the config names a method.
- RecBole's ``Config`` reads model and dataset YAML only from its own folder: its
  ``_load_internal_config_dict`` also merges ours when our model or an unlearning method is configured
  (``config.load_internal_config_dict``), so RecBole's Config, ``run_recbole`` and ``objective_function``
  see the values ours does; its ``_init_device`` also resolves ``enable_amp: auto`` (``precision``).
- ``run_recbole`` calls ``get_flops``, which deep-copies the model: LLMRec's is not counted.
- RecBole builds its metric tables at import: we merge the classes of our RecBole metric module in.
- Unlearning methods (``unlearn_method`` selects them): the built-in ones, then those other packages
  declare in the ``recbole_unlearn.methods`` entry-point group.
- Result metrics (``recbole_unlearn.evaluation.metrics``): one line each, in column order.
Every step is idempotent, so importing recbole_unlearn twice (or reloading) changes nothing.
Longer than 250 lines: every registration is here, in one place, and the metrics in column order.
"""

import functools
import importlib
import sys
from importlib.metadata import entry_points

import recbole.config
import recbole.data.dataset
import recbole.trainer
import recbole.utils
from recbole.evaluator import register

from recbole_unlearn.config import init_device, load_internal_config_dict
from recbole_unlearn.data.dataset import LLMRecDataset
from recbole_unlearn.evaluation import cost
from recbole_unlearn.evaluation import labeled_metrics as m
from recbole_unlearn.evaluation import ranking_metrics as r
from recbole_unlearn.evaluation.metrics import register_metric
from recbole_unlearn.model import llmrec
from recbole_unlearn.model.answer import has_answer_vocabulary
from recbole_unlearn.unlearn.method import register_method
from recbole_unlearn.unlearn.methods.apa import APA
from recbole_unlearn.unlearn.methods.bad_teacher import BadTeacher
from recbole_unlearn.unlearn.methods.e2urec import E2URec
from recbole_unlearn.unlearn.methods.influence import Influence
from recbole_unlearn.unlearn.methods.label_flip import LabelFlip
from recbole_unlearn.unlearn.methods.neggrad import NegGrad
from recbole_unlearn.unlearn.methods.npo import NPO
from recbole_unlearn.unlearn.methods.receraser import RecEraser
from recbole_unlearn.unlearn.methods.retrain import Retrain
from recbole_unlearn.unlearn.methods.scrub import SCRUB
from recbole_unlearn.unlearn.methods.simnpo import SimNPO
from recbole_unlearn.unlearn.methods.sisa import SISA
from recbole_unlearn.unlearn.recbole_flow import ConfiguredLLMRecTrainer, configured_trainer

MODEL_MODULES = {"recbole.model.context_aware_recommender.llmrec": llmrec}
TRAINERS = {"LLMRecTrainer": ConfiguredLLMRecTrainer}
DATASETS = {"LLMRecDataset": LLMRecDataset}
RECBOLE_METRIC_MODULES = ["recbole_unlearn.evaluation.recbole_metrics"]
# In this order for ``unlearn_method: all``.
BUILT_IN_METHODS = (
    *(Retrain, SISA, RecEraser, APA),
    *(NegGrad, LabelFlip, E2URec, NPO, SimNPO, SCRUB, BadTeacher, Influence),
)
METHOD_ENTRY_POINTS = "recbole_unlearn.methods"


def register_models():
    for name, module in MODEL_MODULES.items():
        sys.modules[name] = module
        package_name, _, attribute = name.rpartition(".")
        setattr(importlib.import_module(package_name), attribute, module)


def register_trainers():
    for name, trainer_class in TRAINERS.items():
        setattr(recbole.trainer, name, trainer_class)
    # Every model's trainer runs the experiment when the config names a method (run_recbole imports
    # get_trainer by name, from a module it loads after this one: the autoload imports us first).
    lookup = getattr(recbole.utils.get_trainer, "recbole_lookup", recbole.utils.get_trainer)

    @functools.wraps(lookup)
    def get_trainer(model_type, model_name):
        return configured_trainer(lookup(model_type, model_name))

    get_trainer.recbole_lookup = lookup
    for module in (recbole.utils, recbole.utils.utils, sys.modules.get("recbole.quick_start.quick_start")):
        if module is not None:
            module.get_trainer = get_trainer


def register_datasets():
    for name, dataset_class in DATASETS.items():
        setattr(recbole.data.dataset, name, dataset_class)


def register_config():
    recbole.config.Config._load_internal_config_dict = load_internal_config_dict
    recbole.config.Config._init_device = init_device


def register_flops_guard():
    """Wrap RecBole's ``get_flops`` (where ``run_recbole`` will look it up) so it skips LLM backbones."""
    if hasattr(recbole.utils.get_flops, "__wrapped__"):
        return
    count = recbole.utils.get_flops

    @functools.wraps(count)
    def get_flops(model, dataset, device, logger, transform, verbose=False):
        if has_answer_vocabulary(model):
            logger.info("FLOPs not counted: RecBole's get_flops deep-copies the model, an LLM backbone here.")
            return "not counted"
        return count(model, dataset, device, logger, transform, verbose)

    recbole.utils.get_flops = recbole.utils.utils.get_flops = get_flops
    quick_start = sys.modules.get("recbole.quick_start.quick_start")
    if quick_start is not None:
        quick_start.get_flops = get_flops


def register_recbole_metrics():
    for module_name in RECBOLE_METRIC_MODULES:
        importlib.import_module(module_name)
        smaller, information, types, classes = register.cluster_info(module_name)
        register.smaller_metrics.extend(metric for metric in smaller if metric not in register.smaller_metrics)
        register.metric_information.update(information)
        register.metric_types.update(types)
        register.metrics_dict.update(classes)


def register_methods():
    for method in BUILT_IN_METHODS:
        register_method(method)
    for entry_point in entry_points(group=METHOD_ENTRY_POINTS):
        register_method(entry_point.load())


def register_metrics():
    test, forget, retrained = ("test",), ("forget",), ("forget", "retrained")
    membership = ("forget", "holdout")
    register_metric("test_auc", m.recbole_metric("test", "auc"), test, "higher", True, "test AUC", compare=True)
    gap = (*retrained, "original", "holdout")
    register_metric(
        "forget_gap_closed",
        m.forget_gap_closed,
        gap,
        "higher",
        True,
        "gap closed",
        "{:.3f}",
        compare=True,
        pooled_from="forget_l2_yesno",
    )
    register_metric("forget_gap_signal_p", m.forget_gap_signal_p, gap, None, True, "signal p", "{:.3f}")
    register_metric(
        "forget_gap_closed_jsd", m.forget_gap_closed_jsd, gap, "higher", True, pooled_from="forget_jsd_yesno"
    )
    register_metric("test_auc_retained", m.test_auc_retained, test, "higher", True, "test AUC (retained users)")
    register_ranking_metrics()
    register_metric(
        "unlearn_seconds",
        cost.cost_of("seconds"),
        (),
        "lower",
        label="seconds",
        fmt="{:.0f}",
        compare=True,
        family=None,
    )
    register_metric(
        "seconds_to_best", cost.seconds_to_best, (), "lower", label="seconds to best", fmt="{:.0f}", family=None
    )
    register_metric(
        "models_trained", cost.models_trained, (), "lower", label="models trained", fmt="{:.0f}", family=None
    )
    register_metric(
        "test_logloss", m.recbole_metric("test", "logloss"), test, "lower", label="test LogLoss", compare=True
    )
    register_metric("test_acc", m.recbole_metric("test", "acc"), test, "higher", label="test ACC")
    register_metric("forget_auc", m.forget_auc, forget, receipt=True, label="forget AUC", compare=True)
    register_metric("forget_acc", m.forget_acc, forget)
    register_metric("forget_logloss", m.forget_logloss, forget)
    register_metric("forget_gold_confidence", m.forget_gold_confidence, forget)
    register_metric("forget_jsd", m.vocabulary_distance("jsd"), retrained, "lower", True, "forget JSD")
    register_metric("forget_l2", m.vocabulary_distance("l2"), retrained, "lower", True, "forget L2")
    register_metric("forget_sym_kl", m.vocabulary_distance("sym_kl"), retrained, "lower", label="forget symKL")
    register_metric(
        "forget_jsd_yesno", m.yes_no_distance("jsd"), retrained, "lower", True, "forget JSD (y/n)", compare=True
    )
    register_metric(
        "forget_l2_yesno",
        m.yes_no_distance("l2"),
        retrained,
        "lower",
        True,
        "forget L2 (y/n)",
        table=False,
        compare=True,
    )
    register_metric("forget_sym_kl_yesno", m.yes_no_distance("sym_kl"), retrained, "lower")
    # Membership inference: no direction (the target is the Retrain model's value, not an extreme).
    register_metric("forget_mia_auc", m.forget_mia_auc, membership, receipt=True, label="MIA AUC", compare=True)
    register_metric(
        "forget_privleak",
        m.forget_privleak,
        (*membership, "retrained"),
        receipt=True,
        label="privleak",
        fmt="{:.1f}",
        compare=True,
    )
    ulira = {"needs": ("forget", "holdout"), "opt_in": "unlearn_mia=ulira"}
    register_metric("forget_ulira_auc", m.ulira_metric("auc"), label="U-LiRA AUC", **ulira)
    register_metric("forget_ulira_tpr_at_1pct_fpr", m.ulira_metric(0.01), label="TPR@1%FPR", **ulira)
    register_metric("forget_ulira_tpr_at_01pct_fpr", m.ulira_metric(0.001), **ulira)
    # The relearning attack: no direction (Retrain's row, attacked the same way, is the reference).
    relearn = {"needs": ("forget", "original"), "opt_in": "unlearn_relearn"}
    register_metric("forget_relearn_l2", m.forget_relearn_l2, label="relearned L2 to Original", **relearn)
    register_metric(
        "forget_relearn_recovered", m.forget_relearn_recovered, label="relearn recovered", fmt="{:.2f}", **relearn
    )
    register_metric("test_auc_active", m.fairness("active"), test, "higher", True)
    register_metric("test_auc_inactive", m.fairness("inactive"), test, "higher", True)
    register_metric("fairness_gap", m.fairness_gap, test, receipt=True, label="fairness gap")
    for group in ("active", "inactive"):
        users = m.fairness(group, "users")
        register_metric(f"fairness_{group}_users", users, test, label=f"{group} users", fmt="{:.0f}")
        for size in ("rows", "positives"):
            register_metric(f"fairness_{group}_{size}", m.fairness(group, size), test, fmt="{:.0f}")
    register_metric("peak_rss_mib", cost.cost_of("peak_rss_mib"), (), "lower", family=None)
    register_metric("peak_gpu_mib", cost.cost_of("peak_gpu_mib"), (), "lower", family=None)
    register_metric(
        "trainable_parameters",
        cost.trainable_parameters,
        (),
        label="trainable params",
        fmt="{:,}",
        table=False,
        compare=True,
        family=None,
    )
    register_metric(
        "trainable_share", cost.trainable_share, (), label="trainable", fmt="{:.2%}", compare=True, family=None
    )


def register_ranking_metrics():
    """Ranking models' columns (K: the largest of RecBole's ``topk``), placed before the costs."""

    def ranking(name, compute, better=None, receipt=False, label=None, **shown):
        register_metric(name, compute, (), better, receipt, label, family="ranking", **shown)

    ranking("test_ndcg", r.utility("test", "ndcg"), "higher", True, "test NDCG@K", compare=True)
    ranking("test_recall", r.utility("test", "recall"), "higher", True, "test Recall@K")
    ranking("test_hit", r.utility("test", "hit"), "higher", label="test HR@K", table=False)
    ranking("test_mrr", r.utility("test", "mrr"), "higher", label="test MRR@K", table=False)
    ranking("valid_ndcg", r.utility("valid", "ndcg"), "higher", True)
    topk = {"compare": True, "pooled_from": "forget_topk_distance"}
    ranking("forget_gap_closed_topk", r.forget_gap_closed_topk, "higher", True, "gap closed (top-K)", **topk)
    ranking("forget_gap_signal_p_topk", r.forget_gap_signal_p_topk, None, True, "signal p", fmt="{:.3f}")
    ranking("forget_topk_distance", r.forget_topk_distance, "lower")
    # Residual exposure: no direction (the target is the Retrain model's share, not zero).
    ranking("forget_exposure", r.forget_exposure, None, True, "exposure@K", compare=True)
    ranking("forget_topk_overlap", r.forget_topk_overlap, "higher", True, "top-K overlap")
    ranking("forget_catalogue_jsd", r.forget_catalogue_jsd, "lower", True, "catalogue JSD", fmt="{:.2e}")
    ranking("forget_score_mia_auc", r.forget_score_mia_auc, None, True, "MIA AUC", compare=True)
    ranking("forget_score_privleak", r.forget_score_privleak, None, True, "privleak", fmt="{:.1f}", compare=True)
    ranking("test_ndcg_retained", r.test_ndcg_retained, "higher", True, "test NDCG@K (retained users)")
    ranking("fairness_gap_ndcg", r.fairness_gap_ndcg, None, True, "fairness gap (NDCG)")
    for group in ("active", "inactive"):
        ranking(f"test_ndcg_{group}", r.fairness_ndcg(group), "higher", True)
        users = r.fairness_ndcg(group, size=True)
        ranking(f"fairness_ndcg_{group}_users", users, None, True, f"{group} users", fmt="{:.0f}")


def register_all():
    register_config()
    register_flops_guard()
    register_models()
    register_trainers()
    register_datasets()
    register_recbole_metrics()
    register_methods()
    register_metrics()
