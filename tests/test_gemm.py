"""The owned recurrent product (gradpath.kernels.gemm): values and bits."""

import numpy as np
import pytest

from gradpath.kernels.gemm import (
    TRANSPOSE_ROWS,
    grad_product,
    pack,
    pack_recurrent,
    product,
    product_units,
)

SHAPES = [(1, 1, 1, 1), (1, 64, 64, 1), (5, 100, 400, 4), (13, 37, 90, 3), (16, 512, 2048, 4),
          (9, 33, 33, 1), (8, 128, 384, 3)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows,K,N,nblk", SHAPES)
def test_product_matches_float64_matmul(rows, K, N, nblk, dtype):
    rng = np.random.default_rng(rows * 1000 + K)
    A = rng.standard_normal((rows, K)).astype(dtype)
    M = rng.standard_normal((K, N)).astype(dtype)
    out = np.full((rows, N), np.nan, dtype)
    product(A, pack(M, nblk), out)
    ref = A.astype(np.float64) @ M.astype(np.float64)
    # the rounding bound of a K-term FMA chain (K unit roundoffs), plus the inputs' rounding
    terms = np.abs(A).astype(np.float64) @ np.abs(M).astype(np.float64)
    bound = (K + 2) * np.finfo(dtype).eps / 2 * terms
    assert np.all(np.abs(out - ref) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_bits_do_not_depend_on_the_split(dtype, reverse):
    """Any split of rows (row tiles of 8, 4, 2, 1) or of units (whole panels),
    and either order of the panels, gives the same bits: every entry is one
    FMA chain over k in order."""
    rng = np.random.default_rng(7)
    rows, H, nblk = 15, 100, 4
    A = rng.standard_normal((rows, H)).astype(dtype)
    M = rng.standard_normal((H, nblk * H)).astype(dtype)
    P = pack(M, nblk)
    nr = P.shape[3]
    whole = np.empty((rows, nblk * H), dtype)
    product(A, P, whole)
    by_units = np.full_like(whole, np.nan)
    cuts = [0, nr, 3 * nr, H]
    for j0, j1 in zip(cuts[:-1], cuts[1:], strict=True):
        product_units(A, P, by_units, j0, j1, reverse)
    by_rows = np.full_like(whole, np.nan)
    for r in range(rows):  # one row: tiles of several panels, from the first or the last
        product_units(A[r:r + 1], P, by_rows[r:r + 1], 0, H, reverse)
    assert np.array_equal(whole, by_units)
    assert np.array_equal(whole, by_rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H", [64, 128, 200])
def test_a_lone_row_in_either_order(H, dtype):
    """One row (a batch of one) is a tile of 4 panels, or of 2 when its
    panels are one group that does not stay in L1 (gemm.L1_FIT; H = 64 in
    float64 is such a group of 32 KB on a 32 KB L1): forward, reversed, and
    as a row of a bigger product, the same bits."""
    rng = np.random.default_rng(H)
    A = rng.standard_normal((9, H)).astype(dtype)
    M = rng.standard_normal((H, H)).astype(dtype)
    P = pack(M, 1)
    whole = np.empty((9, H), dtype)
    product(A, P, whole)  # a tile of 8 rows, then the lone ninth
    for reverse in (False, True):
        for r in (0, 8):
            one = np.full((1, H), np.nan, dtype)
            product_units(A[r:r + 1], P, one, 0, H, reverse)
            assert np.array_equal(one[0], whole[r])


def test_views_and_other_columns():
    """Row-block views in and out (leading dimension of the whole array);
    columns outside the units asked for stay as they were."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((10, 40))
    M = rng.standard_normal((40, 80))
    P = pack(M, 2)
    out = np.full((10, 80), 5.0)
    product_units(A[2:7], P, out[2:7], 0, 16, True)
    ref = A[2:7] @ M
    assert np.allclose(out[2:7, :16], ref[:, :16], rtol=1e-14, atol=1e-13)
    assert np.allclose(out[2:7, 40:56], ref[:, 40:56], rtol=1e-14, atol=1e-13)
    assert np.all(out[2:7, 16:40] == 5.0) and np.all(out[2:7, 56:] == 5.0)
    assert np.all(out[:2] == 5.0) and np.all(out[7:] == 5.0)


def test_pack_recurrent_both_passes():
    rng = np.random.default_rng(4)
    H = 24
    W = rng.standard_normal((3 * H, H))
    fwd, bwd = pack_recurrent(W)
    h = rng.standard_normal((6, H))
    dz = rng.standard_normal((6, 3 * H))
    z = np.empty((6, 3 * H))
    d = np.empty((6, H))
    product(h, fwd, z)
    product(dz, bwd, d)
    assert np.allclose(z, h @ W.T, rtol=1e-13, atol=1e-13)
    assert np.allclose(d, dz @ W, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N,K,nblk", [(1, 1, 1), (4 * 24, 24, 4), (3 * 100, 100, 3),
                                      (4 * 512, 512, 4), (2 * 33, TRANSPOSE_ROWS + 3, 2)])
def test_pack_of_a_transposed_view_is_pack_of_the_transpose(N, K, nblk, dtype):
    """The same panels, padding zeros included, from a transposed view (read
    in tiles) as from a transposed copy; run twice so that a reused
    allocation's old contents would show."""
    rng = np.random.default_rng(N + K)
    for _ in range(2):
        W = rng.standard_normal((N, K)).astype(dtype)
        want = pack(np.ascontiguousarray(W.T), nblk)
        got = pack(W.T, nblk)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
        garbage = np.full_like(got, np.nan)  # the next np.empty may land here
        del garbage


def test_pack_pads_with_zeros():
    """Padding columns are zero (the panels come from np.empty), so a product
    over them adds nothing, even where memory held NaN before."""
    for _ in range(3):
        junk = np.full((1, 2, 5, 32), np.nan)
        del junk
        P = pack(np.ones((5, 2 * 20)), 2)
        nr = P.shape[3]
        for q in range(P.shape[1]):
            w = min(nr, 20 - q * nr)
            assert np.all(P[:, q, :, :w] == 1.0) and np.all(P[:, q, :, w:] == 0.0)


def test_nan_and_inf_propagate():
    A = np.ones((3, 5))
    A[1, 2] = np.nan
    M = np.ones((5, 7))
    M[4, 6] = np.inf
    out = np.empty((3, 7))
    product(A, pack(M, 1), out)
    assert np.isnan(out[1]).all()
    assert np.isinf(out[0, 6]) and np.isfinite(out[0, :6]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,G,H", [(1, 1, 1), (700, 96, 40), (513, 64, 64), (3000, 24, 100)])
def test_grad_product_accumulates_the_transposed_product(n, G, H, dtype):
    rng = np.random.default_rng(n + G + H)
    Dz = rng.standard_normal((n, G)).astype(dtype)
    X = rng.standard_normal((n, H)).astype(dtype)
    C0 = rng.standard_normal((G, H)).astype(dtype)
    C = C0.copy()
    grad_product(Dz, X, C, 0, G, 0, H)
    ref = C0.astype(np.float64) + Dz.T.astype(np.float64) @ X.astype(np.float64)
    terms = np.abs(C0) + np.abs(Dz).T.astype(np.float64) @ np.abs(X).astype(np.float64)
    assert np.all(np.abs(C - ref) <= (n + 3) * np.finfo(dtype).eps / 2 * terms)
    # any split of C's rows into blocks starting at multiples of 8: the same bits
    C2 = C0.copy()
    cut = (G // 2) // 8 * 8
    grad_product(Dz, X, C2, cut, G, 0, H)
    grad_product(Dz, X, C2, 0, cut, 0, H)
    assert np.array_equal(C, C2)
    # and of its columns, at any offset
    C3 = C0.copy()
    grad_product(Dz, X, C3, 0, G, H // 3, H)
    grad_product(Dz, X, C3, 0, G, 0, H // 3)
    assert np.array_equal(C, C3)
