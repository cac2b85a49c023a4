"""Influence-function unlearning: one Newton step on the retained objective (Koh & Liang, 2017, as IFRU
and SCIF apply it to recommendation; LLMEraser restricts it to LoRA parameters)."""

import contextlib
import copy
import importlib.util

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, cg
from torch.nn.attention import SDPBackend, sdpa_kernel

from recbole_unlearn import distributed
from recbole_unlearn.checkpoint import load_checkpoint, save_checkpoint
from recbole_unlearn.errors import BadInput, NotApplicable
from recbole_unlearn.model.answer import answer_logits, answer_targets, in_eval_mode
from recbole_unlearn.unlearn.method import UnlearnMethod

CURVATURES = ("ggn", "hessian")
# curvlinops' backpack dependency asks for torchvision, whose PyPI build breaks a CPU torch.
INSTALL_HINT = "pip install --no-deps curvlinops-for-pytorch==3.0.1"


class AnswerModel(torch.nn.Module):
    """A model's answer logits for a batch ``{"interaction": ...}``: the model function curvlinops takes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return answer_logits(self.model, batch["interaction"])


def labeled_batches(model, loader, label_field):
    """The (input, true answer) pairs curvlinops iterates over; fixed, so every product sees the same data."""
    device = next(model.parameters()).device
    batches = [batch.to(device) for batch in loader]
    return [({"interaction": batch}, answer_targets(model, batch, label_field)) for batch in batches]


def summed_gradient(model, parameters, batches):
    """Gradient of the summed cross-entropy of the true answers over ``batches``."""
    total = [torch.zeros_like(parameter) for parameter in parameters]
    for inputs, targets in batches:
        loss = torch.nn.functional.cross_entropy(AnswerModel(model)(inputs), targets, reduction="sum")
        for running, gradient in zip(total, torch.autograd.grad(loss, parameters)):
            running += gradient
    return total


@contextlib.contextmanager
def without_attention_fast_path():
    """nn.MultiheadAttention on its plain path within the block."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def forward_mode_probe(model, example):
    """One forward-mode derivative of ``model``'s answer on ``example``, as curvlinops' products take it
    (on the attention paths that have one)."""
    answers = AnswerModel(model)
    parameters = {name: parameter.detach() for name, parameter in answers.named_parameters()}
    tangents = {name: torch.zeros_like(parameter) for name, parameter in parameters.items()}
    with in_eval_mode(model), sdpa_kernel(SDPBackend.MATH), without_attention_fast_path():
        torch.func.jvp(
            lambda values: torch.func.functional_call(answers, values, ({"interaction": example},)),
            (parameters,),
            (tangents,),
        )


def newton_step(model, parameters, forget_batches, retain_batches, retain_size, curvature, damping, iterations):
    """``(H + damping * I)^-1 g / retain_size``: H the curvature (``ggn`` or ``hessian``) of the mean
    cross-entropy over ``retain_batches`` (a sample of the retained data), g the summed forget gradient.
    Removing the forget data from the optimum of the summed loss moves it by ``H_retain_sum^-1 g``, and
    ``H_retain_sum = retain_size * H``. Solved by scipy's conjugate gradient on curvlinops' operator."""
    # Imported here: curvlinops is installed apart (INSTALL_HINT), and only this method needs it.
    from curvlinops import GGNLinearOperator, HessianLinearOperator

    operator_class = GGNLinearOperator if curvature == "ggn" else HessianLinearOperator
    curvature_operator = operator_class(
        AnswerModel(model),
        torch.nn.CrossEntropyLoss(reduction="mean"),
        parameters,
        retain_batches,
        check_deterministic=False,  # the model is in eval mode and the batches are a fixed list
        batch_size_fn=lambda inputs: len(inputs["interaction"]),
    ).to_scipy(dtype=np.float64)
    size = curvature_operator.shape[0]
    damped = LinearOperator((size, size), matvec=lambda v: curvature_operator @ v + damping * v, dtype=np.float64)
    gradient = torch.cat([g.flatten() for g in summed_gradient(model, parameters, forget_batches)]) / retain_size
    # The fused attention kernels (SDPA's, and nn.MultiheadAttention's fast path in eval mode, FiGNN's)
    # have no forward-mode derivative, which curvature products need.
    with sdpa_kernel(SDPBackend.MATH), without_attention_fast_path():
        solution, _ = cg(damped, gradient.double().cpu().numpy(), maxiter=iterations)
    step = torch.from_numpy(solution).to(parameters[0].device, parameters[0].dtype)
    changes = step.split([parameter.numel() for parameter in parameters])
    return [change.view_as(parameter) for change, parameter in zip(changes, parameters)]


