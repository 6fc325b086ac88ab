"""ADPIT (against a brute-force restatement of the baseline), Hungarian matching, activity objective, distillation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from av_seld.geometry import angular_distance_xyz_deg
from av_seld.io.labels import Events
from av_seld.losses import (DistillationLoss, MultiAccdoaLoss, adpit_loss, available_losses, build_loss,
                            hungarian_assignment, match_hungarian)
from av_seld.models import build_model, model_builder
from av_seld.targets import events_to_adpit, events_to_multi_accdoa


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_adpit(rng: np.random.Generator, batch: int, frames: int, classes: int) -> torch.Tensor:
    """ADPIT targets with 0-3 same-class events per frame and class, as events_to_adpit builds them."""
    out = np.zeros((batch, frames, 6, 4, classes), dtype=np.float32)
    for b in range(batch):
        rows = []
        for t in range(frames):
            for c in range(classes):
                for s in range(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])):
                    rows.append((t, c, s, rng.uniform(-180, 180), rng.uniform(-90, 90)))
        cols = list(zip(*rows)) if rows else [[]] * 5
        out[b] = events_to_adpit(Events.from_arrays(*cols), frames, num_classes=classes)
    return torch.from_numpy(out)


def _adpit_brute_force(output: torch.Tensor, target: torch.Tensor) -> float:
    """The baseline's MSELoss_ADPIT restated one frame and class at a time with its 13 written-out permutations."""
    total, count = 0.0, 0
    B, T, _, _, C = output.shape
    for b in range(B):
        for t in range(T):
            for c in range(C):
                dummy = [(target[b, t, i, 0, c] * target[b, t, i, 1:, c]).double() for i in range(6)]
                a0, b0, b1, c0, c1, c2 = dummy
                A, Bc, Cc = [a0, a0, a0], [b0, b0, b1], [c0, c1, c2]
                cands = [A] + [[x, y, z] for x, y, z in ((b0, b0, b1), (b0, b1, b0), (b0, b1, b1), (b1, b0, b0),
                                                         (b1, b0, b1), (b1, b1, b0))]
                cands += [[x, y, z] for x, y, z in ((c0, c1, c2), (c0, c2, c1), (c1, c0, c2), (c1, c2, c0),
                                                    (c2, c0, c1), (c2, c1, c0))]
                pads = [(Bc, Cc)] + [(A, Cc)] * 6 + [(A, Bc)] * 6
                losses = []
                for cand, (p1, p2) in zip(cands, pads):
                    tgt = torch.stack([cand[k] + p1[k] + p2[k] for k in range(3)])  # (3, 3)
                    losses.append(((output[b, t, :, :, c].double() - tgt) ** 2).mean().item())
                total += min(losses)
                count += 1
    return total / count


def test_adpit_equals_brute_force_on_random_tensors():
    rng = np.random.default_rng(0)
    target = _random_adpit(rng, 2, 6, 5)
    torch.manual_seed(0)
    output = torch.tanh(torch.randn(2, 6, 3, 3, 5))
    expected = _adpit_brute_force(output, target)
    assert adpit_loss(output, target).item() == pytest.approx(expected, rel=1e-5)
    assert build_loss("adpit")(output, target).item() == pytest.approx(expected, rel=1e-5)


def test_adpit_is_zero_for_the_canonical_permutation_and_any_reordering():
    rows = [(0, 0, 0, 30, 10), (1, 0, 0, 30, 10), (1, 0, 1, -100, 0), (2, 4, 0, 0, 0), (2, 4, 1, 90, 0),
            (2, 4, 2, 0, 90), (2, 7, 3, 170, -20)]
    events = Events.from_arrays(*zip(*rows))
    target = torch.from_numpy(events_to_adpit(events, 3))[None]
    canonical = torch.from_numpy(events_to_multi_accdoa(events, 3, duplicate=True))[None]
    assert adpit_loss(canonical, target).item() == pytest.approx(0, abs=1e-12)
    shuffled = canonical[:, :, [2, 0, 1]]
    # Frame 1 (two sources): (B1, B0, B0) is one of the permutations; frame 2: any order of C0 C1 C2 is.
    assert adpit_loss(shuffled, target).item() == pytest.approx(0, abs=1e-12)
    # The slot layout (second track empty for one source) is not a zero of ADPIT: duplicates are expected there.
    plain = torch.from_numpy(events_to_multi_accdoa(events, 3))[None]
    assert adpit_loss(plain, target).item() > 0


