"""TimeFC (shapes, config round trip, the reference parameter count), the time embedding, and the whole-body
combination (CombinedPrior) and fused correction (FusedPrior) over the part networks."""
import pytest
import torch

from dposerx_blender.core.layout import MODEL_DIM, MODEL_SLICES
from dposerx_blender.core.network import (MASK_PARTS, PART_DIMS, CombinedPrior, FusedPrior, MaskedTimeFC, TimeFC,
                                          part_mask_to_dims, part_network, timestep_embedding)

HIDDEN, EMBED = 256, 32  # GroupNorm(32) needs hidden % 32 == 0; 8 channels per group keeps it well conditioned


def part_nets(seed: int = 0, hidden: int = HIDDEN) -> dict[str, TimeFC]:
    torch.manual_seed(seed)
    return {name: TimeFC(dim, hidden, EMBED).eval() for name, dim in PART_DIMS.items()}


def inputs(batch: int = 5, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, MODEL_DIM, generator=generator), torch.rand(batch, generator=generator)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("dim, out_dim", [(63, None), (45, None), (9, None), (20, 7)])
def test_timefc_output_shape(dim, out_dim):
    net = TimeFC(dim, 64, 32, blocks=1, out_dim=out_dim).eval()
    out = net(torch.randn(3, dim), torch.rand(3))
    assert out.shape == (3, dim if out_dim is None else out_dim)
    assert net.out_dim == (dim if out_dim is None else out_dim)


def test_timefc_config_round_trip():
    net = TimeFC(45, 64, 32, blocks=3, dropout=0.2, out_dim=11).eval()
    config = net.config()
    assert config == {"dim": 45, "hidden": 64, "embed": 32, "blocks": 3, "dropout": 0.2, "out_dim": 11}
    copy = TimeFC(**config)
    copy.load_state_dict(net.state_dict())  # strict: same parameter names and shapes
    copy.eval()
    x, t = torch.randn(4, 45), torch.rand(4)
    assert torch.equal(copy(x, t), net(x, t))


@pytest.mark.parametrize("dim, expected", [(63, 7_227_967), (45, 7_191_085)])
def test_parameter_count_matches_the_reference_timefc(dim, expected):
    """Digest sec. 2.1: the effective body TimeFC (1024/512, 2 blocks) has 7,227,967 parameters, the hand one
    7,191,085 (the paper's 8.28M includes v1's unused pre_dense_cond Linear(1024, 1024), which we omit)."""
    assert n_params(TimeFC(dim, 1024, 512, 2)) == expected


def test_parameter_count_of_the_fused_correction():
    """Digest sec. 2.2: MaskFC 4,008,448 + zero linear 65,792 trainable parameters for the 256-D reference
    vector (4096 -> 512, 2 blocks, embed 256). Ours is over the 162-D model vector, so the output layer and the
    zero linear shrink: 4,008,448 - 512 * (256 - 162) - (256 - 162), and 162 * 163."""
    combined = CombinedPrior({name: TimeFC(dim, 1024, 512) for name, dim in PART_DIMS.items()})
    fused = FusedPrior(combined, 512, 256, 2)
    assert n_params(fused.correction) == 4_008_448 - 513 * (256 - 162)
    assert n_params(fused.zero_linear) == 162 * 163
    trainable = sum(p.numel() for p in fused.parameters() if p.requires_grad)
    assert trainable == n_params(fused.correction) + n_params(fused.zero_linear)


def test_timestep_embedding():
    t = torch.tensor([0.0, 1.0, 2.0, 500.0, 999.0])
    emb = timestep_embedding(t, 32)
    assert emb.shape == (5, 32)
    torch.testing.assert_close(emb[0], torch.cat([torch.zeros(16), torch.ones(16)]))  # [sin 0, cos 0]
    torch.testing.assert_close(emb[:, :16] ** 2 + emb[:, 16:] ** 2, torch.ones(5, 16))
    assert torch.cdist(emb, emb)[~torch.eye(5, dtype=torch.bool)].min() > 1e-2  # all distinct
    # The network's time labels: nearby continuous t (999 t) still give different embeddings.
    near = timestep_embedding(999 * torch.tensor([0.05, 0.051]), 512)
    assert (near[0] - near[1]).abs().max() > 1e-2


def test_different_t_give_different_outputs():
    net = TimeFC(63, 64, 32).eval()
    x = torch.randn(1, 63).expand(2, 63)
    out = net(x, torch.tensor([0.1, 0.5]))
    assert not torch.allclose(out[0], out[1])


