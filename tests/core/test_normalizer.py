"""Z-score normaliser: round trip, dtype/device following, and the whole-body assembly from part stats."""
import pytest
import torch

from dposerx_blender.core.layout import MODEL_DIM, MODEL_SLICES
from dposerx_blender.core.normalizer import Normalizer


def stats(dim: int, offset: float) -> Normalizer:
    """Distinguishable stats: mean offset + k, std 1 + offset + k / 100."""
    k = torch.arange(dim, dtype=torch.float32)
    return Normalizer(offset + k, 1.0 + offset + k / 100)


def parts() -> dict[str, Normalizer]:
    return {"body": stats(63, 1000.0), "hand": stats(45, 2000.0), "face": stats(9, 3000.0)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip(dtype):
    generator = torch.Generator().manual_seed(0)
    norm = Normalizer(torch.randn(63, generator=generator), torch.rand(63, generator=generator) + 0.1)
    x = torch.randn(7, 63, generator=generator, dtype=dtype)
    z = norm.normalize(x)
    assert z.dtype == dtype and z.shape == x.shape
    torch.testing.assert_close(z, (x - norm.mean.to(dtype)) / norm.std.to(dtype))
    torch.testing.assert_close(norm.denormalize(z), x, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    torch.testing.assert_close(norm.normalize(norm.denormalize(x)), x, rtol=0,
                               atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_normalize_broadcasts_over_leading_dims():
    norm = stats(9, 0.5)
    x = torch.randn(2, 3, 9)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x, rtol=0, atol=1e-5)


def test_whole_body_layout():
    p = parts()
    whole = Normalizer.whole_body(p)
    assert whole.mean.shape == whole.std.shape == (MODEL_DIM,)
    s = MODEL_SLICES
    for field in ("mean", "std"):
        w = getattr(whole, field)
        assert torch.equal(w[s["body"]], getattr(p["body"], field))
        # the hand stats serve both hand slices (the left hand is stored mirrored into right-hand convention)
        assert torch.equal(w[s["left_hand"]], getattr(p["hand"], field))
        assert torch.equal(w[s["right_hand"]], getattr(p["hand"], field))
        # face stats = jaw (first 3) + eyes (last 6)
        assert torch.equal(w[s["jaw"]], getattr(p["face"], field)[:3])
        assert torch.equal(w[s["eyes"]], getattr(p["face"], field)[3:])
    # every entry comes from some part (none left at the zeros / ones defaults)
    assert (whole.mean >= 1000).all() and (whole.std > 1).all()


def test_whole_body_accepts_float64_stats():
    p = {name: Normalizer(n.mean.double(), n.std.double()) for name, n in parts().items()}
    whole = Normalizer.whole_body(p)
    assert whole.mean.dtype == torch.float32
    torch.testing.assert_close(whole.mean, Normalizer.whole_body(parts()).mean)


@pytest.mark.parametrize("part, dim", [("body", 66), ("hand", 90), ("face", 3), ("face", 103)])
def test_whole_body_rejects_wrong_sizes(part, dim):
    p = parts()
    p[part] = stats(dim, 0.0)
    with pytest.raises(ValueError, match=part):
        Normalizer.whole_body(p)


def test_whole_body_needs_all_three_parts():
    p = parts()
    del p["face"]
    with pytest.raises(KeyError):
        Normalizer.whole_body(p)
