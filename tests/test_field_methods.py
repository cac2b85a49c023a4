"""NPO, SimNPO, SCRUB, Bad Teacher, the influence update and E2URec's official-code options: losses against hand
computations, SCRUB's schedule on a toy, the influence step on a convex model against an exact retrain."""

import json
import math

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model

from recbole_unlearn.model.answer import answer_log_likelihood, answer_logits, answer_sequence, answer_targets
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn.methods.bad_teacher import BadTeacher, untrained_model
from recbole_unlearn.unlearn.methods.influence import Influence, newton_step
from recbole_unlearn.unlearn.methods.npo import npo_loss
from recbole_unlearn.unlearn.methods.scrub import SCRUB
from recbole_unlearn.unlearn.methods.simnpo import simnpo_loss
from recbole_unlearn.unlearn.unlearn_trainer import PairedBatches

from conftest import inside, rows_by_method, small_config, tiny_unlearn_config


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def built(model, **overrides):
    config = small_config(model, **overrides)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return config, get_model(model)(config, train_data._dataset), train_data


def test_npo_loss_matches_a_hand_computation():
    log_likelihood, reference = torch.tensor([-0.5, -2.0]), torch.tensor([-1.0, -1.0])
    # log ratios 0.5 and -1.0; beta 0.1.
    expected = -(2 / 0.1) * (log_sigmoid(-0.05) + log_sigmoid(0.1)) / 2
    assert npo_loss(log_likelihood, reference, beta=0.1).item() == pytest.approx(expected, rel=1e-6)


def test_simnpo_loss_matches_a_hand_computation():
    log_likelihood, length = torch.tensor([-0.9, -3.0]), torch.tensor([3, 1])
    # Per-token NLL 0.3 and 3.0; beta 4.5, delta 0.2.
    expected = -(2 / 4.5) * (log_sigmoid(4.5 * 0.1) + log_sigmoid(4.5 * 2.8)) / 2
    assert simnpo_loss(log_likelihood, length, beta=4.5, delta=0.2).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("model", ["LLMRec", "DeepFM"])
def test_answer_log_likelihood_sums_the_training_loss_over_the_answer_tokens(workdir, model):
    config, recommender, train_data = built(model)
    batch = next(iter(train_data))
    recommender.eval()  # DeepFM's dropout would make the two passes differ
    log_likelihood, length = answer_log_likelihood(recommender, batch, config["LABEL_FIELD"])
    # Both models' training loss is the mean cross-entropy over every answer token of the batch.
    mean_loss = (-log_likelihood.sum() / length.sum()).item()
    assert mean_loss == pytest.approx(recommender.calculate_loss(batch).item(), rel=1e-5)
    assert length.tolist() == ([3] * len(batch) if model == "LLMRec" else [1] * len(batch))


def test_the_first_answer_position_is_the_answer_distribution(workdir):
    config, recommender, train_data = built("LLMRec")
    batch = next(iter(train_data))
    recommender.eval()
    with torch.no_grad():
        logits, targets = answer_sequence(recommender, batch, config["LABEL_FIELD"])
        assert torch.allclose(logits[:, 0], answer_logits(recommender, batch), atol=1e-5)
    assert torch.equal(targets[:, 0], answer_targets(recommender, batch, config["LABEL_FIELD"]))


def test_paired_batches_take_a_fraction_and_retain_only_epochs_cycle_the_retain_data():
    forget, retain = ["f0", "f1", "f2", "f3"], ["r0", "r1", "r2"]
    assert [tuple(pair) for pair in PairedBatches(forget, retain, fraction=0.5)] == [("f0", "r0"), ("f1", "r1")]
    retain_only = [tuple(pair) for pair in PairedBatches(forget, retain, retain_only=True)]
    assert retain_only == [(None, "r0"), (None, "r1"), (None, "r2"), (None, "r0")]
    with pytest.raises(ValueError, match="The retain data has no batch"):
        list(PairedBatches(forget, []))


