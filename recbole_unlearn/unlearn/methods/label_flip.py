from recbole_unlearn.errors import NotApplicable
from recbole_unlearn.model.answer import flipped_answers
from recbole_unlearn.unlearn.unlearn_trainer import UnlearnTrainer


class LabelFlip(UnlearnTrainer):
    """The official E2URec code's "Bad-T": full fine-tune on CE(retain) + w * CE(forget, flipped labels).
    A ranking model trained by BPR flips a sample's preference (its item and its negative swap places).
    Chundawat et al.'s distillation Bad Teacher is ``bad_teacher``.
    """

    name = "label_flip"

    @classmethod
    def check(cls, config, model, example):
        if flipped_answers(model, example, config["LABEL_FIELD"]) is None:
            raise NotApplicable(
                f"label_flip flips each forget sample's answer; {type(model).__name__}'s answer is an item of "
                "the catalogue (cross-entropy), which has no opposite."
            )

    def compute_loss(self, pair):
        flipped = flipped_answers(self.model, pair.forget, self.config["LABEL_FIELD"])
        forget_weight = self.param("forget_weight")
        return self.model.calculate_loss(pair.retain) + forget_weight * self.model.calculate_loss(flipped)