def test_hungarian_assignment_matches_scipy():
    torch.manual_seed(1)
    cost = torch.rand(500, 3, 3) * 180
    num_active = torch.randint(0, 4, (500,))
    active = torch.arange(3)[None] < num_active[:, None]
    track_of_ref = hungarian_assignment(cost, active)
    for i in range(500):
        n = int(num_active[i])
        assigned = track_of_ref[i, :n]
        assert len(set(track_of_ref[i].tolist())) == 3
        rows, cols = linear_sum_assignment(cost[i, :, :n].numpy())
        expected = cost[i, :, :n].numpy()[rows, cols].sum()
        got = cost[i, assigned, torch.arange(n)].sum().item()
        assert got == pytest.approx(expected, abs=1e-3)


def test_hungarian_puts_references_on_the_nearest_tracks_and_zeros_elsewhere():
    events = Events.from_arrays([0, 0], [2, 2], [0, 1], [0, 90], [0, 0])  # two clapping sources: front and left
    target = torch.from_numpy(events_to_adpit(events, 1))[None]
    output = torch.zeros(1, 1, 3, 3, 13)
    output[0, 0, 0, :, 2] = torch.tensor([0.1, 0.8, 0.0])  # track 0 points left
    output[0, 0, 1, :, 2] = torch.tensor([0.0, 0.0, 0.3])  # track 1 points up
    output[0, 0, 2, :, 2] = torch.tensor([0.7, 0.1, 0.0])  # track 2 points front
    matched = match_hungarian(output, target)
    torch.testing.assert_close(matched[0, 0, 0, :, 2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(matched[0, 0, 1, :, 2], torch.zeros(3))
    torch.testing.assert_close(matched[0, 0, 2, :, 2], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    assert matched[..., [c for c in range(13) if c != 2]].abs().sum() == 0
    # The assignment is the one of least total angular distance (what the metric does).
    cost = angular_distance_xyz_deg(output[0, 0, :, :, 2][:, None], matched[0, 0, [0, 2], :, 2][None])
    assert cost[0, 0] + cost[2, 1] < cost[2, 0] + cost[0, 1]


@pytest.mark.parametrize("name", available_losses())
def test_every_loss_is_finite_differentiable_and_zero_gradient_free(name):
    rng = np.random.default_rng(2)
    target = _random_adpit(rng, 2, 4, 13)
    output = torch.tanh(torch.randn(2, 4, 3, 3, 13)).requires_grad_(True)
    loss = build_loss(name)(output, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0


@pytest.mark.parametrize("matcher", ["adpit", "hungarian"])
def test_activity_objective_is_small_at_the_target_and_ignores_inactive_directions(matcher):
    events = Events.from_arrays([0, 1, 1], [3, 3, 6], [0, 0, 1], [40, -60, 120], [10, 0, -30])
    target = torch.from_numpy(events_to_adpit(events, 2))[None]
    perfect = torch.from_numpy(events_to_multi_accdoa(events, 2, duplicate=matcher == "adpit"))[None]
    loss = MultiAccdoaLoss(matcher, "activity", focal_gamma=2.0)
    at_target = loss(perfect, target).item()
    assert at_target < 1e-4
    wrong_direction = perfect.clone()
    wrong_direction[0, 0, :, :, 3] = -wrong_direction[0, 0, :, :, 3]
    # (Hungarian then prefers an empty track at 90° to the reversed one at 180°: activity and direction both pay.)
    assert loss(wrong_direction, target).item() > 0.3
    # A short vector pointing anywhere on an inactive track costs (almost) nothing in direction terms.
    inactive_noise = perfect.clone()
    inactive_noise[0, 0, :, :, 9] = torch.tensor([0.0, 0.01, 0.0])
    assert loss(inactive_noise, target).item() < 1e-3


def test_activity_objective_options_reach_the_objective():
    loss = build_loss("hungarian_activity", focal_gamma=0.5, activity_weight=3.0, direction_weight=0.25,
                      focal_alpha=0.75, logit_scale=4.0)
    objective = loss.objective
    assert (objective.focal_gamma, objective.activity_weight, objective.direction_weight) == (0.5, 3.0, 0.25)
    assert (objective.focal_alpha, objective.logit_scale) == (0.75, 4.0)
    with pytest.raises(KeyError):
        build_loss("nope")
    with pytest.raises(TypeError):
        build_loss("adpit", focal_gamma=1.0)


def test_probability_link_is_the_cross_entropy_of_the_gated_head_logit():
    """With ``activity_link="probability"`` the activity term is the plain BCE of the logit whose sigmoid is the
    length; the scaled link reads the same length through 10·(|v| − 0.5) instead."""
    events = Events.from_arrays([0, 1], [3, 6], [0, 0], [40, 120], [10, -30])
    target = torch.from_numpy(events_to_adpit(events, 2))[None]
    matched = torch.from_numpy(events_to_multi_accdoa(events, 2, duplicate=True))[None]
    logits = torch.randn(1, 2, 3, 1, 13)
    output = torch.sigmoid(logits) * torch.nn.functional.normalize(matched + 0.3, dim=3)
    loss = build_loss("adpit_activity", focal_gamma=0.0, direction_weight=0.0, activity_link="probability")
    active = (matched.norm(dim=3) > 0.5).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :, :, 0], active)
    torch.testing.assert_close(loss(output, target), expected, atol=1e-4, rtol=0)
    scaled = build_loss("adpit_activity", focal_gamma=0.0, direction_weight=0.0)
    assert abs(scaled(output, target).item() - expected.item()) > 1e-2
    with pytest.raises(ValueError, match="activity_link"):
        build_loss("adpit_activity", activity_link="identity")


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="ADPIT"):
        build_loss("adpit")(torch.zeros(1, 4, 3, 3, 13), torch.zeros(1, 5, 6, 4, 13))


def _tiny(name):
    return build_model(name, in_channels=7, **model_builder(name).tiny_config())


@pytest.mark.parametrize("weight_feature", [0.0, 0.5])
def test_distillation_trains_the_student_and_never_the_teacher(weight_feature):
    torch.manual_seed(0)
    teacher, student = _tiny("resnet_gru"), _tiny("resnet_conformer")
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn = DistillationLoss(build_loss("adpit"), teacher, weight_teacher=0.7, weight_feature=weight_feature,
                               student_dim=student.embed_dim)
    loss_fn.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    features = torch.randn(2, 7, 20, 64)
    target = _random_adpit(np.random.default_rng(3), 2, 4, 13)
    tokens = student.encode(features)
    output = student.head(tokens)
    terms = loss_fn.compute(output, target, features, student_tokens=tokens)
    expected = terms["student"] + 0.7 * terms["teacher"] + weight_feature * terms["feature"]
    torch.testing.assert_close(terms["total"], expected)
    assert terms["teacher"].item() > 0 and (terms["feature"].item() > 0) == (weight_feature > 0)
    terms["total"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    if weight_feature:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss_fn.projection.parameters())
        assert {id(p) for p in loss_fn.trainable_parameters()} == {id(p) for p in loss_fn.projection.parameters()}
    else:
        assert loss_fn.trainable_parameters() == []
    # Teacher BatchNorm statistics are untouched (eval mode), so its state is bit-identical.
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key], rtol=0, atol=0)


