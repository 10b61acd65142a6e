"""Exact expected risk of one-pass SGD on the sketched problem.

In Σ's eigenbasis the diagonal p_j(t) = (Uᵀ E[e_t e_tᵀ] U)_jj of the error covariance closes:

    p(t) = K_g p(t−1) + g² σ_M² μ,     K_g = diag(1 − e) + g² μ μᵀ,     e_j = 2gμ_j − 2g²μ_j²,

at step size g = γ_t. The expected excess risk is μ·p. Bias is the run from p(0) without noise; variance the run from
0 with noise σ_M² = σ² + Approx; they add up exactly (linearity, independent Gaussian noise).

A constant-step phase of n steps is jumped in closed form: K_g is diagonal plus rank one, so its eigenvalues κ solve
the secular equation 1 + g² Σ_j μ_j² / (d_j − κ) = 0 (O(M) per root and iteration, a compiled "middle way"
iteration) and its eigenvectors follow in O(M²) (Gu–Eisenstat: the rank-one vector is recomputed from the roots so
the eigenvectors are orthogonal to working precision). Then p ← V[κⁿ ⊙ Vᵀp + (1 − κⁿ)/(1 − κ) ⊙ Vᵀc]. Everything is
carried in terms of θ = 1 − κ and e = 1 − d, which are small numbers known to full relative precision, so
κⁿ = exp(n·log1p(−θ)) is accurate for n up to 10⁹. The kernels are fused loops over O(M) vectors (numba, cached on
disk); the eigenvectors are applied from the roots (one division per entry) and never stored, so a map is O(M).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from sketchlaw.errors import DivergenceError, ParameterError
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.stability import check_stable

_EPS = np.finfo(float).eps


# Compiled kernels. No reassociation and no FMA contraction: with either, LLVM chooses the summation order (vector
# width, interleaving, fusion) per compilation context, and a kernel compiled in this process then differed in the
# last bits from the same kernel loaded from numba's cache, so tables depended on which job compiled first. Every sum
# has an order fixed by the source: in the stepping loop four or eight interleaved partial sums combined in a fixed
# order (independent chains the CPU overlaps; LLVM keeps them scalar); in the O(M²) phase-map kernels many independent
# sums (roots, or poles) side by side in the innermost loop, each sequential in its own fixed order, which LLVM
# vectorizes across the sums without reordering any (the kernels with divisions take no fastmath flag at all, so
# 'arcp' never turns a division into a reciprocal estimate). nnan/ninf stay off, so a non-finite value still
# propagates (that is how divergence is detected). Every kernel releases the GIL (nogil), so a caller's threads can
# run independent problems side by side (the explorer runs its sketches so).
_FAST = {"nsz", "arcp"}


@njit(cache=True, nogil=True, error_model="numpy")
def _deflate(e, z, rho, rel):
    """Deflate in place: modes with negligible weight, and Givens rotations merging nearly-equal poles (sequential:
    each rotation acts on the survivor of the previous one). Returns (is_kept, rotation index pairs, (c, s)).

    "Negligible" is measured on each mode's own decay rate (rel·e_j), not on the largest one: a perturbation of size
    ε·e_max is harmless for one step but is multiplied by n in κⁿ, which for a slow mode (e_j ≪ e_max) run for
    n ~ 1/e_j steps is an O(ε·e_max/e_j) relative error (1e-9 on spectra spanning 1 … 1e-30 with the global rule)."""
    M = e.size
    kept = np.zeros(M, np.bool_)
    rot_idx = np.empty((M, 2), np.int64)
    rot_cs = np.empty((M, 2))
    nrot = 0
    prev = -1
    for j in range(M):
        if rho * abs(z[j]) <= rel * abs(e[j]):
            continue
        if prev >= 0:
            tau = math.hypot(z[prev], z[j])
            c, s = z[j] / tau, -z[prev] / tau
            if abs((e[prev] - e[j]) * c * s) <= rel * min(abs(e[prev]), abs(e[j])):
                rot_idx[nrot, 0], rot_idx[nrot, 1] = prev, j
                rot_cs[nrot, 0], rot_cs[nrot, 1] = c, s
                nrot += 1
                z[j], z[prev] = tau, 0.0
                ep, ej = e[prev], e[j]
                e[prev], e[j] = c * c * ep + s * s * ej, s * s * ep + c * c * ej
                prev = j
                continue
            kept[prev] = True
        prev = j
    if prev >= 0:
        kept[prev] = True
    return kept, rot_idx[:nrot].copy(), rot_cs[:nrot].copy()


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _apply_rotations(X, rot_idx, rot_cs, inverse):
    """X[i], X[k] ← (c X[i] + s X[k], −s X[i] + c X[k]) for each rotation in order (or the inverses in reverse)."""
    r, cols = rot_idx.shape[0], X.shape[1]
    for q in range(r):
        t = r - 1 - q if inverse else q
        i, k = rot_idx[t, 0], rot_idx[t, 1]
        c, s = rot_cs[t, 0], (-rot_cs[t, 1] if inverse else rot_cs[t, 1])
        for col in range(cols):
            xi, xk = X[i, col], X[k, col]
            X[i, col] = c * xi + s * xk
            X[k, col] = -s * xi + c * xk


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _dot(x, y):
    """Σ_j x_j y_j as eight partial sums over j mod 8, combined in a fixed order (see _FAST)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n = x.size
    n8 = n - n % 8
    for j in range(0, n8, 8):
        s0 += x[j] * y[j]
        s1 += x[j + 1] * y[j + 1]
        s2 += x[j + 2] * y[j + 2]
        s3 += x[j + 3] * y[j + 3]
        s4 += x[j + 4] * y[j + 4]
        s5 += x[j + 5] * y[j + 5]
        s6 += x[j + 6] * y[j + 6]
        s7 += x[j + 7] * y[j + 7]
    for j in range(n8, n):
        s0 += x[j] * y[j]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


_LANES = 32  # roots solved together: the O(M) sums vectorize across them (see _lane_sums)
_NEAR_POLE = 1.0 / 16  # weight/gap below which a root starts next to its pole (see _root_batch)
_STEP_TOL = 2.0 ** -30  # a model step this small (relative) leaves an error ~ its square: converged


