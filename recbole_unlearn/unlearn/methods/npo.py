"""NPO: Negative Preference Optimization (Zhang et al., 2024, arXiv 2404.05868)."""

import copy

import torch

from recbole_unlearn.model.answer import answer_log_likelihood
from recbole_unlearn.unlearn.unlearn_trainer import FrozenOutputs, UnlearnTrainer, frozen


def npo_loss(log_likelihood, reference_log_likelihood, beta):
    """-(2/beta) * log sigmoid(-beta * (log p_theta(y|x) - log p_ref(y|x))), averaged over the batch:
    gradient ascent on the forget answers that slows down as they become less likely than under the
    reference, so it cannot run away as plain ascent does."""
    log_ratio = log_likelihood - reference_log_likelihood
    return -(2 / beta) * torch.nn.functional.logsigmoid(-beta * log_ratio).mean()


class NPO(UnlearnTrainer):
    """NPO+RT, as open-unlearning's NPO: full fine-tune on gamma * NPO(forget) + alpha * CE(retain), with the
    frozen Original as the reference. ``log p(y|x)`` sums the log-probabilities of the answer's tokens."""

    name = "npo"

    def prepare_model(self, model, example):
        self.reference = frozen(copy.deepcopy(model))
        return model

    def prepare(self, forget_data, retain_data):
        self.references = FrozenOutputs(self.config, self.param("reference_cache_max_mib"), forget_data)

    def log_likelihood(self, model, interaction):
        return answer_log_likelihood(model, interaction, self.config["LABEL_FIELD"])[0]

    def compute_loss(self, pair):
        reference = self.references("reference", pair.forget, lambda batch: self.log_likelihood(self.reference, batch))
        forget_loss = npo_loss(self.log_likelihood(self.model, pair.forget), reference, self.param("beta"))
        return self.param("gamma") * forget_loss + self.param("alpha") * self.model.calculate_loss(pair.retain)