def _tiny_av(visual_seed=0):
    audio = dict(in_channels=7, widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1), dim=32, depth=1, heads=2, dropout=0.0)
    return build_model("av_conformer", audio_kwargs=audio, frame_size=(64, 128), token_grid=(2, 4), depth=1, heads=2,
                       dropout=0.0, visual_model="debug", visual_seed=visual_seed)


def test_an_audio_visual_teacher_reads_the_video_it_is_given():
    torch.manual_seed(0)
    teacher, student = _tiny_av().eval(), _tiny_av().eval()
    features = torch.randn(2, 7, 20, 64)
    frames = torch.rand(2, 4, 3, 64, 128)
    target = _random_adpit(np.random.default_rng(4), 2, 4, 13)
    loss_fn = DistillationLoss(build_loss("adpit"), teacher, weight_teacher=1.0)
    output = student(features, frames=frames)
    terms = loss_fn.compute(output, target, features, teacher_inputs={"frames": frames})
    with torch.no_grad():
        with_video, without = teacher(features, frames=frames), teacher(features)
    torch.testing.assert_close(terms["teacher"], torch.nn.functional.mse_loss(output, with_video))
    assert not torch.allclose(with_video, without)  # the video changes what the teacher says


def test_an_audio_visual_teacher_must_fit_the_student_and_its_cached_features():
    from av_seld.config import ConfigError
    from av_seld.training.objective import check_teacher_video

    teacher = _tiny_av()
    check_teacher_video(teacher, _tiny_av(), "t.pt", cached=True)  # same frozen encoder, own trained tokens
    with pytest.raises(ConfigError, match="t.pt: the teacher's frozen visual encoder differs"):
        check_teacher_video(teacher, _tiny_av(visual_seed=1), "t.pt", cached=True)
    check_teacher_video(teacher, _tiny_av(visual_seed=1), "t.pt", cached=False)  # live frames: its own encoder
    with pytest.raises(ConfigError, match="student reads no video"):
        check_teacher_video(teacher, _tiny("resnet_conformer"), "t.pt", cached=False)


