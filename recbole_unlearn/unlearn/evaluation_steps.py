"""The evaluation steps of ``UnlearnProtocol``: what the evaluation sets apart before training (the
membership-inference holdout) and reads (a labeled model's loaders), a model's outputs on every split a
registered metric reads (a labeled model's per split, a ranking model's
``recbole_unlearn.evaluation.ranking`` pass), kept next to a cached checkpoint, and its result row."""

import functools
import hashlib
import json
import os

import numpy as np

from recbole_unlearn import distributed
from recbole_unlearn.batching import length_sorted
from recbole_unlearn.checkpoint import checkpoint_sha256
from recbole_unlearn.data.fingerprints import tokens_sha256
from recbole_unlearn.data.groups import holdout_mask, parse_holdout, valid_holdout_rows
from recbole_unlearn.data.loaders import eval_loader, train_loader
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.metrics import METRICS, compute_row, needed_splits
from recbole_unlearn.evaluation.outputs import Evaluation, collect_outputs
from recbole_unlearn.evaluation.ranking import collect_ranking_outputs
from recbole_unlearn.evaluation.ranking_metrics import RankingEvaluation
from recbole_unlearn.provenance import code_sha256
from recbole_unlearn.unlearn.cache import load_outputs, outputs_path, save_outputs
from recbole_unlearn.unlearn.relearn import check_relearn, relearn_rows, relearned
from recbole_unlearn.unlearn.shadows import check_shadows, train_shadows


