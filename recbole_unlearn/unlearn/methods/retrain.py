"""Retrain: the gold standard every other method is measured against."""

from recbole_unlearn.unlearn.method import UnlearnMethod


class Retrain(UnlearnMethod):
    """Train a new model from scratch on the retained data, with the Original's recipe."""

    name = "retrain"
    is_retrain = True

    @classmethod
    def run(cls, protocol, start):
        return protocol.train(cls.name, protocol.retained_loader(protocol.retain_rows), protocol.valid_data)

    @classmethod
    def load(cls, protocol, start, paths):
        return protocol.load(cls.name, paths[0])[0]
