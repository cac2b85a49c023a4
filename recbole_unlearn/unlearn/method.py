"""What every unlearning method is: a name (its config prefix) and a way to unlearn from the Original."""

from recbole_unlearn.model.answer import unsupported_reason


class UnlearnMethod:
    method = None
    # Fine-tuning methods need a model trained by gradient descent; retraining ones only a trainer.
    needs_gradients = False

    @classmethod
    def unsupported_reason(cls, config):
        """Why this method cannot unlearn the configured model (known before any data is read), or None."""
        return unsupported_reason(config, cls.needs_gradients)

    @classmethod
    def check(cls, config, model, example):
        """Raise ValueError, at start-up, if this method cannot unlearn ``model`` (a fresh instance)."""

    @classmethod
    def run(cls, protocol, original):
        """The unlearned model; ``original`` stays untouched."""
        raise NotImplementedError

    @classmethod
    def file_names(cls, config):
        """The names (keys of ``protocol.files``) of the checkpoints the unlearned model is made of."""
        return [cls.method]

    @classmethod
    def load(cls, protocol, original, paths):
        """The unlearned model rebuilt from those checkpoint files (to verify a receipt)."""
        raise NotImplementedError