def test_dropout_only_in_training_mode():
    net = TimeFC(9, 64, 32, dropout=0.5)
    x, t = torch.randn(4, 9), torch.rand(4)
    net.eval()
    assert torch.equal(net(x, t), net(x, t))
    net.train()
    assert not torch.equal(net(x, t), net(x, t))


def _slice_by_slice(parts, x, t):
    s = MODEL_SLICES
    return torch.cat([parts["body"](x[:, s["body"]], t), parts["hand"](x[:, s["left_hand"]], t),
                      parts["hand"](x[:, s["right_hand"]], t),
                      parts["face"](torch.cat([x[:, s["jaw"]], x[:, s["eyes"]]], 1), t)], 1)


@torch.no_grad()
def test_combined_prior_is_the_part_nets_slice_by_slice():
    parts = part_nets()
    combined = CombinedPrior(parts).eval()
    x, t = inputs()
    out = combined(x, t)
    assert out.shape == (5, MODEL_DIM)
    s = MODEL_SLICES
    # Body and face: the same calls, bit for bit.
    assert torch.equal(out[:, s["body"]], parts["body"](x[:, s["body"]], t))
    face = parts["face"](torch.cat([x[:, s["jaw"]], x[:, s["eyes"]]], 1), t)
    assert torch.equal(out[:, s["jaw"]], face[:, :3]) and torch.equal(out[:, s["eyes"]], face[:, 3:])
    # Hands: one batched call for both hands. Bit-exact against the same batched call...
    hands = parts["hand"](torch.cat([x[:, s["left_hand"]], x[:, s["right_hand"]]]), t.repeat(2))
    assert torch.equal(out[:, s["left_hand"]], hands[:5]) and torch.equal(out[:, s["right_hand"]], hands[5:])
    # ...and equal up to float32 matmul blocking (batch 2B vs B) against separate per-hand calls.
    torch.testing.assert_close(out, _slice_by_slice(parts, x, t), rtol=0, atol=1e-5)


@torch.no_grad()
def test_combined_prior_hands_are_independent_of_each_other():
    combined = CombinedPrior(part_nets()).eval()
    x, t = inputs()
    y = x.clone()
    y[:, MODEL_SLICES["left_hand"]] += 1.0
    a, b = combined(x, t), combined(y, t)
    for name in ("body", "right_hand", "jaw", "eyes"):
        torch.testing.assert_close(a[:, MODEL_SLICES[name]], b[:, MODEL_SLICES[name]], rtol=0, atol=1e-5)
    assert not torch.allclose(a[:, MODEL_SLICES["left_hand"]], b[:, MODEL_SLICES["left_hand"]])


def test_combined_prior_has_no_parameters_of_its_own():
    parts = part_nets()
    assert n_params(CombinedPrior(parts)) == sum(n_params(p) for p in parts.values())


def fused_prior(perturb: bool) -> FusedPrior:
    fused = FusedPrior(CombinedPrior(part_nets(hidden=64)), hidden=64, embed=32).eval()
    if perturb:  # make the correction visible in the output
        with torch.no_grad():
            fused.zero_linear.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
            fused.zero_linear.bias.normal_(0, 0.1, generator=torch.Generator().manual_seed(4))
    return fused


@torch.no_grad()
def test_fused_prior_starts_as_the_combination():
    fused = fused_prior(perturb=False)
    x, t = inputs()
    assert torch.equal(fused(x, t), fused.combined(x, t))
    assert torch.equal(fused(x, t, torch.ones(5, 4)), fused.combined(x, t))


@torch.no_grad()
def test_fused_prior_part_mask_zeroes_masked_inputs():
    fused = fused_prior(perturb=True)
    x, t = inputs(batch=4)
    part_mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
    zeroed = x * part_mask_to_dims(part_mask)
    masked_out = fused(x, t, part_mask)
    assert torch.equal(masked_out, fused(zeroed, t))
    # The masked parts' values do not matter at all...
    other = x + 5.0 * (1 - part_mask_to_dims(part_mask))
    assert torch.equal(fused(other, t, part_mask), masked_out)
    # ...and the mask does change the output (row 0 is fully present, so it is unchanged).
    full = fused(x, t)
    assert torch.equal(full[0], masked_out[0])
    assert not torch.allclose(full[1:], masked_out[1:])
    # A bool mask works as well.
    assert torch.equal(fused(x, t, part_mask.bool()), masked_out)