class ProtocolEvaluation:
    """Mixed into ``UnlearnProtocol``, whose data, files and cache it reads."""

    def hold_out(self, before):
        """Set apart the membership-inference holdout (``unlearn_mia_holdout``): a seeded share of the
        training split drawn at the request's level, which no model trains on; the training split is the
        rest. A later request of a sequence keeps the first one's holdout, so its Original is the same."""
        share = parse_holdout(self.config["unlearn_mia_holdout"])
        self.holdout_dataset = None
        self.first_request = before.first_request if before else self.request
        if share == "valid":
            return
        held_out = holdout_mask(self.train_dataset, self.first_request, share, self.config["seed"])
        self.holdout_dataset = self.subset(np.flatnonzero(held_out))
        self.train_dataset = self.subset(np.flatnonzero(~held_out))
        self.train_data = train_loader(self.config, self.train_dataset)

    def labeled_evaluation_data(self):
        """A labeled model's evaluation loaders: test, valid, the forget set and the holdout (with
        ``unlearn_mia_holdout: valid``, as many validation samples as forget samples, seeded)."""
        config = self.config
        if config["unlearn_relearn"]:
            check_relearn(config)
        if config["unlearn_mia"] not in ("loss", "ulira"):
            raise BadInput(f"unlearn_mia must be loss or ulira, got {config['unlearn_mia']!r}.")
        if config["unlearn_mia"] == "ulira":
            check_shadows(config)
        forget_data = eval_loader(config, self.subset(self.forget_rows))
        self.example = next(iter(forget_data))[0].to(config["device"])
        if self.holdout_dataset is None:
            valid = self.valid_data._dataset
            rows = valid_holdout_rows(valid, len(self.forget_rows), config["seed"])
            self.holdout_dataset = valid.copy(valid.inter_feat[rows])
        self.holdout_sha256 = tokens_sha256(self.holdout_dataset)
        holdout = eval_loader(config, self.holdout_dataset)
        splits = {"test": self.test_data, "valid": self.valid_data, "forget": forget_data, "holdout": holdout}
        self.eval_loaders = {split: length_sorted(data) for split, data in splits.items()}

    def cached_outputs(self, name, compute):
        """``compute()``'s outputs, kept next to the cached checkpoint ``name`` under a key of that checkpoint,
        the Retrain checkpoint, the data and the splits evaluated."""
        path = self.files.get(name) if name else None
        if self.ranking or path is None or os.path.dirname(path) != self.cache.directory:
            return compute()
        recorded = distributed.on_main(
            lambda: {
                role: checkpoint_sha256(self.files[file]) for role, file in (("model", name), ("retrain", "retrain"))
            }
        )
        payload = {
            **recorded,
            **self.fingerprints,
            "holdout": self.holdout_sha256,
            "splits": needed_splits(),
            "batch": self.config["eval_batch_size"],
            "code": code_sha256(),
        }
        path = outputs_path(path, hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest())
        # Rank 0 reads and writes; a rank's kept answers are its own share, so several ranks keep none.
        shared = not distributed.active()
        outputs = distributed.on_main(lambda: load_outputs(path, needed_splits(), answers=shared))
        if outputs is None:
            outputs = compute()
            if distributed.is_main():
                save_outputs(path, outputs, answers=shared)
        else:
            self.logger.info(f"Loaded the evaluation outputs of {name} from {path}")
        return outputs

    def outputs(self, model, retrained, retrained_outputs=None):
        """``model``'s outputs on every split a registered metric reads, each split in prompt-length order;
        on the forget set also its distances to the Retrain model (whose answers ``retrained_outputs`` may
        hold). Evaluating the Retrain model itself keeps its forget-set answers within
        ``unlearn_eval_cache_max_mib``."""
        if self.ranking:
            return collect_ranking_outputs(
                self.config, model, self.valid_data, self.test_data, self.queries, retrained=retrained
            )
        label, user = self.config["LABEL_FIELD"], self.config["USER_ID_FIELD"]
        outputs = {}
        for split in needed_splits():
            distances = {}
            if split == "forget":
                kept = retrained_outputs["forget"].answers if retrained_outputs else None
                distances = {
                    "retrained": None if kept is not None else retrained,
                    "retrained_answers": kept,
                    "keep_answers_mib": self.config["unlearn_eval_cache_max_mib"] if retrained is model else 0,
                }
            outputs[split] = collect_outputs(model, self.eval_loaders[split], label, user_field=user, **distances)
        return outputs

    def evaluated_outputs(self, model, retrained, retrained_outputs=None, cached_as=None):
        """``outputs`` of ``model``, kept next to the cached checkpoint ``cached_as`` if it is one."""
        return self.cached_outputs(cached_as, lambda: self.outputs(model, retrained, retrained_outputs))

    @functools.cached_property
    def shadows(self):
        """U-LiRA's shadow models, trained (or loaded from the cache) once, and scored on the candidates."""
        return train_shadows(self, lambda model: self.split_outputs(model, ("forget", "holdout")))

    def relearned_outputs(self, model):
        """With ``unlearn_relearn``: the forget-set outputs of ``model`` after the relearning attack
        (``recbole_unlearn.unlearn.relearn``); None without it, or for a ranking model."""
        if self.ranking or not self.config["unlearn_relearn"]:
            return None
        rows = relearn_rows(self.forget_rows, self.config["unlearn_relearn_share"], self.config["seed"])
        loader = train_loader(self.config, self.subset(rows), self.config["unlearn_relearn_batch_size"])
        return self.split_outputs(relearned(self.config, model, loader), ("forget",))

    def split_outputs(self, model, splits):
        """``model``'s outputs on some of a labeled model's evaluation splits, without distances."""
        return {split: collect_outputs(model, self.eval_loaders[split], self.config["LABEL_FIELD"]) for split in splits}

    def signal_p(self, retrained_outputs, original_outputs):
        """This request's signal check (``forget_gap_signal_p``; a ranking model's ``_topk``): small = the
        Original is farther from the Retrain model on the forget set than on held-out data."""
        evaluation = (RankingEvaluation if self.ranking else Evaluation)(
            config=self.config,
            outputs=original_outputs,
            retrained=retrained_outputs,
            original=original_outputs,
            cost={},
            trainable_parameters=0,
            total_parameters=0,
        )
        return METRICS["forget_gap_signal_p_topk" if self.ranking else "forget_gap_signal_p"].compute(evaluation)

    def evaluate(self, name, model, cost, outputs, retrained_outputs, original_outputs):
        """The result row of ``model`` from its ``outputs`` and those of the Retrain model and the Original
        (or the model a sequential request starts from)."""
        evaluation = (RankingEvaluation if self.ranking else Evaluation)(
            config=self.config,
            outputs=outputs,
            retrained=retrained_outputs,
            original=original_outputs,
            cost=cost,
            trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
            total_parameters=sum(p.numel() for p in model.parameters()),
            groups=self.fairness_groups,
        )
        if not self.ranking:
            evaluation.relearned = self.relearned_outputs(model)
            evaluation.shadows = self.shadows if self.config["unlearn_mia"] == "ulira" else None
        row = compute_row(name, evaluation)
        self.logger.info(f"{name}: {row}")
        return row
