"""Metrics added to RecBole's evaluator (registered by ``recbole_unlearn.registry``)."""

from recbole.evaluator.base_metric import LossMetric
from sklearn.metrics import accuracy_score


class ACC(LossMetric):
    """Accuracy of the labeled predictions at the 0.5 threshold."""

    def calculate_metric(self, dataobject):
        return self.output_metric("acc", dataobject)

    def metric_info(self, preds, trues):
        return accuracy_score(trues, preds >= 0.5)