def test_fused_prior_trains_only_the_correction():
    fused = fused_prior(perturb=True)
    fused.train()
    assert all(not p.requires_grad for p in fused.combined.parameters())
    assert all(p.requires_grad for p in fused.correction.parameters())
    assert all(p.requires_grad for p in fused.zero_linear.parameters())
    x, t = inputs()
    fused(x, t).square().sum().backward()
    assert all(p.grad is None for p in fused.combined.parameters())
    assert all(p.grad is not None for p in fused.correction.parameters())
    assert fused.zero_linear.weight.grad.abs().sum() > 0
    assert fused.correction.input.weight.grad.abs().sum() > 0


def test_fused_prior_zero_linear_gets_gradient_at_init():
    """At init the correction's own gradient is zero (behind the zero linear), the zero linear's is not."""
    fused = fused_prior(perturb=False).train()
    x, t = inputs()
    fused(x, t).square().sum().backward()
    assert fused.zero_linear.weight.grad.abs().sum() > 0
    assert fused.correction.output.weight.grad.abs().sum() == 0


def test_part_mask_to_dims():
    expected = {"body": range(0, 63), "left_hand": range(63, 108), "right_hand": range(108, 153),
                "face": range(153, 162)}
    assert tuple(MASK_PARTS) == tuple(expected)
    dims = part_mask_to_dims(torch.eye(4))
    assert dims.shape == (4, MODEL_DIM) and dims.dtype == torch.float32
    for k, name in enumerate(expected):
        assert torch.nonzero(dims[k]).flatten().tolist() == list(expected[name])
    assert torch.equal(dims.sum(0), torch.ones(MODEL_DIM))  # the four parts tile all 162 dims
    # Face = jaw + eyes, per the model-vector layout.
    assert list(expected["face"]) == (list(range(MODEL_SLICES["jaw"].start, MODEL_SLICES["jaw"].stop))
                                      + list(range(MODEL_SLICES["eyes"].start, MODEL_SLICES["eyes"].stop)))
    mixed = part_mask_to_dims(torch.tensor([[True, False, True, False]]))
    assert mixed.dtype == torch.bool and mixed[0, :63].all() and not mixed[0, 63:108].any()
    assert mixed[0, 108:153].all() and not mixed[0, 153:].any()


def test_masked_timefc_config_round_trip_and_part_network():
    net = MaskedTimeFC(63, 64, 32, blocks=1).eval()
    config = net.config()
    assert config["dim"] == 63 and config["out_dim"] == 63 and config["masked"] is True
    copy = part_network(config)
    assert isinstance(copy, MaskedTimeFC)
    copy.load_state_dict(net.state_dict())
    copy.eval()
    x, t = torch.randn(4, 63), torch.rand(4)
    assert torch.equal(copy(x, t), net(x, t))
    assert type(part_network(TimeFC(45, 64, 32).config())) is TimeFC


def test_masked_timefc_reads_observed_values_not_the_noisy_input_there():
    torch.manual_seed(0)
    net = MaskedTimeFC(63, 64, 32, blocks=1).eval()
    x, t, known = torch.randn(4, 63), torch.rand(4), torch.randn(4, 63)
    mask = torch.zeros(4, 63, dtype=torch.bool)
    mask[:, :12] = True  # the first four joints observed
    out = net(x, t, known, mask)
    assert out.shape == (4, 63)
    scrambled = torch.where(mask, torch.randn(4, 63), x)  # other noisy values under the observed entries
    torch.testing.assert_close(net(scrambled, t, known, mask), out)
    assert not torch.allclose(net(x, t, torch.randn(4, 63), mask), out)  # the known values matter
    # An empty mask is the unconditional network; the flags themselves change the output.
    empty = torch.zeros_like(mask)
    torch.testing.assert_close(net(x, t, known, empty), net(x, t))
    assert not torch.allclose(net(torch.where(mask, known, x), t), out)


def test_fused_prior_over_a_masked_body_network():
    torch.manual_seed(0)
    parts = part_nets()
    parts["body"] = MaskedTimeFC(63, HIDDEN, EMBED).eval()
    fused = FusedPrior(CombinedPrior(parts), 64, 32, 1).eval()
    x, t = inputs()
    # Zero-initialised correction: the fused model starts as the part combination.
    torch.testing.assert_close(fused(x, t), CombinedPrior(parts)(x, t))
