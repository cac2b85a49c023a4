from recbole.data.interaction import Interaction

from recbole_unlearn.unlearn.unlearn_trainer import UnlearnTrainer


class BadTeacher(UnlearnTrainer):
    """As the official E2URec code's "Bad-T": full fine-tune on CE(retain) + w * CE(forget, flipped labels).

    (The distillation "bad teacher" of Chundawat et al. is a different method.)
    """

    name = "bad_teacher"

    def compute_loss(self, pair):
        label = self.config["LABEL_FIELD"]
        flipped = Interaction({**pair.forget.interaction, label: 1 - pair.forget[label]})
        forget_weight = self.param("forget_weight")
        return self.model.calculate_loss(pair.retain) + forget_weight * self.model.calculate_loss(flipped)
