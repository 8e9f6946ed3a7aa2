"""Models of the symmetry-invariance study: Deep Sets, DGCNN, the circular ResNet-18, the MLP on sets.

Each invariance is checked where the architecture promises it exactly, and shown to fail where it
does not (so that the invariance tests can fail)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from kdtune.train.data.base import DataInfo
from kdtune.train.models import build_model, check_model, example_inputs
from kdtune.train.models.dgcnn import EdgeConv, knn, neighbours

POINTS = DataInfo("points", (12, 3), 4)
SET = DataInfo("set", (10, 5), 3)
DIGITS = DataInfo("image", (1, 12, 12), 10)
MNIST = DataInfo("image", (1, 28, 28), 10)

SMALL: dict[str, dict[str, Any]] = {
    "deepsets_inv": {"width": 16, "phi_layers": 2},
    "deepsets_equiv": {"width": 16, "layers": 2},
    "dgcnn": {"width": 4, "k": 4},
    "dgcnn_inv": {"width": 4, "k": 4, "translation_invariant": True},
    "dgcnn_small": {"width": 4, "k": 4, "edge_convs": 2, "translation_invariant": True},
    "resnet18": {"width": 4},
    "resnet18_s1": {"width": 4, "strides": [1, 1, 1, 1]},
    "mlp": {"hidden": [32, 32]},
}
CASES = [
    ("deepsets_inv", POINTS),
    ("deepsets_inv", SET),
    ("deepsets_equiv", POINTS),
    ("deepsets_equiv", SET),
    ("dgcnn", POINTS),
    ("dgcnn_inv", POINTS),
    ("dgcnn_small", SET),
    ("resnet18", DIGITS),
    ("resnet18", MNIST),
    ("resnet18_s1", DIGITS),
    ("mlp", POINTS),
    ("mlp", SET),
]


def arch(name: str) -> str:
    return {"dgcnn_inv": "dgcnn", "dgcnn_small": "dgcnn", "resnet18_s1": "resnet18"}.get(name, name)


def model(name: str, info: DataInfo, dropout: float = 0.0, **extra: Any) -> nn.Module:
    torch.manual_seed(0)
    return build_model(arch(name), info, dropout, {**SMALL[name], **extra}).eval()


def batch(info: DataInfo, n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *info.input_shape, generator=torch.Generator().manual_seed(seed))


def permuted(x: torch.Tensor, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(seed))
    assert not torch.equal(perm, torch.arange(len(perm)))
    return x[:, perm], perm


@pytest.mark.parametrize(("name", "info"), CASES)
def test_shapes_and_check_model(name: str, info: DataInfo) -> None:
    check_model(arch(name), info, SMALL[name])  # an all-zero batch: for dgcnn every kNN distance ties
    logits, features = model(name, info)(batch(info))
    assert logits.shape == (6, info.num_classes)
    assert features.ndim == 2 and features.shape[0] == 6
    zero_logits, _ = model(name, info)(example_inputs(info))
    assert torch.isfinite(zero_logits).all()


@pytest.mark.parametrize("pool", ["sum", "mean", "max"])
def test_deepsets_inv_is_permutation_invariant(pool: str) -> None:
    net = model("deepsets_inv", SET, pool=pool)
    x = batch(SET)
    xp, _ = permuted(x)
    with torch.no_grad():
        assert torch.allclose(net(xp)[0], net(x)[0], atol=1e-5)
        # the same model on an input whose elements are changed (not permuted) is not constant
        assert (net(x.flip(0))[0] - net(x)[0]).abs().max() > 1e-3


def test_perm_equivariant_layer_is_lambda_x_plus_gamma_pool() -> None:
    net = model("deepsets_equiv", SET, pool="mean")
    layer = net.layers[0][0]
    x = batch(SET)
    expected = x @ layer.lam.weight.T + layer.lam.bias + (x.mean(dim=1) @ layer.gamma.weight.T)[:, None, :]
    assert torch.allclose(layer(x), expected, atol=1e-6)


@pytest.mark.parametrize("pool", ["sum", "mean", "max"])
def test_deepsets_equiv_layers_equivariant_and_output_invariant(pool: str) -> None:
    net = model("deepsets_equiv", POINTS, pool=pool)
    x = batch(POINTS)
    xp, perm = permuted(x)
    with torch.no_grad():
        h, hp = net.equivariant(x), net.equivariant(xp)
        assert torch.allclose(hp, h[:, perm], atol=1e-5)
        assert not torch.allclose(hp, h, atol=1e-3)  # the per-element outputs do move with the input
        assert torch.allclose(net(xp)[0], net(x)[0], atol=1e-5)


def test_knn_matches_brute_force_and_excludes_self() -> None:
    h = batch(POINTS)
    idx = knn(h.transpose(1, 2), 4)
    dist = torch.cdist(h, h) + torch.eye(12) * 1e9
    expected = dist.topk(4, dim=-1, largest=False).indices
    assert torch.equal(idx.sort(-1).values, expected.sort(-1).values)
    assert not (idx == torch.arange(12)[None, :, None]).any()
    nb = neighbours(h.transpose(1, 2), idx)  # (B, C, P, k)
    b, i, j = 3, 7, 2
    assert torch.equal(nb[b, :, i, j], h[b, idx[b, i, j]])


def test_edgeconv_is_the_papers_edge_function() -> None:
    """max_j LeakyReLU(BN(W·[x_i, x_j − x_i])) over the k nearest neighbours, computed edge by edge."""
    conv = EdgeConv(3, 5, k=4).eval()
    nn.init.normal_(conv.norm.running_mean)
    x = batch(POINTS)  # (B, P, 3)
    idx = knn(x.transpose(1, 2), 4)
    nb = x[torch.arange(6)[:, None, None], idx]  # (B, P, k, 3)
    centre = x.unsqueeze(2).expand_as(nb)
    edge = torch.cat([centre, nb - centre], dim=-1) @ conv.linear.weight.T  # (B, P, k, 5)
    expected = nn.functional.leaky_relu(conv.norm(edge.permute(0, 3, 1, 2)), 0.2).amax(dim=-1)
    with torch.no_grad():
        assert torch.allclose(conv(x.transpose(1, 2)), expected, atol=1e-5)


def test_knn_on_a_degenerate_cloud() -> None:
    """All points equal (check_model's zero batch): every distance ties, and the graph is still
    k distinct other points per point."""
    idx = knn(torch.zeros(2, 3, 5), 4)
    assert idx.shape == (2, 5, 4)
    assert torch.equal(idx.sort(-1).values[0, 0], torch.tensor([1, 2, 3, 4]))
    assert not (idx == torch.arange(5)[None, :, None]).any()


def translated(x: torch.Tensor, seed: int = 3, scale: float = 2.0) -> torch.Tensor:
    shift = scale * torch.randn(x.shape[0], 1, x.shape[2], generator=torch.Generator().manual_seed(seed))
    return x + shift


@pytest.mark.parametrize("name", ["dgcnn_inv", "dgcnn_small"])
def test_dgcnn_translation_invariant_variant(name: str) -> None:
    net = model(name, POINTS)
    x = batch(POINTS)
    with torch.no_grad():
        out = net(x)[0]
        assert torch.allclose(net(translated(x))[0], out, atol=1e-5)
        assert torch.allclose(net(permuted(x)[0])[0], out, atol=1e-5)


def test_dgcnn_default_is_permutation_but_not_translation_invariant() -> None:
    net = model("dgcnn", POINTS)
    x = batch(POINTS)
    with torch.no_grad():
        out = net(x)[0]
        assert torch.allclose(net(permuted(x)[0])[0], out, atol=1e-5)
        assert (net(translated(x))[0] - out).abs().max() > 1e-2


def test_dgcnn_k_is_clamped_and_layers_follow_the_paper() -> None:
    net = build_model("dgcnn", DataInfo("points", (5, 3), 2), 0.0, {"k": 20})
    assert [conv.k for conv in net.convs] == [4, 4, 4, 4]
    assert [conv.linear.out_features for conv in net.convs] == [64, 64, 128, 256]
    assert net.embed[0].out_channels == 1024
    small = build_model("dgcnn", POINTS, 0.0, {"edge_convs": 2, "translation_invariant": True})
    assert [conv.linear.in_features for conv in small.convs] == [3, 128]  # x_j − x_i only, then (x_i, x_j − x_i)


def test_resnet18_stride1_is_invariant_to_circular_shifts() -> None:
    net = model("resnet18_s1", DIGITS)
    x = batch(DIGITS)
    with torch.no_grad():
        out = net(x)[0]
        for shift in [(1, 0), (0, 5), (3, -4)]:
            assert torch.allclose(net(x.roll(shift, dims=(2, 3)))[0], out, atol=1e-5)
        # a zero-filled translation moves content off the edge: not a symmetry of the model
        moved = torch.zeros_like(x)
        moved[..., 2:, :] = x[..., :-2, :]
        assert (net(moved)[0] - out).abs().max() > 1e-3


def test_resnet18_strided_invariance_only_to_multiples_of_the_total_stride() -> None:
    info = DataInfo("image", (1, 16, 16), 10)  # 16 → 16 → 8 → 4 → 2: every stride divides its input
    net = model("resnet18", info)
    x = batch(info)
    with torch.no_grad():
        out = net(x)[0]
        assert torch.allclose(net(x.roll((8, -8), dims=(2, 3)))[0], out, atol=1e-5)
        assert (net(x.roll(1, dims=3))[0] - out).abs().max() > 1e-3


def test_resnet18_layout() -> None:
    net = build_model("resnet18", MNIST, 0.0, {"width": 16})
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.padding_mode == "circular" for c in convs)
    assert len([c for c in convs if c.kernel_size == (3, 3)]) == 17  # stem + 8 blocks × 2: ResNet-18
    assert net.stem[0].stride == (1, 1) and not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert net.out.in_features == 128


@pytest.mark.parametrize(("name", "info"), CASES)
def test_trains_a_few_steps(name: str, info: DataInfo) -> None:
    net = model(name, info, dropout=0.1).train()
    x, y = batch(info, n=8), torch.arange(8) % info.num_classes
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(net(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("name", "info"), CASES)
def test_vmap_over_stacked_models_matches_each_model(name: str, info: DataInfo) -> None:
    copies = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        copies.append(build_model(arch(name), info, 0.1, SMALL[name]).eval())
    params, buffers = stack_module_state(copies)
    base = copies[0]
    x = batch(info)

    def run(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (inputs,))[0]

    with torch.no_grad():
        stacked = vmap(run, in_dims=(0, 0, None))(params, buffers, x)
        for i, net in enumerate(copies):
            assert torch.allclose(stacked[i], net(x)[0], atol=1e-5)
    assert not torch.allclose(stacked[0], stacked[1], atol=1e-3)  # two different models


@pytest.mark.parametrize(
    ("name", "info"),
    [("deepsets_inv", SET), ("deepsets_equiv", POINTS), ("dgcnn_inv", POINTS), ("resnet18", DIGITS), ("mlp", SET)],
)
def test_vmap_training_step_matches_each_model(name: str, info: DataInfo) -> None:
    """In training mode (batch statistics, running-stat updates) the stacked models' gradients and
    updated buffers are those of each model trained alone."""
    copies = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        copies.append(build_model(arch(name), info, 0.0, SMALL[name]).train())
    params, buffers = stack_module_state(copies)
    base = copies[0]
    x, y = batch(info), torch.arange(6) % info.num_classes

    def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(base, (p, b), (inputs,))[0], y)

    grads = vmap(torch.func.grad(loss), in_dims=(0, 0, None), randomness="different")(params, buffers, x)
    for i, net in enumerate(copies):
        nn.functional.cross_entropy(net(x)[0], y).backward()
        for key, value in net.named_parameters():
            assert torch.allclose(grads[key][i], value.grad, atol=1e-5), key
        for key, value in net.named_buffers():
            assert torch.allclose(buffers[key][i].to(value.dtype), value, atol=1e-6), key


@pytest.mark.parametrize(
    ("name", "info", "params", "message"),
    [
        ("deepsets_inv", SET, {"pool": "median"}, "pool 'median' is not one of 'sum', 'mean', 'max'"),
        ("deepsets_equiv", SET, {"layers": 0}, "layers must be an integer >= 1, got 0"),
        ("dgcnn", DataInfo("points", (1, 3), 2), {}, "points >= 2"),
        ("dgcnn", POINTS, {"k": 0}, "k must be an integer >= 1, got 0"),
        ("dgcnn", POINTS, {"head_layers": 5}, "head_layers must be an integer from 0 to 4, got 5"),
        ("resnet18", DIGITS, {"strides": [1, 2]}, "strides must list 4 positive integers"),
    ],
)
def test_bad_parameters_name_the_problem(name: str, info: DataInfo, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_model(name, info, 0.0, params)


def test_kinds() -> None:
    with pytest.raises(ValueError, match="model 'dgcnn' serves classification on points/set inputs"):
        build_model("dgcnn", DIGITS)
    with pytest.raises(ValueError, match="model 'resnet18' serves classification on image inputs"):
        build_model("resnet18", POINTS)
