from recbole_unlearn.unlearn.method import UnlearnMethod


class Retrain(UnlearnMethod):
    """Train a new model from scratch on the retained data, with the Original's recipe: the gold standard."""

    method = "retrain"

    @classmethod
    def run(cls, protocol, original):
        return protocol.train("retrain", protocol.subset_loader(protocol.retain_rows), protocol.valid_data)

    @classmethod
    def load(cls, protocol, original, paths):
        return protocol.load(cls.method, paths[0])[0]
