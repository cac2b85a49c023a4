"""Metrics added to RecBole's own evaluator (``registry.register_recbole_metrics``).

RecBole collects every class of this module as a metric, so it holds metric classes only.
"""

from recbole.evaluator.base_metric import LossMetric
from sklearn.metrics import accuracy_score


class ACC(LossMetric):
    """Accuracy of the labeled predictions at the 0.5 threshold."""

    def calculate_metric(self, dataobject):
        return self.output_metric("acc", dataobject)

    def metric_info(self, preds, trues):
        return accuracy_score(trues, preds >= 0.5)
