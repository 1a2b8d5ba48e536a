"""passage.inits: the statistics of the random initialisers (tolerances from the sample size),
orthogonality, shapes, reproducibility and names."""

import math

import pytest
import torch

from passage import inits
from passage.inits import INITS, get

N = (400, 250)  # 100,000 draws
N_DRAWS = N[0] * N[1]


def test_uniform_covers_minus_scale_to_scale_evenly():
    torch.manual_seed(0)
    for scale, kwargs in [(0.05, {}), (2.0, {"scale": 2.0})]:  # 0.05: the default
        w = get("uniform")(N, **kwargs)
        assert w.shape == N and w.dtype == torch.float32
        assert w.min() >= -scale and w.max() <= scale
        sd = scale / math.sqrt(3)  # the standard deviation of U(-a, a)
        # sample mean and std within 5 standard errors; the std's relative standard error is
        # sqrt((kurtosis - 1) / 4n), and a uniform's kurtosis is 9/5
        assert abs(float(w.mean())) < 5 * sd / math.sqrt(N_DRAWS)
        assert abs(float(w.std()) / sd - 1) < 5 * math.sqrt((9 / 5 - 1) / (4 * N_DRAWS))
        # the whole interval is used: the extremes of 100,000 draws are near its ends
        assert float(w.min()) < -0.999 * scale and float(w.max()) > 0.999 * scale
        # each tenth of the interval holds a tenth of the draws (binomial sd: 0.1% of N)
        counts = torch.histc(w, bins=10, min=-scale, max=scale) / N_DRAWS
        assert torch.all((counts - 0.1).abs() < 5 * math.sqrt(0.1 * 0.9 / N_DRAWS))


def test_normal_has_mean_zero_and_std_scale():
    torch.manual_seed(1)
    for scale in (0.05, 3.0):
        w = get("normal")(N, scale=scale)
        assert w.shape == N and w.dtype == torch.float32
        assert abs(float(w.mean())) < 5 * scale / math.sqrt(N_DRAWS)
        # the sample std of n normal draws has a standard error of about sigma / sqrt(2n)
        assert abs(float(w.std()) - scale) < 5 * scale / math.sqrt(2 * N_DRAWS)
        # a normal's tails: about 4.55% of the draws beyond 2 sigma
        beyond = float((w.abs() > 2 * scale).float().mean())
        p = math.erfc(2 / math.sqrt(2))
        assert abs(beyond - p) < 5 * math.sqrt(p * (1 - p) / N_DRAWS)
    assert abs(float(get("normal")(N).std()) - 0.05) < 5 * 0.05 / math.sqrt(2 * N_DRAWS)  # default


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9), (1, 5), (5, 1)])
def test_orthogonal_is_scale_times_a_semi_orthogonal_matrix(shape):
    torch.manual_seed(2)
    w = get("orthogonal")(shape).double()
    assert w.shape == shape
    rows, cols = shape
    # the shorter side's vectors are orthonormal (times the default scale 1.1)
    gram = w.T @ w if rows >= cols else w @ w.T
    torch.testing.assert_close(gram, 1.1 ** 2 * torch.eye(min(rows, cols), dtype=torch.float64),
                               atol=1e-5, rtol=0)
    w2 = inits.orthogonal(shape, scale=0.5).double()
    singular = torch.linalg.svdvals(w2)
    torch.testing.assert_close(singular, torch.full_like(singular, 0.5), atol=1e-6, rtol=0)


def test_orthogonal_of_more_than_two_axes_is_orthogonal_over_the_flattened_rest():
    torch.manual_seed(3)
    w = get("orthogonal")((4, 3, 2))
    assert w.shape == (4, 3, 2) and w.is_contiguous()
    flat = w.reshape(4, 6).double()
    torch.testing.assert_close(flat @ flat.T, 1.21 * torch.eye(4, dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_orthogonal_draws_are_spread_over_all_orthogonal_matrices():
    # For a uniform (Haar) draw every entry has mean 0 and mean square 1/n, and the determinant
    # is +1 or -1 alike. A plain QR without the sign fix puts q[0, 0] on one side of 0.
    torch.manual_seed(4)
    n, draws = 4, 500
    q = torch.stack([inits.orthogonal((n, n), scale=1.0) for _ in range(draws)]).double()
    # entries of a Haar matrix: sd 1/sqrt(n); q**2 ~ Beta(1/2, (n-1)/2), sd sqrt(3/64) for n=4
    se_mean = (1 / math.sqrt(n)) / math.sqrt(draws)
    se_square = math.sqrt(3 / 64) / math.sqrt(draws)
    for i, j in [(0, 0), (0, n - 1), (n - 1, 0), (2, 1)]:
        assert abs(float(q[:, i, j].mean())) < 5 * se_mean, (i, j)
        assert abs(float((q[:, i, j] ** 2).mean()) - 1 / n) < 5 * se_square, (i, j)
    positive = float((torch.linalg.det(q) > 0).double().mean())
    assert abs(positive - 0.5) < 5 * 0.5 / math.sqrt(draws)


def test_identity_and_zeros():
    torch.testing.assert_close(get("identity")((3, 3)), torch.eye(3))
    torch.testing.assert_close(inits.identity((2, 4), scale=0.5), 0.5 * torch.eye(2, 4))
    z = get("zeros")((3, 5))
    assert z.shape == (3, 5) and z.dtype == torch.float32 and not z.any()


def test_the_random_inits_follow_torchs_seed():
    for name in ("uniform", "normal", "orthogonal"):
        torch.manual_seed(7)
        a = get(name)((5, 3))
        torch.manual_seed(7)
        b = get(name)((5, 3))
        c = get(name)((5, 3))
        assert torch.equal(a, b) and not torch.equal(b, c), name


@pytest.mark.parametrize("name", sorted(INITS))
def test_every_init_returns_a_float32_tensor_of_the_shape_asked(name):
    for shape in [(3, 7), (7, 3), (1, 1)]:
        w = get(name)(shape)
        assert isinstance(w, torch.Tensor) and w.dtype == torch.float32
        assert tuple(w.shape) == shape and torch.isfinite(w).all()


def test_names_are_case_insensitive_and_unknown_ones_are_listed():
    assert get("Orthogonal") is inits.orthogonal and get("ZEROS") is inits.zeros
    with pytest.raises(ValueError, match="unknown init 'xavier'; valid names: identity, normal, "
                                         "orthogonal, uniform, zeros$"):
        get("xavier")
    with pytest.raises(TypeError, match=r"init must be a name \(str\), got tuple"):
        get((3, 3))
