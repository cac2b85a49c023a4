from recbole_unlearn.unlearn.unlearn_trainer import UnlearnTrainer


class NegGrad(UnlearnTrainer):
    """Full fine-tune: descend on retained data, ascend on forget data: CE(retain) - w * CE(forget)."""

    name = "neggrad"

    def compute_loss(self, pair):
        forget_weight = self.param("forget_weight")
        return self.model.calculate_loss(pair.retain) - forget_weight * self.model.calculate_loss(pair.forget)
