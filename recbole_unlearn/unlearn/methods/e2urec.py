import copy

import torch

from recbole_unlearn.config import config_with
from recbole_unlearn.errors import BadInput, NotApplicable
from recbole_unlearn.evaluation.summary import Claim
from recbole_unlearn.model.answer import answer_sequence, first_answer
from recbole_unlearn.model.llmrec import IGNORE_INDEX
from recbole_unlearn.model.lora import add_lora, default_targets, matching_layers
from recbole_unlearn.trainer import SafeTrainer
from recbole_unlearn.unlearn.unlearn_trainer import (
    FrozenOutputs,
    PairedBatches,
    UnlearnTrainer,
    frozen,
    kl_to_teacher,
)

ANSWER_POSITIONS = ("first", "all")


def forgetting_teacher_logits(original_logits, augmented_logits, alpha):
    """z_f = z_o - alpha * relu(z_a - z_o): push down what fine-tuning on the forget data pushed up."""
    return original_logits - alpha * torch.relu(augmented_logits - original_logits)


class E2URec(UnlearnTrainer):
    """E2URec (Wang et al., 2024): train only LoRA modules, distilled from two frozen teachers.

    Remembering teacher: the Original, on retained data (KL, plus CE on the true answer).
    Forgetting teacher: ``forgetting_teacher_logits`` of the Original and an augmented model (the
    Original fine-tuned on the forget data), on forget data (KL).
    Loss: w * (CE_retain + KL_retain) + (1 - w) * KL_forget; one forget-only epoch comes first.
    LoRA goes on ``e2urec_lora_targets``, by default LLMRec's attention query/value or, for a CTR model,
    every Linear and Embedding layer its prediction uses. ``e2urec_answer_positions: all`` takes every
    loss term over every position of the answer ("Yes", ".", "</s>" for a seq2seq LLMRec), as the
    official code does; ``e2urec_paired_fraction`` stops each paired epoch early (the official model:
    1,000 steps = the forget-only epoch and ~23% of a paired epoch on ML-1M).
    """

    name = "e2urec"
    claims = (
        *(
            Claim(f"E2URec's forget JSD (y/n) to Retrain is below {other}'s", "forget_jsd_yesno", "e2urec", other)
            for other in ("neggrad", "label_flip", "sisa")
        ),
        Claim("E2URec's test AUC is within 0.01 of the Original's", "test_auc", "e2urec", "original", "higher", -0.01),
        Claim("E2URec trains under 5% of the parameters", "trainable_share", "e2urec", None, "lower", 0.05),
        Claim("E2URec unlearns in less time than Retrain", "unlearn_seconds", "e2urec", "retrain", "lower"),
        Claim(
            "E2URec unlearns in less time than Retrain trains up to its best epoch (the official code's count)",
            "seconds_to_best",
            "e2urec",
            "retrain",
            "lower",
        ),
    )

    @classmethod
    def lora_targets(cls, config, model, example):
        return config["e2urec_lora_targets"] or default_targets(model, example)

    @classmethod
    def check(cls, config, model, example):
        if config["e2urec_answer_positions"] not in ANSWER_POSITIONS:
            raise BadInput(
                f"e2urec_answer_positions is {config['e2urec_answer_positions']!r}; choose one of {ANSWER_POSITIONS}."
            )
        fraction = config["e2urec_paired_fraction"]
        if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise BadInput(f"e2urec_paired_fraction must be in (0, 1]; got {fraction!r}.")
        if "llm_lora_r" in config and config["llm_lora_r"]:
            raise NotApplicable("the Original already trains LoRA adapters (llm_lora_r): E2URec's would stack on them")
        targets = cls.lora_targets(config, model, example)
        if not targets:
            raise NotApplicable(
                f"its LoRA modules need a Linear or Embedding layer that {type(model).__name__} calls on a batch, "
                "and it calls none (it reads its embedding tables directly, as graph models do)"
            )
        unmatched = [target for target in targets if not matching_layers(model, [target])]
        if unmatched:
            raise BadInput(
                f"e2urec_lora_targets {unmatched or targets} name no layer of {type(model).__name__}; "
                f"its Linear/Embedding layers include {default_targets(model, example)[:8]}."
            )

    def prepare_model(self, model, example):
        self.original = frozen(copy.deepcopy(model))
        return add_lora(
            model,
            self.lora_targets(self.config, model, example),
            rank=self.param("lora_r"),
            alpha=self.param("lora_alpha"),
            dropout=self.param("lora_dropout"),
        )

    def prepare(self, forget_data, retain_data):
        self.augmented = copy.deepcopy(self.original)
        for parameter in self.augmented.parameters():
            parameter.requires_grad_(True)
        augment_config = config_with(
            self.config,
            learning_rate=self.param("augment_learning_rate"),
            epochs=self.param("augment_epochs"),
        )
        SafeTrainer(augment_config, self.augmented).fit(forget_data, saved=False, verbose=False)
        frozen(self.augmented)
        # The teachers are frozen: each sample's teacher logits are computed once, reused every epoch.
        self.teachers = FrozenOutputs(self.config, self.param("teacher_cache_max_mib"), forget_data, retain_data)

    def schedule(self, forget_data, retain_data):
        paired = PairedBatches(forget_data, retain_data, fraction=self.param("paired_fraction"))
        return [PairedBatches(forget_data)] + [paired] * self.epochs

    def answers(self, model, interaction):
        """Logits [batch, positions, outcomes] and true answers [batch, positions] (IGNORE_INDEX past an
        answer's end) at the positions the losses use."""
        positions = answer_sequence if self.param("answer_positions") == "all" else first_answer
        return positions(model, interaction, self.config["LABEL_FIELD"])

    def forgetting_teacher(self, forget):
        original, _ = self.answers(self.original, forget)
        augmented, _ = self.answers(self.augmented, forget)
        return forgetting_teacher_logits(original, augmented, self.param("alpha"))

    def compute_loss(self, pair):
        teacher = self.teachers("forgetting", pair.forget, self.forgetting_teacher)
        student, targets = self.answers(self.model, pair.forget)
        real = targets != IGNORE_INDEX
        forget_loss = kl_to_teacher(teacher[real], student[real])
        if pair.retain is None:
            return forget_loss
        student, targets = self.answers(self.model, pair.retain)
        remembered = self.teachers("original", pair.retain, lambda retain: self.answers(self.original, retain)[0])
        real = targets != IGNORE_INDEX
        remember_loss = torch.nn.functional.cross_entropy(student[real], targets[real]) + kl_to_teacher(
            remembered[real], student[real]
        )
        weight = self.param("retain_weight")
        return weight * remember_loss + (1 - weight) * forget_loss
