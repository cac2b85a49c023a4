"""SimNPO: Simple Negative Preference Optimization (Fan et al., 2024, arXiv 2410.07163)."""

import torch

from recbole_unlearn.model.answer import answer_log_likelihood
from recbole_unlearn.unlearn.unlearn_trainer import UnlearnTrainer


def simnpo_loss(log_likelihood, answer_length, beta, delta):
    """-(2/beta) * log sigmoid(beta * (-log p_theta(y|x) / |y| - delta)), averaged over the batch
    (open-unlearning's form): NPO without a reference model, on the length-normalised likelihood."""
    negative_log_likelihood = -log_likelihood / answer_length
    return -(2 / beta) * torch.nn.functional.logsigmoid(beta * (negative_log_likelihood - delta)).mean()


class SimNPO(UnlearnTrainer):
    """As open-unlearning's SimNPO: full fine-tune on gamma * SimNPO(forget) + alpha * CE(retain)."""

    name = "simnpo"

    def compute_loss(self, pair):
        log_likelihood, length = answer_log_likelihood(self.model, pair.forget, self.config["LABEL_FIELD"])
        forget_loss = simnpo_loss(log_likelihood, length, self.param("beta"), self.param("delta"))
        return self.param("gamma") * forget_loss + self.param("alpha") * self.model.calculate_loss(pair.retain)