def test_scrub_alternates_max_and_min_epochs_and_their_losses_pull_apart(workdir):
    config, recommender, train_data = built("DeepFM", scrub_epochs=3, scrub_msteps=2, train_batch_size=256)
    scrub = SCRUB(config, recommender)
    batches = list(train_data)
    forget, retain = batches[:2], batches[2:5]
    scrub.prepare(train_data, None)
    phases = [
        "max" if all(pair.retain is None for pair in epoch) else "min" for epoch in scrub.schedule(forget, retain)
    ]
    assert phases == ["max", "min", "max", "min", "min"]
    # The student starts as the teacher: a max-step's loss (-KL) is 0 (eval mode: DeepFM's dropout would
    # make them differ at once). From a perturbed student, max-steps push the KL up.
    scrub.model.eval()
    max_pair, min_pair = next(iter(PairedBatches(forget))), next(iter(PairedBatches(forget, retain, retain_only=True)))
    assert scrub.compute_loss(max_pair).item() == pytest.approx(0, abs=1e-7)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in scrub.model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    perturbed = scrub.compute_loss(max_pair).item()
    optimizer = torch.optim.SGD(scrub.model.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        scrub.compute_loss(max_pair).backward()
        optimizer.step()
    assert scrub.compute_loss(max_pair).item() < perturbed < 0
    # A min-step's loss is alpha * KL + gamma * CE of the retain batch.
    student = answer_logits(scrub.model, min_pair.retain)
    cross_entropy = torch.nn.functional.cross_entropy(student, answer_targets(scrub.model, min_pair.retain, "label"))
    distance = scrub.distance_to_teacher(min_pair.retain)[1].item()
    expected = 0.001 * distance + 0.99 * cross_entropy.item()
    assert scrub.compute_loss(min_pair).item() == pytest.approx(expected, rel=1e-5)


def test_bad_teachers_incompetent_teacher_is_the_untrained_model_and_the_loss_weighs_both_teachers_by_rows(workdir):
    config, recommender, train_data = built("DeepFM", train_batch_size=64)
    with torch.no_grad():  # stands for training: the Original differs from an untrained model
        for parameter in recommender.parameters():
            parameter.add_(0.1)
    bad_teacher = BadTeacher(config, recommender)
    batches = list(train_data)
    forget, retain = batches[:1], batches[1:3]
    state = torch.random.get_rng_state()
    bad_teacher.prepare(None, train_data)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(config["seed"])
    untrained = get_model("DeepFM")(config, train_data._dataset)
    for (name, parameter), (_, expected) in zip(
        bad_teacher.incompetent.named_parameters(), untrained.named_parameters()
    ):
        assert torch.equal(parameter, expected), name
        assert not parameter.requires_grad
    # The student starts as the Original (the competent teacher): the retain term is 0 and the loss is the
    # forget rows' share of KL(untrained || Original) on the forget batch.
    bad_teacher.model.eval()
    pair = next(iter(PairedBatches(forget, retain)))
    with torch.no_grad():
        teacher = torch.log_softmax(answer_logits(untrained.eval(), pair.forget), dim=-1)
        student = torch.log_softmax(answer_logits(recommender, pair.forget), dim=-1)
    kl = (teacher.exp() * (teacher - student)).sum(dim=-1).mean().item()
    share = len(pair.forget) / (len(pair.forget) + len(pair.retain))
    assert bad_teacher.compute_loss(pair).item() == pytest.approx(share * kl, rel=1e-5)
    assert kl > 0


def test_bad_teachers_incompetent_graph_model_is_built_on_the_retained_graph(workdir):
    config, _, train_data = built("LightGCN")
    retained = train_data._dataset.copy(train_data._dataset.inter_feat[: len(train_data._dataset) // 2])
    incompetent = untrained_model(config, retained)
    assert incompetent.interaction_matrix.nnz == len(retained)


def fit(model, parameters, inputs, targets, retained, weight_decay):
    """The exact minimiser of sum_retained CE / |retained| + weight_decay / 2 * |theta|^2 (full-batch L-BFGS)."""
    optimizer = torch.optim.LBFGS(parameters, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14)
    count = int(retained.sum())

    def objective():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(answer_logits(model, inputs), targets, reduction="none")
        loss = losses[retained].sum() / count + weight_decay / 2 * sum((p**2).sum() for p in parameters)
        loss.backward()
        return loss

    for _ in range(5):
        optimizer.step(objective)
    return torch.cat([p.detach().flatten().clone() for p in parameters])


def test_influence_step_on_logistic_regression_lands_near_the_exact_retrain(workdir):
    config, model, train_data = built("LR", train_batch_size=100_000)
    inputs = next(iter(train_data))  # the whole training split in one batch, with user and item features
    targets = answer_targets(model, inputs, "label")
    users = inputs["user_id"]
    forget = torch.isin(users, users.unique()[:10])
    damping = 0.01
    model, parameters = Influence.selected({"influence_parameters": None, "LABEL_FIELD": "label"}, model, inputs)
    start = [p.detach().clone() for p in parameters]
    # The Original minimises sum_all CE / |retain| + damping / 2 * |theta|^2, the objective whose one
    # Newton step without the forget samples the update takes: as a mean over all, a smaller weight decay.
    everything = torch.ones_like(forget)
    original = fit(model, parameters, inputs, targets, everything, damping * int((~forget).sum()) / len(forget))
    with torch.no_grad():
        for p, value in zip(parameters, original.split([p.numel() for p in parameters])):
            p.copy_(value.view_as(p))
    step = newton_step(
        model,
        parameters,
        [({"interaction": inputs[forget]}, targets[forget])],
        [({"interaction": inputs[~forget]}, targets[~forget])],
        int((~forget).sum()),
        "hessian",
        damping,
        200,
    )
    influenced = original + torch.cat([s.flatten() for s in step])
    with torch.no_grad():
        for p, value in zip(parameters, start):
            p.copy_(value)
    retrained = fit(model, parameters, inputs, targets, ~forget, damping)
    assert (influenced - retrained).norm() < 0.1 * (original - retrained).norm()


@pytest.mark.slow
def test_e2urec_with_the_official_codes_options_runs_end_to_end(tmp_path):
    # Every method's default run on LLMRec is test_unlearn's; here E2URec over every answer position.
    config = tiny_unlearn_config(
        tmp_path / "out", unlearn_method="e2urec", e2urec_paired_fraction=0.23, e2urec_answer_positions="all"
    )
    with inside(tmp_path):
        result = unlearn_one("LLMRec", "ml-100k", config_dict=config)
    assert list(rows_by_method(result)) == ["original", "retrain", "e2urec"]
    with open(f"{result['run_dir']}/receipt-e2urec.json") as f:
        receipt = json.load(f)
    text = json.dumps(receipt)
    assert '"e2urec_answer_positions": "all"' in text and '"e2urec_paired_fraction": 0.23' in text


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"unlearn_method": "e2urec", "e2urec_answer_positions": "last"}, r"e2urec_answer_positions is 'last'"),
        ({"unlearn_method": "e2urec", "e2urec_paired_fraction": 0}, r"e2urec_paired_fraction must be in \(0, 1\]"),
        ({"unlearn_method": "influence", "influence_curvature": "fisher"}, r"influence_curvature is 'fisher'"),
        ({"unlearn_method": "influence", "influence_parameters": ["nope"]}, r"influence_parameters \['nope'\] match"),
    ],
)
def test_bad_options_of_the_new_methods_fail_naming_their_key(tmp_path, overrides, message):
    with inside(tmp_path), pytest.raises(ValueError, match=message):
        unlearn_one("DeepFM", "ml-100k", config_dict=tiny_unlearn_config(tmp_path / "out", **overrides))
    assert not (tmp_path / "out" / "cache").exists()
