"""Bad Teacher (Chundawat et al., AAAI 2023, "Can Bad Teaching Induce Forgetting?", arXiv 2205.08096)."""

import copy

import torch
from recbole.utils import get_model

from recbole_unlearn.model.answer import answer_logits
from recbole_unlearn.unlearn.unlearn_trainer import FrozenOutputs, UnlearnTrainer, frozen, kl_to_teacher


def untrained_model(config, dataset):
    """``config``'s model as RecBole builds it before any training (its own initialisation, seeded by
    ``seed``), on ``dataset``; torch's random state outside is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        return get_model(config["model"])(config, dataset).to(config["device"])


class BadTeacher(UnlearnTrainer):
    """A student, initialised from the Original, is distilled from two frozen teachers on mixed batches:
    the competent teacher (the Original) on retained samples and the incompetent teacher (an untrained
    model) on forget samples. Loss: KL(teacher || student) at ``bad_teacher_temperature``, averaged
    over every sample of the batch (forget and retain together), as the official code's
    ``UnlearnerLoss``. The incompetent teacher is built on the retained data (a graph model's graph has
    no forgotten interaction); for LLMRec it is the language model before any recommendation tuning,
    where the paper's is randomly initialised. A batch pairs each forget batch with as many retain
    rows, where the paper mixes the forget set with a random 30% of the retained set.
    """

    name = "bad_teacher"

    def prepare_model(self, model, example):
        self.competent = frozen(copy.deepcopy(model))
        return model

    def prepare(self, forget_data, retain_data):
        self.incompetent = frozen(untrained_model(self.config, retain_data._dataset))
        self.teachers = FrozenOutputs(self.config, self.param("teacher_cache_max_mib"), forget_data, retain_data)

    def distance_to(self, name, batch):
        teacher = getattr(self, name)
        teacher_logits = self.teachers(name, batch, lambda rows: answer_logits(teacher, rows))
        student_logits = answer_logits(self.model, batch)
        return kl_to_teacher(teacher_logits, student_logits, self.param("temperature"))

    def compute_loss(self, pair):
        forget, retain = len(pair.forget), len(pair.retain)
        total = forget * self.distance_to("incompetent", pair.forget) + retain * self.distance_to(
            "competent", pair.retain
        )
        return total / (forget + retain)