_SUM_BLOCK = 64  # terms summed into a block total before it is added to a lane's sum (error ~ √64 + √(M/64), not √M)


@njit(cache=True, nogil=True, error_model="numpy")
def _lane_block(e, w, eo, x, split, n, j0, j1, left, mixed, bs, bt):
    """Block sums over poles j0 ≤ j < j1 for lanes k < n: the terms with j ≤ split_k (left) or j > split_k (right),
    in increasing j (left) or decreasing j (right). ``mixed``: some split falls inside the block."""
    for k in range(n):
        bs[k] = 0.0
        bt[k] = 0.0
    for i in range(j1 - j0):
        j = j0 + i if left else j1 - 1 - i
        ej, wj = e[j], w[j]
        if mixed:
            for k in range(n):
                if (j <= split[k]) == left:
                    inv = 1.0 / ((eo[k] - ej) + x[k])
                    u = wj * inv
                    bs[k] += u
                    bt[k] += u * inv
        else:
            for k in range(n):
                inv = 1.0 / ((eo[k] - ej) + x[k])
                u = wj * inv
                bs[k] += u
                bt[k] += u * inv


@njit(cache=True, nogil=True, error_model="numpy")
def _lane_sums(e, w, eo, x, split, n, acc):
    """For lanes k < n: the secular sums at θ_k = eo_k + x_k, split at split_k: acc[0, k] = φ = Σ_{j ≤ split} w_j/δ_j,
    acc[1, k] = Σ_{j ≤ split} w_j/δ_j², acc[2, k] = ψ and acc[3, k] its Σ w/δ² over j > split, δ_j = (eo_k − e_j) + x_k.

    The loops run over j outside and over the lanes inside, so the compiler vectorizes across lanes without reordering
    anything (one division per lane and pole, no fastmath, no reassociation), and each lane's sums are formed in a
    fixed order of its own: blocks of _SUM_BLOCK poles at fixed positions (multiples of _SUM_BLOCK), each summed from
    its far end towards the root (φ in increasing j, ψ in decreasing j, the small terms first), the block totals
    added in the same direction. Lanes whose side does not reach a block add its zero total (exactly nothing), so a
    lane gets the same bits whichever lanes share its batch, vectorized or not."""
    m = e.size
    jlo, jhi = split[0], split[0]
    for k in range(n):
        acc[0, k] = 0.0
        acc[1, k] = 0.0
        acc[2, k] = 0.0
        acc[3, k] = 0.0
        jlo = min(jlo, split[k])
        jhi = max(jhi, split[k])
    bs, bt = np.empty(n), np.empty(n)
    nblk = (m + _SUM_BLOCK - 1) // _SUM_BLOCK
    for q in range(jhi // _SUM_BLOCK + 1):  # left sides: poles 0 … jhi
        j0, j1 = q * _SUM_BLOCK, min((q + 1) * _SUM_BLOCK, jhi + 1)
        _lane_block(e, w, eo, x, split, n, j0, j1, True, j1 - 1 > jlo, bs, bt)
        for k in range(n):
            acc[0, k] += bs[k]
            acc[1, k] += bt[k]
    for q in range(nblk - 1, jlo // _SUM_BLOCK - 1, -1):  # right sides: poles m − 1 … jlo + 1
        j0, j1 = max(q * _SUM_BLOCK, jlo + 1), min((q + 1) * _SUM_BLOCK, m)
        _lane_block(e, w, eo, x, split, n, j0, j1, False, j0 <= jhi, bs, bt)
        for k in range(n):
            acc[2, k] += bs[k]
            acc[3, k] += bt[k]


@njit(cache=True, nogil=True, error_model="numpy")
def _middle_way(f, dphi, dpsi, x, a, b, lo, hi, has_left):
    """Next iterate of the "middle way": each side's sum replaced by one pole (at a: the poles left of the root, at b:
    the right ones) with matched value and slope at x, the resulting quadratic solved inside (lo, hi); NaN if none."""
    sb = (x - b) * (x - b) * dphi
    xn = np.nan
    if has_left:
        sa = (x - a) * (x - a) * dpsi
        c = f - sa / (x - a) - sb / (x - b)
        A, Bq, Cq = c, sa + sb - c * (a + b), c * a * b - sa * b - sb * a
        if A == 0.0:
            if Bq != 0.0:
                xn = -Cq / Bq
        else:
            disc = max(Bq * Bq - 4.0 * A * Cq, 0.0)
            q = -0.5 * (Bq + math.copysign(math.sqrt(disc), Bq))
            r1 = q / A
            r2 = Cq / q if q != 0.0 else np.nan
            xn = r1 if lo < r1 < hi else r2
    else:
        c = f - sb / (x - b)
        if c != 0.0:
            xn = b - sb / c
    return xn


@njit(cache=True, nogil=True, error_model="numpy")
def _root_batch(e, w, rho, I0, n, origin, xout):
    """Roots I0 … I0 + n − 1 of 1 + Σ_j w_j / (θ − e_j) = 0 (e strictly descending, w > 0, Σ w = ρ): root I in
    (e_{I+1}, e_I) or, for the last, in [e_{m−1} − ρ, e_{m−1}); stored as (origin, x) with θ = e_origin + x and
    origin the nearer pole.

    Each root is iterated on its own (the batch only shares the passes over the poles, see _lane_sums). A root whose
    weight is small against its interval (w_I < gap/16: most of them on power-law spectra) starts at x = −w_I from
    pole I, where the "middle way" (_middle_way) is nearly exact at once, inside the right half of its interval; if
    the model sends it out of that half, it falls back to the general start. The general start is a pass at the
    interval's midpoint, whose sign of f picks the nearer pole. The middle way converges quadratically, inside a
    bracket kept from the signs of f (bisection if an iterate leaves it). It stops when f is at the level of its own
    rounding error (then one Newton step from those sums gives the last bits) or when a model step is below 2⁻³⁰
    relative (the next would be below rounding): two or three passes per root.
    """
    m = e.size
    eps = 2.220446049250313e-16
    eo, xs, split, act = np.empty(n), np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64)
    o, lo, hi, a, b, x = np.empty(n, np.int64), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    near = np.zeros(n, np.bool_)
    start = np.ones(n, np.bool_)  # the next sums are the general start's (midpoint) pass
    acc = np.empty((4, n))
    for k in range(n):
        I = I0 + k
        if I < m - 1:
            gap = e[I] - e[I + 1]
            if w[I] < _NEAR_POLE * gap:
                near[k], start[k] = True, False
                o[k], lo[k], hi[k], a[k], b[k], x[k] = I, -0.5 * gap, 0.0, -gap, 0.0, -w[I]
        act[k] = k
    na = n
    for _ in range(200):
        for s in range(na):
            k = act[s]
            I = I0 + k
            split[s] = I
            if not start[k]:
                eo[s], xs[s] = e[o[k]], x[k]
            elif I < m - 1:
                eo[s], xs[s] = e[I + 1], 0.5 * (e[I] - e[I + 1])
            else:
                eo[s], xs[s] = e[I], -0.5 * rho
        _lane_sums(e, w, eo, xs, split, na, acc)
        nn = 0
        for s in range(na):
            k = act[s]
            I = I0 + k
            phi, dphi, psi, dpsi = acc[0, s], acc[1, s], acc[2, s], acc[3, s]
            f = 1.0 + phi + psi
            if start[k]:  # the midpoint's sums also serve the first iteration
                start[k] = False
                if I < m - 1:
                    gap = e[I] - e[I + 1]
                    if f >= 0.0:  # root in the right half: measure from pole I
                        o[k], lo[k], hi[k], a[k], b[k], x[k] = I, -0.5 * gap, 0.0, -gap, 0.0, -0.5 * gap
                    else:
                        o[k], lo[k], hi[k], a[k], b[k], x[k] = I + 1, 0.0, 0.5 * gap, 0.0, gap, 0.5 * gap
                else:
                    o[k], lo[k], hi[k], a[k], b[k], x[k] = I, -rho, 0.0, 0.0, 0.0, -0.5 * rho
            xk = x[k]
            done = f == 0.0
            if not done and abs(f) <= eps * (8.0 * (psi - phi) + 1.0 + 4.0 * abs(xk) * (dphi + dpsi)):
                xn = xk + f / (dphi + dpsi)  # Newton from the converged iterate: its last bits
                if lo[k] <= xn <= hi[k]:
                    xk = xn
                done = True
            if not done:
                if f > 0.0:
                    lo[k] = max(lo[k], xk)
                else:
                    hi[k] = min(hi[k], xk)
                xn = _middle_way(f, dphi, dpsi, xk, a[k], b[k], lo[k], hi[k], I < m - 1)
                model = lo[k] < xn < hi[k]
                if not model and near[k]:  # the root may be in the left half: take the general start
                    near[k], start[k] = False, True
                    xn = xk
                elif not model:
                    xn = 0.5 * (lo[k] + hi[k])
                done = (model and abs(xn - xk) <= _STEP_TOL * abs(xn)) or \
                    hi[k] - lo[k] <= 2.0 * eps * max(abs(lo[k]), abs(hi[k]))
                xk = xn
            x[k] = xk
            if done:
                origin[I], xout[I] = o[k], xk
            else:
                act[nn] = k
                nn += 1
        na = nn
        if na == 0:
            break
    for s in range(na):  # out of iterations (not expected): the last iterate
        k = act[s]
        origin[I0 + k], xout[I0 + k] = o[k], x[k]


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _secular_roots(e, w, rho):
    m = e.size
    origin = np.empty(m, np.int64)
    x = np.empty(m)
    nb = (m + _LANES - 1) // _LANES
    for bi in prange(nb):
        I0 = bi * _LANES
        _root_batch(e, w, rho, I0, min(_LANES, m - I0), origin, x)
    return origin, x


_CHUNK = 256  # poles per task in the kernels that run over poles outside and roots inside
_RENORM = 32  # Gu–Eisenstat factors multiplied between renormalizations


@njit(cache=True, nogil=True, error_model="numpy")
def _zhat_one(e, rho, eo, x, j):
    """ẑ_j² as (mantissa, exponent), factor by factor with the exponent split off after each (the safe path)."""
    ej = e[j]
    p, ex = math.frexp(-((eo[j] - ej) + x[j]) / rho)
    for I in range(e.size):
        if I != j:
            p *= ((eo[I] - ej) + x[I]) / (e[I] - ej)
            mant, k2 = math.frexp(p)
            p, ex = mant, ex + k2
    return p, ex


@njit(cache=True, nogil=True, error_model="numpy")
def _zhat_factors(e, eo, x, I, j0, n, p, bad):
    """p_jj ← p_jj · Π_{t<4} (κ_{I+t} − d_j)/(d_{I+t} − d_j) for the poles j = j0 + jj (the factor with I + t = j is 1):
    the four numerators and denominators multiplied separately, one division per four factors. ``bad`` counts
    products that left the safe range (an underflow would silently lose digits)."""
    eo0, eo1, eo2, eo3 = eo[I], eo[I + 1], eo[I + 2], eo[I + 3]
    x0, x1, x2, x3 = x[I], x[I + 1], x[I + 2], x[I + 3]
    e0, e1, e2, e3 = e[I], e[I + 1], e[I + 2], e[I + 3]
    for jj in range(n):
        j = j0 + jj
        ej = e[j]
        a0 = 1.0 if j == I else (eo0 - ej) + x0
        a1 = 1.0 if j == I + 1 else (eo1 - ej) + x1
        a2 = 1.0 if j == I + 2 else (eo2 - ej) + x2
        a3 = 1.0 if j == I + 3 else (eo3 - ej) + x3
        b0 = 1.0 if j == I else e0 - ej
        b1 = 1.0 if j == I + 1 else e1 - ej
        b2 = 1.0 if j == I + 2 else e2 - ej
        b3 = 1.0 if j == I + 3 else e3 - ej
        num = (a0 * a1) * (a2 * a3)
        den = (b0 * b1) * (b2 * b3)
        q = p[jj] * (num / den)
        p[jj] = q
        ok = (abs(num) > 1e-290) & (abs(den) > 1e-290) & (q > 1e-290) & (q < 1e290)
        bad[jj] += 0.0 if ok else 1.0


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _zhat(e, z, rho, eo, x):
    """Gu–Eisenstat: ẑ_j² = Π_I (κ_I − d_j) / (ρ Π_{k≠j} (d_k − d_j)) from the computed roots, paired as
    (κ_j − d_j)/ρ · Π_{I≠j} (κ_I − d_j)/(d_I − d_j), every factor positive by interlacing, sign(ẑ_j) = sign(z_j).

    Poles (j) run inside, roots (I) outside, so the products vectorize across j, each formed in a fixed order of I
    (groups of four, _zhat_factors; the same bits whatever the chunking or thread count). The exponent is split off
    every _RENORM factors; a product that leaves the safe range at any group (not seen on real spectra) is redone
    factor by factor (_zhat_one)."""
    m = e.size
    out = np.empty(m)
    nc = (m + _CHUNK - 1) // _CHUNK
    m4 = m - m % 4
    for c in prange(nc):
        j0 = c * _CHUNK
        n = min(_CHUNK, m - j0)
        p = np.empty(n)
        ex = np.zeros(n, np.int64)
        bad = np.zeros(n)
        for jj in range(n):
            j = j0 + jj
            mant, k2 = math.frexp(-((eo[j] - e[j]) + x[j]) / rho)
            p[jj], ex[jj] = mant, k2
        for I in range(0, m4, 4):
            _zhat_factors(e, eo, x, I, j0, n, p, bad)
            if I % _RENORM == _RENORM - 4:
                for jj in range(n):
                    mant, k2 = math.frexp(p[jj])
                    p[jj], ex[jj] = mant, ex[jj] + k2
        for I in range(m4, m):
            eoI, xI, eI = eo[I], x[I], e[I]
            for jj in range(n):
                j = j0 + jj
                if j != I:
                    ej = e[j]
                    q = p[jj] * (((eoI - ej) + xI) / (eI - ej))
                    p[jj] = q
                    bad[jj] += 0.0 if (q > 1e-290) & (q < 1e290) else 1.0
        for jj in range(n):
            j = j0 + jj
            if bad[jj] != 0.0:
                pj, exj = _zhat_one(e, rho, eo, x, j)
            else:
                pj, exj = math.frexp(p[jj])
                exj += ex[jj]
            pj = abs(pj)
            if exj % 2:
                pj, exj = 2.0 * pj, exj - 1
            out[j] = math.copysign(math.sqrt(pj) * math.ldexp(1.0, exj // 2), z[j])
    return out


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _forward(e, eo, x, zhat, XT):
    """Vᵀ X without forming V: Y[I, c] = s_I Σ_j v_Ij X[j, c] with v_Ij = ẑ_j / ((e_o(I) − e_j) + x_I) and
    s_I = 1/√(Σ_j v_Ij²) (Vᵀ's rows are v_I s_I). Returns (Y, s). XT = Xᵀ (columns × m, C-ordered).

    Roots run inside in batches of _LANES (vectorized across roots, one division per root and pole shared by all
    columns), poles outside; each sum is formed per root in a fixed order (blocks of _SUM_BLOCK poles, as in
    _lane_sums), so the bits do not depend on the batch, the thread count or the number of columns."""
    m, cols = e.size, XT.shape[0]
    Y = np.empty((m, cols))
    s = np.empty(m)
    nb = (m + _LANES - 1) // _LANES
    for bi in prange(nb):
        I0 = bi * _LANES
        n = min(_LANES, m - I0)
        acc = np.zeros((cols + 1, n))
        blk = np.empty((cols + 1, n))
        v = np.empty(n)
        eob, xb = eo[I0:I0 + n], x[I0:I0 + n]
        for q in range(0, m, _SUM_BLOCK):
            for r in range(cols + 1):
                for k in range(n):
                    blk[r, k] = 0.0
            for j in range(q, min(q + _SUM_BLOCK, m)):
                ej, zj = e[j], zhat[j]
                for k in range(n):
                    vk = zj / ((eob[k] - ej) + xb[k])
                    v[k] = vk
                    blk[cols, k] += vk * vk
                for c in range(cols):
                    xc = XT[c, j]
                    for k in range(n):
                        blk[c, k] += v[k] * xc
            for r in range(cols + 1):
                for k in range(n):
                    acc[r, k] += blk[r, k]
        for k in range(n):
            sk = 1.0 / math.sqrt(acc[cols, k])
            s[I0 + k] = sk
            for c in range(cols):
                Y[I0 + k, c] = acc[c, k] * sk
    return Y, s


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _backward(e, eo, x, zhat, QsT):
    """V Q without forming V: X[j, c] = ẑ_j Σ_I (s_I Q[I, c]) / ((e_o(I) − e_j) + x_I), with QsT = (s ⊙ Q)ᵀ
    (columns × m, C-ordered). Poles run inside in chunks (vectorized), roots outside; each sum is formed per pole
    in the order of I in blocks of _SUM_BLOCK roots (fixed order, any chunking or thread count)."""
    m, cols = e.size, QsT.shape[0]
    X = np.empty((m, cols))
    nc = (m + _CHUNK - 1) // _CHUNK
    for ci in prange(nc):
        j0 = ci * _CHUNK
        n = min(_CHUNK, m - j0)
        eb = e[j0:j0 + n]
        acc = np.zeros((cols, n))
        blk = np.empty((cols, n))
        inv = np.empty(n)
        for q in range(0, m, _SUM_BLOCK):
            for c in range(cols):
                for jj in range(n):
                    blk[c, jj] = 0.0
            for I in range(q, min(q + _SUM_BLOCK, m)):
                eoI, xI = eo[I], x[I]
                for jj in range(n):
                    inv[jj] = 1.0 / ((eoI - eb[jj]) + xI)
                for c in range(cols):
                    qc = QsT[c, I]
                    for jj in range(n):
                        blk[c, jj] += qc * inv[jj]
            for c in range(cols):
                for jj in range(n):
                    acc[c, jj] += blk[c, jj]
        for jj in range(n):
            zj = zhat[j0 + jj]
            for c in range(cols):
                X[j0 + jj, c] = zj * acc[c, jj]
    return X


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _dense_vt(e, eo, x, zhat, s, VT):
    """Vᵀ as a dense matrix into VT (m × m): Vᵀ[I, j] = ẑ_j / ((e_o(I) − e_j) + x_I) · s_I."""
    m = e.size
    for I in prange(m):
        eI, xI, sI = eo[I], x[I], s[I]
        for j in range(m):
            VT[I, j] = (zhat[j] / ((eI - e[j]) + xI)) * sI
    return VT


_SCRATCH = threading.local()


def _scratch_square(m: int) -> np.ndarray:
    """An m × m work array, one per thread, kept and reused: a fresh M² array for every product with many columns
    cost more in page faults than forming Vᵀ in it (4 ms against 0.3 ms at M = 1024)."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < m * m:
        buf = _SCRATCH.buf = np.empty(m * m)
    return buf[:m * m].reshape(m, m)


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _step_kernel(PT, e, w, r, forcing, n, record, out):
    """n steps of p ← p − e∘p + r·w·(w·p + forcing) on each row of PT (in place); out[i] = w·p after record[i] steps
    (record ascending)."""
    cols, M = PT.shape
    dots = np.empty(cols)
    for col in range(cols):
        dots[col] = _dot(w, PT[col])
    ri = 0
    while ri < record.size and record[ri] == 0:
        out[ri, :] = dots
        ri += 1
    for t in range(1, n + 1):
        for col in range(cols):
            a = r * (dots[col] + forcing[col])
            p = PT[col]
            for j in range(M):
                p[j] = p[j] - e[j] * p[j] + a * w[j]
            dots[col] = _dot(w, p)
        while ri < record.size and record[ri] == t:
            out[ri, :] = dots
            ri += 1


_FEW_COLUMNS = 16


@dataclass
class PhaseMap:
    """Eigendecomposition of K_g = diag(1 − e) + g² μ μᵀ in θ = 1 − κ form, with deflation.

    Coordinates: ``order`` sorts modes by d ascending; Givens rotations (``rot_idx`` pairs (i, k), ``rot_cs`` their
    (c, s)) deflate nearly-equal d's; modes in ``deflated`` are exact eigenvectors of the rotated matrix (eigenvalue
    1 − e); the remaining ``kept`` modes have eigenvectors V (columns) with eigenvalues 1 − θ. V is not stored: it is
    the Cauchy-like matrix Vᵀ[I, j] = ẑ_j s_I / ((e_o(I) − e_j) + x_I) of the kept poles ``e_kept``, the roots
    θ_I = e_o(I) + x_I (``eo`` + ``x``), the Gu–Eisenstat vector ``zhat`` and the row scales ``s``, and products with
    a few columns are formed from them directly (O(M) memory, one division per entry, _forward/_backward); products
    with many columns form the dense Vᵀ in a reused work array and go to BLAS. ``VT`` builds the dense M × M matrix
    and keeps it (tests).
    ``w_eigen``: the weights (rank-one vector) in these coordinates, (kept, deflated).
    """

    g: float
    order: np.ndarray
    rot_idx: np.ndarray
    rot_cs: np.ndarray
    kept: np.ndarray
    deflated: np.ndarray
    theta_kept: np.ndarray
    e_deflated: np.ndarray
    e_kept: np.ndarray
    eo: np.ndarray
    x: np.ndarray
    zhat: np.ndarray
    s: np.ndarray
    w_eigen: tuple
    _VT: np.ndarray | None = None

    @property
    def VT(self) -> np.ndarray:
        if self._VT is None:
            m = len(self.kept)
            self._VT = _dense_vt(self.e_kept, self.eo, self.x, self.zhat, self.s, np.empty((m, m))) if m \
                else np.empty((0, 0))
        return self._VT

    def _product_vt(self) -> np.ndarray:
        """Vᵀ for one product: the kept one, else formed in this thread's work array (valid until the next call)."""
        if self._VT is not None:
            return self._VT
        m = len(self.kept)
        return _dense_vt(self.e_kept, self.eo, self.x, self.zhat, self.s, _scratch_square(m))

    @property
    def V(self) -> np.ndarray:
        return self.VT.T

    @property
    def rotations(self) -> list:
        return [(int(i), int(k), c, s) for (i, k), (c, s) in zip(self.rot_idx, self.rot_cs)]

    @property
    def nbytes(self) -> int:
        arrays = (self.order, self.rot_idx, self.rot_cs, self.kept, self.deflated, self.theta_kept, self.e_deflated,
                  self.e_kept, self.eo, self.x, self.zhat, self.s) + tuple(self.w_eigen)
        return sum(a.nbytes for a in arrays) + (0 if self._VT is None else self._VT.nbytes)

    def _rotated(self, P: np.ndarray) -> np.ndarray:
        X = np.array(P[self.order], dtype=float, order="C")
        _apply_rotations(X.reshape(len(X), -1), self.rot_idx, self.rot_cs, False)
        return X

    def to_eigen(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = self._rotated(P)
        X2 = X.reshape(len(X), -1)
        Xk = X2[self.kept]
        if X2.shape[1] <= _FEW_COLUMNS and len(self.kept):
            Yk = _forward(self.e_kept, self.eo, self.x, self.zhat, np.ascontiguousarray(Xk.T))[0]
        else:
            Yk = self._product_vt() @ Xk
        return Yk.reshape((len(self.kept),) + X.shape[1:]), X[self.deflated]

    def from_eigen(self, Qk: np.ndarray, Qd: np.ndarray) -> np.ndarray:
        X = np.empty((len(self.order),) + Qk.shape[1:])
        if Qk.ndim == 2 and Qk.shape[1] <= _FEW_COLUMNS and len(self.kept):
            QsT = np.ascontiguousarray((self.s[:, None] * Qk).T)
            X[self.kept] = _backward(self.e_kept, self.eo, self.x, self.zhat, QsT)
        else:
            X[self.kept] = self._product_vt().T @ Qk
        X[self.deflated] = Qd
        _apply_rotations(X.reshape(len(X), -1), self.rot_idx, self.rot_cs, True)
        P = np.empty_like(X)
        P[self.order] = X
        return P


def decay_rates(mu: np.ndarray, g: float, batch: int = 1) -> np.ndarray:
    """e = 1 − d: the diagonal of K_g is 1 − e, e_j = 2gμ_j − (1 + 1/B) g²μ_j² (B = 1: 2gμ_j − 2g²μ_j²)."""
    return 2 * g * mu - (1.0 + 1.0 / batch) * g * g * mu * mu


def phase_map(mu: np.ndarray, g: float, weights=None, batch: int = 1) -> PhaseMap:
    """Decompose K_g = diag(1 − e) + (g²/B) w wᵀ (see module docstring; w = μ unless ``weights`` are given):
    O(M²) time and O(M) memory (the eigenvectors are kept implicit, see PhaseMap)."""
    return _phase_map(mu, g, weights, batch)[0]


def _phase_map(mu: np.ndarray, g: float, weights=None, batch: int = 1, P=None):
    """(phase map, P in its eigen-coordinates or None). The pass over the map that puts the weights into
    eigen-coordinates (and yields the row scales) also takes P's columns when there are few of them: the same bits
    as pm.to_eigen(P) (each column's sums are independent of the others), one pass fewer."""
    mu = np.asarray(mu, dtype=float)
    w_all = mu if weights is None else np.asarray(weights, dtype=float)
    e_all = decay_rates(mu, g, batch)
    order = np.argsort(-e_all, kind="stable")  # d = 1 − e ascending
    e = e_all[order].copy()
    z = w_all[order].copy()
    rho = g * g / batch * float(z @ z)
    z /= np.sqrt(z @ z)
    # Deflation thresholds on the scale of each e_j (not of d ≈ 1, nor of e_max): see _deflate.
    is_kept, rot_idx, rot_cs = _deflate(e, z, rho, 8 * _EPS)
    kept = np.flatnonzero(is_kept)
    kept = kept[np.argsort(-e[kept], kind="stable")]
    deflated = np.flatnonzero(~is_kept)
    m = len(kept)
    ek = e[kept]
    theta, eo, x, zhat, s = np.empty(0), np.empty(0), np.empty(0), np.empty(0), np.empty(0)
    if m:
        zk = z[kept]
        nz = np.sqrt(zk @ zk)
        rho_k, zk = rho * nz * nz, zk / nz
        if np.any(np.diff(ek) >= 0):
            raise ArithmeticError("phase map: eigenvalues of the phase matrix are not separated after deflation")
        origin, x = _secular_roots(ek, rho_k * zk * zk, rho_k)
        eo = ek[origin]
        zhat = _zhat(ek, zk, rho_k, eo, x)
        theta = eo + x
    pm = PhaseMap(g=g, order=order, rot_idx=rot_idx, rot_cs=rot_cs, kept=kept, deflated=deflated,
                  theta_kept=theta, e_deflated=e[deflated], e_kept=ek, eo=eo, x=x, zhat=zhat, s=s,
                  w_eigen=(np.empty(0), np.empty(0)))
    Wr = pm._rotated(w_all)  # the weights in eigen-coordinates; the same pass yields the row scales s
    fuse = P is not None and P.ndim == 2 and P.shape[1] <= _FEW_COLUMNS
    Xr = pm._rotated(P) if fuse else np.empty((len(order), 0))
    Q = None
    if m:
        XT = np.ascontiguousarray(np.concatenate([Wr[kept][:, None], Xr[kept]], axis=1).T)
        Y, pm.s = _forward(ek, eo, x, zhat, XT)
        pm.w_eigen = (Y[:, 0].copy(), Wr[deflated])
        if fuse:
            Q = (Y[:, 1:].copy(), Xr[deflated])
    else:
        pm.w_eigen = (np.empty(0), Wr[deflated])
        if fuse:
            Q = (np.empty((0, P.shape[1])), Xr[deflated])
    return pm, Q


def _powers(theta: np.ndarray, n: np.ndarray):
    """κⁿ and (1 − κⁿ)/(1 − κ) for κ = 1 − θ, accurate for tiny θ (shapes broadcast: θ (m,1), n (1,k))."""
    log_k = np.log1p(-theta)
    kn = np.exp(n * log_k)
    with np.errstate(invalid="ignore", divide="ignore"):
        geo = np.where(np.abs(theta) > 0, -np.expm1(n * log_k) / np.where(theta == 0, 1, theta), n)
    return kn, geo


@dataclass
class RiskBreakdown:
    """Expected risk E R_M(v_N) = σ² + Approx + Bias + Var (docs/METHODS.md §2, §4), conditional on the sketch."""

    sigma2: float
    approx: float
    bias: float
    variance: float

    @property
    def excess(self) -> float:
        return self.bias + self.variance

    @property
    def risk(self) -> float:
        return self.sigma2 + self.approx + self.bias + self.variance

    def as_dict(self) -> dict:
        noise = self.sigma2 + self.approx
        return {"risk": self.risk, "sigma2": self.sigma2, "approx": self.approx, "bias": self.bias,
                "variance": self.variance, "excess": self.excess, "reducible": self.risk - self.sigma2,
                # Var is linear in σ_M² = σ² + Approx: its split into label noise and misspecification.
                "variance_from_noise": self.variance * self.sigma2 / noise if noise > 0 else 0.0,
                "variance_from_approx": self.variance * self.approx / noise if noise > 0 else 0.0}


class PhaseMapCache:
    """Phase maps keyed by (g, batch), least recently used evicted once their bytes exceed ``max_bytes`` (the most
    recent map is always kept, whatever its size)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._maps: OrderedDict = OrderedDict()
        self._sizes: dict = {}  # bytes of each map when last looked at (summing PhaseMap.nbytes anew for every
        self._last = None       # insertion was quadratic in the number of maps: seconds for 1000 maps)
        self.builds = 0  # how many maps were decomposed (for tests and benchmarks)

    @property
    def nbytes(self) -> int:
        return sum(entry[0].nbytes for entry in self._maps.values())

    def __contains__(self, key) -> bool:
        return key in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    def get(self, key, build):
        if self._last in self._maps:  # the map handed out last may have grown since (its dense Vᵀ formed on demand)
            self._sizes[self._last] = self._maps[self._last][0].nbytes
        self._last = key
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        entry = build()
        self.builds += 1
        self._maps[key] = entry
        self._sizes[key] = entry[0].nbytes
        total = sum(self._sizes.values())
        while len(self._maps) > 1 and total > self.max_bytes:
            old, _ = self._maps.popitem(last=False)
            total -= self._sizes.pop(old)
        return entry


# A map holds O(M) numbers (~0.2 MB at M = 4096) unless its dense Vᵀ is asked for (``PhaseMap.VT``, 128 MB at
# M = 4096): then about 8 such maps at M = 4096, 2 at M = 8192.
PHASE_CACHE_BYTES = 1 << 30


class ExactEngine:
    """Expected risk after N SGD updates, averaged over data and prior, for fixed μ, p(0), σ² and E Approx.

    ``multiplicity`` n_j lets one mode stand for n_j identical modes (or a quadrature weight, see
    ``sketchlaw.engine.limit``): the sum P_j over the copies obeys P ← (1 − e)P + n(g²/B)μ(μ·P + σ_M²), which in the
    coordinates q = P/√n is the recursion above with the rank-one vector w = √n·μ, so the phase maps stay symmetric.
    ``batch`` B averages each update's gradient over B fresh samples: the fourth-moment and noise terms shrink by
    1/B (diagonal 1 − 2gμ + (1 + 1/B)g²μ², rank one g²/B·wwᵀ, forcing g²/B·σ_M²·w); a schedule then counts updates.

    Phase maps are kept in ``self.cache`` (bounded by ``PHASE_CACHE_BYTES``), so repeated runs, checkpointed curves
    and ``run_many`` decompose each distinct step size once.
    """

    def __init__(self, mu, p0, sigma2: float, approx: float, multiplicity=None, batch: int = 1):
        self.mu = np.asarray(mu, dtype=float)
        self.p0 = np.asarray(p0, dtype=float)
        self.sigma2, self.approx = float(sigma2), float(approx)
        self.batch = int(batch)
        if self.batch < 1:
            raise ParameterError("batch", batch, "an integer >= 1")
        self.multiplicity = None if multiplicity is None else np.asarray(multiplicity, dtype=float)
        root = np.ones_like(self.mu) if self.multiplicity is None else np.sqrt(self.multiplicity)
        self.w = self.mu * root        # rank-one vector and read-out in q = P/√n coordinates
        self.q0 = self.p0 * root
        self.cache = PhaseMapCache(PHASE_CACHE_BYTES)

    @classmethod
    def from_problem(cls, problem) -> "ExactEngine":
        return cls(problem.mu, problem.p0, problem.sigma2, problem.approx)

    @property
    def noise(self) -> float:
        return self.sigma2 + self.approx

    def _entry(self, g: float):
        """(phase map, read-out w in its eigen-coordinates (kept, deflated)) for step size g."""
        def build():
            pm = phase_map(self.mu, g, self.w, self.batch)
            return (pm,) + pm.w_eigen
        return self.cache.get((float(g), self.batch), build)

    def _map(self, g: float) -> PhaseMap:
        return self._entry(g)[0]

    def _step(self, P: np.ndarray, g: float, n: int, record=()) -> tuple[np.ndarray, np.ndarray]:
        """n plain recursion steps (compiled, O(M) per step) on the columns of P = [p_bias, p_var, ...] (pairs);
        returns (P after n steps, read-outs w·P after each count in ``record``, shape (len(record), columns))."""
        PT = np.array(P.T, dtype=float, order="C")
        forcing = np.tile([0.0, self.noise], PT.shape[0] // 2)
        rec = np.asarray(record, dtype=np.int64)
        out = np.empty((len(rec), PT.shape[0]))
        _step_kernel(PT, decay_rates(self.mu, g, self.batch), self.w, g * g / self.batch, forcing, int(n), rec, out)
        return PT.T.copy(), out

    def _jump(self, P: np.ndarray, g: float, n, record=None):
        """Jump n steps at step size g; P has column pairs [p_bias, p_var], n is an int or one count per pair.

        ``record`` (optional): (pair index, count) read-outs of w·P within the phase, computed from the same
        eigen-coordinates (O(M) each), returned as an array (len(record), 2) after P.
        """
        key, fused = (float(g), self.batch), None
        if key not in self.cache:  # a new map: its first pass also takes P (_phase_map)
            def build():
                nonlocal fused
                pm, fused = _phase_map(self.mu, g, self.w, self.batch, P)
                return (pm,) + pm.w_eigen
            self.cache.get(key, build)
        pm, wk, wd = self._entry(g)
        pairs = P.shape[1] // 2
        n = np.repeat(np.broadcast_to(np.asarray(n, dtype=float), (pairs,)), 2)[None, :]
        noisy = np.tile([0.0, 1.0], pairs)[None, :]  # only the variance columns are driven by noise
        Qk, Qd = pm.to_eigen(P) if fused is None else fused
        force = g * g / self.batch * self.noise
        Ck, Cd = force * wk, force * wd  # the forcing is a multiple of w, already in eigen-coordinates
        kn, geo = _powers(pm.theta_kept[:, None], n)
        knd, geod = _powers(pm.e_deflated[:, None], n)
        P_new = pm.from_eigen(kn * Qk + geo * Ck[:, None] * noisy, knd * Qd + geod * Cd[:, None] * noisy)
        if record is None:
            return P_new
        out = np.empty((len(record), 2))
        if len(record):
            pair = np.array([r[0] for r in record])
            cnt = np.array([r[1] for r in record], dtype=float)[None, :]
            kr, gr = _powers(pm.theta_kept[:, None], cnt)
            kdr, gdr = _powers(pm.e_deflated[:, None], cnt)
            b, v = Qk[:, 2 * pair], Qk[:, 2 * pair + 1]
            bd, vd = Qd[:, 2 * pair], Qd[:, 2 * pair + 1]
            out[:, 0] = wk @ (kr * b) + wd @ (kdr * bd)
            out[:, 1] = wk @ (kr * v + gr * Ck[:, None]) + wd @ (kdr * vd + gdr * Cd[:, None])
        return P_new, out

    def _check_phases(self, phases) -> list[tuple[float, int]]:
        phases = [(float(g), int(n)) for g, n in phases]
        if not phases or min(n for _, n in phases) < 0 or min(g for g, _ in phases) <= 0:
            raise ParameterError("phases", phases, "a non-empty list of (step size > 0, steps >= 0)")
        check_stable(max(g for g, _ in phases), self.mu, self.multiplicity, self.batch)
        return phases

    def run_many(self, schedules) -> list[RiskBreakdown]:
        """Final expected risks for many schedules (e.g. an N grid), sharing each phase's decomposition.

        Each schedule is anything with ``phases()`` (a Schedule) or an explicit list of (g, n) phases. All are advanced
        phase by phase together; at each phase index the columns with the same step size are jumped in one product,
        and the map cache makes a step size that recurs at another index (another γ, another schedule) free: the cost
        grows with the number of distinct step sizes, not with len(schedules).
        """
        phases = [self._check_phases(s.phases() if hasattr(s, "phases") else s) for s in schedules]
        P = np.tile(np.stack([self.q0, np.zeros_like(self.q0)], axis=1), (1, len(phases)))
        for ell in range(max(len(ph) for ph in phases)):
            groups: dict[float, list[int]] = {}
            for i, ph in enumerate(phases):
                if len(ph) > ell and ph[ell][1] > 0:
                    groups.setdefault(ph[ell][0], []).append(i)
            for g, idx in groups.items():
                cols = np.ravel([[2 * i, 2 * i + 1] for i in idx])
                P[:, cols] = self._jump(P[:, cols], g, np.array([phases[i][ell][1] for i in idx]))
        if not np.all(np.isfinite(P)):
            raise DivergenceError("exact recursion produced non-finite values")
        return [self._breakdown(P[:, 2 * k:2 * k + 2]) for k in range(len(phases))]

    def run(self, schedule: Schedule, checkpoints=None, method: str = "auto"):
        """Expected risk after the whole schedule (a RiskBreakdown), or a list of them at the given checkpoints.

        method: "step" (plain recursion), "jump" (closed-form phases) or "auto" (jump unless a phase is short).
        Checkpoints never split a phase: its map is applied once and read out at each checkpoint inside it.
        """
        return self.run_phases(schedule.phases(), checkpoints, method)

    def run_phases(self, phases, checkpoints=None, method: str = "auto"):
        """``run`` for an explicit list of constant-step phases [(g, n), ...] (any piecewise-constant schedule)."""
        if method not in ("auto", "step", "jump"):
            raise ParameterError("method", method, "one of auto, step, jump")
        phases = self._check_phases(phases)
        N = sum(n for _, n in phases)
        cps = sorted(set(int(c) for c in ([N] if checkpoints is None else checkpoints)))
        if cps[0] < 0 or cps[-1] > N:
            raise ParameterError("checkpoints", cps, f"integers in [0, N={N}]")
        P = np.stack([self.q0, np.zeros_like(self.q0)], axis=1)
        reads = [] if cps[0] > 0 else [self.w @ P]
        ci, t = len(reads), 0
        for g, n in phases:
            inside = []
            while ci < len(cps) and cps[ci] <= t + n:
                inside.append(cps[ci] - t); ci += 1
            use_step = method == "step" or (method == "auto" and n <= _step_max(len(self.mu))
                                             and (g, self.batch) not in self.cache)
            if use_step:
                P, out = self._step(P, g, n, inside)
            else:
                P, out = self._jump(P, g, n, [(0, k) for k in inside])
            reads.extend(out)
            t += n
        if not np.all(np.isfinite(P)) or not np.all(np.isfinite(reads)):
            raise DivergenceError(f"exact recursion produced non-finite values at gamma={phases[0][0]}")
        out = [RiskBreakdown(self.sigma2, self.approx, max(b, 0.0), max(v, 0.0)) for b, v in reads]
        return out if checkpoints is not None else out[-1]

    def _breakdown(self, P: np.ndarray) -> RiskBreakdown:
        bias, var = (self.w @ P).tolist()
        return RiskBreakdown(self.sigma2, self.approx, max(bias, 0.0), max(var, 0.0))


def use_threads(n: int) -> None:
    """Run the engine's parallel loops on ``n`` threads (at most numba's own limit). A workflow job passes the threads
    Snakemake gave it: Snakemake sets the BLAS libraries' thread counts for each job, not numba's, and jobs running
    side by side would otherwise each start a thread per core."""
    import numba

    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel on a tiny problem: a fresh clone's first call compiles for
    tens of seconds, later processes load the cache (next to the sources, or in the user's cache directory when the
    tree is read-only) in about a second. Meant for an install step, so the workflow's jobs never compile."""
    mu = np.array([0.5, 0.2, 0.2, 0.05])
    engine = ExactEngine(mu, np.ones(4), 1.0, 0.1)
    engine.run(Schedule(0.1, 100), checkpoints=[10, 100], method="jump")
    engine.run(Schedule(0.1, 100), method="step")
    engine.run_many([Schedule(0.1, 50), Schedule(0.1, 100)])


# "auto" steps a phase of n <= _step_max(M) steps instead of decomposing it. Measured (one thread, 2026-12, the
# kernels of docs/METHODS.md §5): a new phase map and its jump cost ~0.35 ms + 4.3–5.5 ns × M², a step ~1.2 ns × M
# (1.7 at M = 4096), so the break-even is n ≈ 60 M at M = 64, 12 M at 256, 4.5 M at 1024, 2.5 M at 4096 (about half
# that for the map on two threads). Stepping is kept below it, where it is surely cheaper: n <= M + 2^17 / M.
def _step_max(M: int) -> int:
    return M + (1 << 17) // max(M, 1)
