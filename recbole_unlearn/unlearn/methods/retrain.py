class Retrain:
    """Train a new model from scratch on the retained data, with the Original's recipe: the gold standard."""

    method = "retrain"

    @staticmethod
    def run(protocol, original):
        return protocol.train("retrain", protocol.subset_loader(protocol.retain_rows), protocol.valid_data)
