"""What every unlearning method is, and the table ``unlearn_method`` selects methods from.

A method is a class with a ``name`` (also the prefix of its config keys), a YAML file of defaults, and
``run(protocol, start)``: the unlearned model, leaving ``start`` untouched. ``recbole_unlearn.registry``
registers the built-in methods and those other packages declare in the ``recbole_unlearn.methods``
entry-point group.
"""

import json
from importlib.resources import files
from logging import getLogger

from recbole.utils import ModelType

from recbole_unlearn.errors import BadInput, NotApplicable

METHOD_DEFAULTS = files("recbole_unlearn.properties") / "method"
# Labeled (context-aware, LLMRec) and ranking (general, sequential, and general models fitted without
# gradient descent) models.
SUPPORTED_TYPES = (ModelType.CONTEXT, ModelType.GENERAL, ModelType.SEQUENTIAL, ModelType.TRADITIONAL)
# Registered methods by name, in registration order (the order of ``unlearn_method: all``).
METHODS = {}


class UnlearnMethod:
    name = None
    # A YAML file of this method's defaults (``<name>_*`` keys); ~ = properties/method/<name>.yaml.
    defaults_file = None
    # Fine-tuning methods need a model trained by gradient descent; retraining ones only a trainer.
    needs_gradients = False
    # Retrain is the reference every other method is measured against: the protocol trains it once.
    is_retrain = False
    # What the unlearned model is: one fine-tunable "model", or SISA's "shards" (an ensemble).
    produces = "model"
    # What this method's paper claims, as ``recbole_unlearn.evaluation.summary.Claim``s judged over seeds.
    claims = ()

    @classmethod
    def defaults(cls):
        """Path of the YAML file with this method's defaults, or None."""
        if cls.defaults_file:
            return str(cls.defaults_file)
        path = METHOD_DEFAULTS / f"{cls.name}.yaml"
        return str(path) if path.is_file() else None

    @classmethod
    def unsupported_reason(cls, config):
        """Why this method cannot unlearn the configured model (known before any data is read), or None."""
        model_type = config["MODEL_TYPE"]
        if model_type in (ModelType.TRADITIONAL, ModelType.DECISIONTREE) and cls.needs_gradients:
            return f"it is not trained by gradient descent (RecBole {model_type})"
        if model_type == ModelType.DECISIONTREE:
            return f"its trees live outside torch (RecBole {model_type}): no checkpoint to keep or verify"
        if model_type not in SUPPORTED_TYPES:
            return f"RecBole {model_type} models are not supported: unlearning needs one model per training split"
        return None

    @classmethod
    def check(cls, config, model, example):
        """Raise ValueError, at start-up, if this method cannot unlearn ``model`` (a fresh instance)."""

    @classmethod
    def continues_from(cls, previous):
        """Whether this method can start from the model a ``previous`` method's run left (a sequential
        request). By default it fine-tunes one model, which a shard ensemble is not."""
        return cls.is_retrain or previous.produces == "model"

    @classmethod
    def adopt_files(cls, protocol, files):
        """A later request starts from this method's model, made of ``files``: record what it reuses."""

    @classmethod
    def run(cls, protocol, start):
        """The unlearned model; ``start`` (the Original, or a previous request's result) stays untouched."""
        raise NotImplementedError

    @classmethod
    def file_names(cls, config):
        """The names (keys of ``protocol.files``) of the checkpoints the unlearned model is made of."""
        return [cls.name]

    @classmethod
    def rebuilt_files(cls, protocol):
        """The names among ``file_names`` that this request builds anew; the others are reused unchanged."""
        return cls.file_names(protocol.config)

    @classmethod
    def receipt_fields(cls, protocol):
        """What else a receipt records of this request's run (e.g. a partition's SHA-256); ``verify``
        recomputes them from the rebuilt run and compares."""
        return {}

    @classmethod
    def load(cls, protocol, start, paths):
        """The unlearned model rebuilt from those checkpoint files (to verify a receipt)."""
        raise NotImplementedError


def register_method(method_class):
    """Make ``unlearn_method: <method_class.name>`` select ``method_class`` (idempotent)."""
    if not (isinstance(method_class, type) and issubclass(method_class, UnlearnMethod) and method_class.name):
        raise TypeError(f"{method_class!r} is not an UnlearnMethod subclass with a name.")
    registered = METHODS.get(method_class.name)
    if registered is not None and registered is not method_class:
        raise BadInput(
            f"Unlearning method name {method_class.name!r} is taken by {registered.__module__}.{registered.__name__}."
        )
    METHODS[method_class.name] = method_class
    return method_class


def hyperparameters(config, method_name):
    """The ``<method>_`` keys of ``config`` as JSON writes them (what receipts and checkpoints record)."""
    prefix = f"{method_name}_"
    return json.loads(
        json.dumps(
            {key: value for key, value in config.final_config_dict.items() if key.startswith(prefix)}, default=str
        )
    )


def selects_unlearning(unlearn_method):
    """Whether an ``unlearn_method`` value names methods, as RecBole's own flow (``run_recbole``,
    ``objective_function``) needs before it runs the protocol (our own entry points run every method
    when it is unset)."""
    return unlearn_method not in (None, "none")


def selects_every_method(unlearn_method):
    """Whether ``unlearn_method`` selects every method (``all``, or unset), which skips inapplicable ones."""
    return unlearn_method is None or (isinstance(unlearn_method, str) and unlearn_method.strip() == "all")


def applicable(config, methods, check):
    """``methods`` that ``check(method)`` does not refuse with ``NotApplicable``; under ``unlearn_method:
    all`` the refused ones are skipped (their reasons logged), else the refusal is raised."""
    kept = []
    for method in methods:
        try:
            check(method)
        except NotApplicable as reason:
            if not selects_every_method(config["unlearn_method"]):
                raise
            getLogger().warning(f"Skipping {method.name}: {reason}")
        else:
            kept.append(method)
    return kept


def get_unlearn_methods(names):
    """The method classes named by ``unlearn_method``: one name, a comma-separated list, or ``all`` (also
    ``~``, the default)."""
    if names is None:
        return list(METHODS.values())
    if isinstance(names, str):
        names = list(METHODS) if names.strip() == "all" else names.split(",")
    unknown = [name for name in names if name.strip() not in METHODS]
    if unknown:
        raise BadInput(f"unlearn_method {unknown} is unknown; choose from {list(METHODS)} or 'all'.")
    return [METHODS[name.strip()] for name in names]


def config_prefixes():
    """Key prefixes of the protocol and of every registered method (keys a trained Original ignores)."""
    return ("unlearn_", "forget_", *(f"{name}_" for name in METHODS))
