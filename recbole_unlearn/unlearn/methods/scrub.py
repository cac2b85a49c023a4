"""SCRUB (Kurmanji et al., 2023, "Towards Unbounded Machine Unlearning", arXiv 2302.09880)."""

import copy

import torch

from recbole_unlearn.model.answer import answer_logits, answer_targets
from recbole_unlearn.unlearn.unlearn_trainer import FrozenOutputs, PairedBatches, UnlearnTrainer, frozen, kl_to_teacher


class SCRUB(UnlearnTrainer):
    """A student, initialised from the Original (the frozen teacher), alternates two kinds of epochs:
    max-steps on forget batches raise KL(teacher || student) (loss: -KL), min-steps on retain batches
    lower alpha * KL + gamma * CE(true answer). Each of ``scrub_epochs`` epochs runs a max-step pass
    (only in the first ``scrub_msteps``) and then a min-step pass; KL at ``scrub_temperature``.
    A pass here is as many batches as the forget data has (the retain data cycles), where the official
    code's min-step pass covers the whole retain set.
    """

    name = "scrub"

    def prepare_model(self, model, example):
        self.teacher = frozen(copy.deepcopy(model))
        return model

    def prepare(self, forget_data, retain_data):
        self.teachers = FrozenOutputs(self.config, self.param("teacher_cache_max_mib"), forget_data, retain_data)

    def schedule(self, forget_data, retain_data):
        maximize, minimize = PairedBatches(forget_data), PairedBatches(forget_data, retain_data, retain_only=True)
        return [
            epoch
            for index in range(self.epochs)
            for epoch in ([maximize, minimize] if index < self.param("msteps") else [minimize])
        ]

    def distance_to_teacher(self, interaction):
        student = answer_logits(self.model, interaction)
        teacher = self.teachers("teacher", interaction, lambda batch: answer_logits(self.teacher, batch))
        return student, kl_to_teacher(teacher, student, self.param("temperature"))

    def compute_loss(self, pair):
        if pair.retain is None:
            return -self.distance_to_teacher(pair.forget)[1]
        student, distance = self.distance_to_teacher(pair.retain)
        answers = answer_targets(self.model, pair.retain, self.config["LABEL_FIELD"])
        cross_entropy = torch.nn.functional.cross_entropy(student, answers)
        return self.param("alpha") * distance + self.param("gamma") * cross_entropy