def test_the_teacher_reads_features_standardised_with_its_own_statistics():
    from av_seld.config import ConfigError
    from av_seld.data.feature_cache import FeatureStats
    from av_seld.training.objective import teacher_standardisation

    rng = np.random.default_rng(5)
    raw = rng.normal(3.0, 2.0, size=(2, 7, 20, 64))
    teacher_mean, teacher_std = rng.normal(size=(7, 64)), rng.uniform(0.5, 2.0, size=(7, 64))
    student = FeatureStats("foa_logmel_iv", rng.normal(size=(7, 64)), rng.uniform(0.5, 2.0, size=(7, 64)), 100)
    payload = {"features": "foa_logmel_iv", "feature_mean": teacher_mean, "feature_std": teacher_std}
    scale, shift = teacher_standardisation(payload, student, "t.pt")
    as_student = (raw - student.mean[:, None]) / student.std[:, None]
    as_teacher = (raw - teacher_mean[:, None]) / teacher_std[:, None]
    np.testing.assert_allclose(as_student * scale[:, None] + shift[:, None], as_teacher, atol=1e-9)
    assert teacher_standardisation({"features": "foa_logmel_iv"}, student, "t.pt") is None
    assert teacher_standardisation(payload, None, "t.pt") is None
    with pytest.raises(ConfigError, match="t.pt reads mic_gcc features, the student foa_logmel_iv"):
        teacher_standardisation({**payload, "features": "mic_gcc"}, student, "t.pt")

    torch.manual_seed(0)
    teacher = _tiny("resnet_gru").eval()
    loss_fn = DistillationLoss(build_loss("adpit"), teacher, teacher_standardise=(scale, shift))
    features = torch.as_tensor(as_student, dtype=torch.float32)
    output = torch.zeros(2, 4, 3, 3, 13)
    terms = loss_fn.compute(output, _random_adpit(rng, 2, 4, 13), features)
    with torch.no_grad():
        expected = teacher(torch.as_tensor(as_teacher, dtype=torch.float32))
    torch.testing.assert_close(terms["teacher"], torch.nn.functional.mse_loss(output, expected), rtol=1e-4, atol=1e-6)


def test_class_weights_scale_each_class_activity_term():
    from av_seld.losses import ActivityDirectionObjective, class_balanced_weights

    weights = class_balanced_weights([100, 25, 0] + [100] * 10)
    assert abs(np.mean(weights) - 1) < 1e-9
    assert weights[1] > weights[0] and weights[2] == max(weights)  # rarer: heavier; absent: the largest
    torch.manual_seed(0)
    output = torch.rand(2, 4, 3, 3, 13) - 0.5
    matched = torch.zeros(2, 4, 3, 3, 13)
    matched[:, :, 0, 0, 3] = 1.0
    plain = ActivityDirectionObjective(direction_weight=0.0)
    only_three = [1e-6] * 13
    only_three[3] = 1.0
    weighted = ActivityDirectionObjective(direction_weight=0.0, class_weights=only_three)
    # all the weight on class 3: the loss is class 3's activity term, scaled by 13 (weights have mean 1)
    per_class = ActivityDirectionObjective(direction_weight=0.0, class_weights=[1.0] * 13)
    torch.testing.assert_close(per_class(output, matched), plain(output, matched))
    reference = ActivityDirectionObjective(direction_weight=0.0)(output[..., 3:4], matched[..., 3:4])
    torch.testing.assert_close(weighted(output, matched), reference, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        ActivityDirectionObjective(class_weights=[0.0] * 13)