class Influence(UnlearnMethod):
    """``theta + scale * (H_retain + damping)^-1 * sum_forget grad loss`` from the Original: one step, no
    epochs (its time is the curvature products). The loss is the cross-entropy of the true answer at the
    answer position; H is taken over ``influence_hessian_samples`` retained samples; only the parameters
    named by ``influence_parameters`` move (all by default)."""

    name = "influence"
    needs_gradients = True

    @classmethod
    def unsupported_reason(cls, config):
        reason = super().unsupported_reason(config)
        if reason is None and importlib.util.find_spec("curvlinops") is None:
            return f"it needs curvlinops-for-pytorch ({INSTALL_HINT})"
        return reason

    @classmethod
    def check(cls, config, model, example):
        if config["influence_curvature"] not in CURVATURES:
            raise BadInput(f"influence_curvature is {config['influence_curvature']!r}; choose one of {CURVATURES}.")
        if distributed.active():
            raise BadInput("unlearn_method influence runs in one process: its curvature needs all retained data.")
        cls.selected(config, copy.deepcopy(model), example)
        try:
            forward_mode_probe(model, example)
        except NotImplementedError as error:  # e.g. LightGCN's sparse graph propagation
            raise NotApplicable(
                f"its curvature products differentiate {type(model).__name__}'s answer in forward mode, which "
                f"torch does not implement for it ({str(error).splitlines()[0]})"
            ) from error

    @classmethod
    def selected(cls, config, model, example):
        """``model`` with only the parameters that ``influence_parameters`` names and its answer on
        ``example`` (a batch) uses left trainable, and those (an unused one has no curvature)."""
        patterns = config["influence_parameters"]
        named = [
            (name, parameter)
            for name, parameter in model.named_parameters()
            if parameter.requires_grad and (patterns is None or any(pattern in name for pattern in patterns))
        ]
        if not named:
            names = [name for name, _ in model.named_parameters()][:8]
            raise BadInput(
                f"influence_parameters {patterns} match no parameter of the model; its names include {names}."
            )
        batch = labeled_batches(model, [example], config["LABEL_FIELD"])
        with in_eval_mode(model):  # a probe: BatchNorm's statistics stay as they are
            loss = torch.nn.functional.cross_entropy(AnswerModel(model)(batch[0][0]), batch[0][1])
            gradients = torch.autograd.grad(loss, [parameter for _, parameter in named], allow_unused=True)
        used = {id(parameter) for (_, parameter), gradient in zip(named, gradients) if gradient is not None}
        for parameter in model.parameters():
            parameter.requires_grad_(id(parameter) in used)
        return model, [parameter for _, parameter in named if id(parameter) in used]

    @classmethod
    def run(cls, protocol, start):
        config = protocol.config
        model, parameters = cls.selected(config, copy.deepcopy(start), protocol.example)
        model.eval()
        batch_size, label = config["influence_batch_size"], config["LABEL_FIELD"]
        retain_rows, samples = protocol.retain_rows, config["influence_hessian_samples"]
        if samples and samples < len(retain_rows):
            generator = np.random.default_rng(config["seed"])
            retain_rows = np.sort(generator.choice(retain_rows, samples, replace=False))
        step = newton_step(
            model,
            parameters,
            labeled_batches(model, protocol.forget_loader(batch_size), label),
            labeled_batches(model, protocol.retained_loader(retain_rows, batch_size), label),
            len(protocol.retain_rows),
            config["influence_curvature"],
            config["influence_damping"],
            config["influence_cg_iterations"],
        )
        with torch.no_grad():
            for parameter, change in zip(parameters, step):
                parameter += config["influence_scale"] * change
        path = protocol.checkpoint_path(cls.name)
        metadata = {**protocol.provenance(method=cls.name), "model": type(model).__name__}
        save_checkpoint(model, path, metadata, trainable_only=True)
        protocol.files[cls.name] = path
        return model

    @classmethod
    def load(cls, protocol, start, paths):
        model, _ = cls.selected(protocol.config, copy.deepcopy(start), protocol.example)
        load_checkpoint(model, paths[0], protocol.config["device"], expect=protocol.provenance(method=cls.name))
        return model
