"""A sketched problem instance and its exact reduction to an M-dimensional Gaussian regression.

Notation (docs/METHODS.md §2, §3): sketch S ∈ R^{M×d} with i.i.d. N(0, 1/M) entries (the paper's; other sketch
families: ``SKETCH_FAMILIES``, docs/METHODS.md §19), Σ = S H Sᵀ = U diag(μ) Uᵀ,
best sketched parameter v* = Σ⁻¹ S H w*, approximation error Approx = ‖Sᵀv* − w*‖²_H. Given (S, w*), SGD on the
sketched features is SGD on a well-specified regression in R^M with covariance Σ, target v* and noise variance
σ_M² = σ² + Approx (docs/METHODS.md §3), so only (μ, Uᵀv*, Approx) matter.

S is never held whole: its columns are drawn in fixed chunks of ``CHUNK`` columns, each chunk from its own random
stream (``seeds.rng(seed, SKETCH, M, chunk)``; other families add their own tag), so memory is O(M² + M·CHUNK), any
chunk can be regenerated on demand, and the sketch for a smaller d is a prefix of the one for a larger d (the SRHT's
only while d rounds up to the same power of two). A sparse sign sketch is held and multiplied as a sparse matrix.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.linalg.blas import dsyrk

from sketchlaw import __version__
from sketchlaw import seeds
from sketchlaw.atomic import atomic_write
from sketchlaw.errors import ParameterError, check_int, check_real
from sketchlaw.engine.spectra import Prior, Spectrum, tail_sums

CHUNK = 1024
FORMAT_VERSION = 1


# Sketch families (docs/METHODS.md §19). Every family has E[S_i S_iᵀ] = I/M for each column S_i, the Gaussian's second
# moment, so the mean-field tail (§9) and the deterministic equivalent's normalisation carry over unchanged.
#   gaussian    i.i.d. N(0, 1/M) entries (the paper's)
#   rademacher  i.i.d. ±1/√M entries
#   sparse<s>   each column has s nonzeros ±1/√s in s distinct rows drawn uniformly (s = 1: CountSketch)
#   srht        subsampled randomized Hadamard transform: √(n/M)·P·H_n·D on x padded with zeros to n = 2^⌈log2 d⌉,
#               H_n the orthonormal Walsh–Hadamard matrix, D random signs, P M distinct rows: entries ±1/√M
SKETCH_FAMILIES = ("gaussian", "rademacher", "sparse<s>", "srht")
_SKETCH_PATTERN = re.compile(r"^(gaussian|rademacher|srht|sparse([1-9][0-9]*))$")
# Stream tags of the families other than the Gaussian (whose streams are (seed, SKETCH, M, chunk), unchanged).
_FAMILY_TAG = {"rademacher": 1, "sparse": 2, "srht": 3}


def sketch_family(label: str) -> tuple[str, int]:
    """(kind, s) of a sketch family's label: ('gaussian', 0), ('rademacher', 0), ('sparse', s), ('srht', 0)."""
    m = _SKETCH_PATTERN.match(str(label))
    if not m:
        raise ParameterError("sketch", label, "one of gaussian, rademacher, sparse<s> (s >= 1 nonzeros per column), "
                                              "srht")
    return ("sparse", int(m.group(2))) if m.group(2) else (m.group(1), 0)


def check_sketch(label: str, M: int) -> tuple[str, int]:
    """``sketch_family``, refusing a sparse sketch with more nonzeros per column than rows (s > M)."""
    kind, s = sketch_family(label)
    if kind == "sparse" and s > M:
        raise ParameterError("sketch", label, f"sparse<s> with s <= M = {M} (s distinct rows per column)")
    return kind, s


def _sparse_rows(gen: np.random.Generator, width: int, M: int, s: int) -> np.ndarray:
    """s distinct rows in [0, M) per column, uniform over s-subsets (Floyd's algorithm, vectorized over columns):
    O(width·s²) work, no M-wide draw."""
    rows = np.empty((width, s), dtype=np.int64)
    for i, j in enumerate(range(M - s, M)):
        t = gen.integers(0, j + 1, size=width)
        taken = (rows[:, :i] == t[:, None]).any(axis=1)
        rows[:, i] = np.where(taken, j, t)
    return rows


def _sparse_chunk(seed: int, M: int, d: int, k: int, s: int):
    """Chunk k of Sᵀ for a sparse sign sketch (width × M, s nonzeros ±1/√s per row), as a scipy CSR matrix (scipy.sparse
    is imported here: every job of a dense sketch would otherwise pay for its import)."""
    from scipy import sparse

    width = min(CHUNK, d - k * CHUNK)
    gen = seeds.rng(seed, seeds.SKETCH, M, k, _FAMILY_TAG["sparse"], s)
    rows = _sparse_rows(gen, width, M, s)
    signs = (2.0 * gen.integers(0, 2, size=(width, s)) - 1.0) / np.sqrt(s)
    indptr = np.arange(0, width * s + 1, s)
    order = np.argsort(rows, axis=1, kind="stable")  # sorted column indices within each row (canonical CSR)
    return sparse.csr_matrix((np.take_along_axis(signs, order, 1).ravel(),
                              np.take_along_axis(rows, order, 1).ravel(), indptr), shape=(width, M))


@functools.lru_cache(maxsize=8)
def _srht_rows(seed: int, M: int, d: int) -> np.ndarray:
    """The SRHT's M distinct rows of H_n, n = 2^⌈log2 d⌉, from the sketch seed's own stream."""
    n = 1 << max(0, int(d - 1).bit_length())
    if M > n:
        raise ParameterError("M", M, f"M <= {n} (the SRHT's padded dimension for d = {d})")
    gen = seeds.rng(seed, seeds.SKETCH, M, -1 % 2**32, _FAMILY_TAG["srht"], n)
    return np.sort(gen.choice(n, size=M, replace=False)).astype(np.int64)


def sketch_chunk(seed: int, M: int, d: int, k: int, sketch: str = "gaussian"):
    """Chunk k of Sᵀ: rows [k·CHUNK, min(d, (k+1)·CHUNK)) of Sᵀ (shape width × M) of the family ``sketch``: a dense
    array, or for a sparse sign sketch a scipy CSR matrix.

    Drawn as (width, M) so that a shorter last chunk is a prefix of the full chunk's stream.
    """
    kind, s = check_sketch(sketch, M)
    if kind == "sparse":
        return _sparse_chunk(seed, M, d, k, s)
    width = min(CHUNK, d - k * CHUNK)
    out = np.empty((width, M))
    _draw_chunk(seed, M, k, out, sketch, d)
    return out


def _draw_chunk(seed: int, M: int, k: int, out: np.ndarray, sketch: str = "gaussian", d: int = 0) -> None:
    """Chunk k of Sᵀ of a dense family into ``out`` (rows × M, C-contiguous): the same numbers as drawing a new
    array, in place (``d`` is needed by the SRHT only: its padded dimension)."""
    kind, _ = sketch_family(sketch)
    if kind == "gaussian":
        seeds.rng(seed, seeds.SKETCH, M, k).standard_normal(out=out)
    elif kind == "rademacher":
        gen = seeds.rng(seed, seeds.SKETCH, M, k, _FAMILY_TAG["rademacher"])
        out[:] = 2.0 * gen.integers(0, 2, size=out.shape) - 1.0
    elif kind == "srht":
        # entry (j, r) of H_n·√n is (−1)^popcount(j & r) (Sylvester's Walsh–Hadamard matrix); D_j a sign per column j
        j = np.arange(k * CHUNK, k * CHUNK + out.shape[0], dtype=np.int64)
        D = 2.0 * seeds.rng(seed, seeds.SKETCH, M, k, _FAMILY_TAG["srht"]).integers(0, 2, size=len(j)) - 1.0
        parity = np.bitwise_count(np.bitwise_and.outer(j, _srht_rows(seed, M, d))) & 1
        out[:] = (1.0 - 2.0 * parity) * D[:, None]
    else:
        raise ParameterError("sketch", sketch, "a dense family (gaussian, rademacher, srht)")
    out *= 1.0 / np.sqrt(M)


# Chunks are multiplied in blocks of about this many bytes (wide enough for BLAS at small M), and the next block is
# drawn in a thread while the current one is multiplied (the generator and BLAS both release the GIL).
_BLOCK_BYTES = 32 * 2**20
# build_problem keeps a dense sketch of at most this many bytes between its two passes (M = 2048 at d = 8M: 256 MiB).
_KEEP_BYTES = 512 * 2**20


def _sketch_blocks(seed: int, M: int, d: int, sketch: str = "gaussian"):
    """Yield (start, stop, Sᵀ[start:stop]) in blocks of whole chunks, drawing the next block in the background (a
    sparse family's chunks one at a time, as sparse matrices: their draw costs O(CHUNK·s²))."""
    from concurrent.futures import ThreadPoolExecutor

    if sketch_family(sketch)[0] == "sparse":
        yield from sketch_chunks(seed, M, d, sketch)
        return
    per_block = max(1, _BLOCK_BYTES // (CHUNK * M * 8))
    n_chunks = (d + CHUNK - 1) // CHUNK
    starts = list(range(0, n_chunks, per_block))

    def draw(k0):
        k1 = min(n_chunks, k0 + per_block)
        start, stop = k0 * CHUNK, min(d, k1 * CHUNK)
        block = np.empty((stop - start, M))
        for k in range(k0, k1):
            _draw_chunk(seed, M, k, block[(k - k0) * CHUNK:min(d, (k + 1) * CHUNK) - start], sketch, d)
        return start, stop, block

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, starts[0])
        for i in range(len(starts)):
            item = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(draw, starts[i + 1])
            yield item


def sketch_chunks(seed: int, M: int, d: int, sketch: str = "gaussian"):
    """Yield (start, stop, Sᵀ[start:stop]) over the whole sketch, one chunk at a time (memory O(M·CHUNK))."""
    for k in range((d + CHUNK - 1) // CHUNK):
        yield k * CHUNK, min(d, (k + 1) * CHUNK), sketch_chunk(seed, M, d, k, sketch)


def full_sketch(seed: int, M: int, d: int, sketch: str = "gaussian") -> np.ndarray:
    """The whole M × d sketch S (for tests and the naive reference only)."""
    return np.concatenate([_dense(St) for _, _, St in sketch_chunks(seed, M, d, sketch)]).T.copy()


def _dense(St) -> np.ndarray:
    return St if isinstance(St, np.ndarray) else St.toarray()


def _scaled_rows(St, v: np.ndarray):
    """diag(v)·Sᵀ-block, in place for a dense block (a sparse one scales its stored values only)."""
    if not isinstance(St, np.ndarray):
        St.data *= np.repeat(v, np.diff(St.indptr))
        return St
    St *= v[:, None]
    return St


def _add_gram(SigmaF: np.ndarray, St) -> np.ndarray:
    """SigmaF += (Sᵀ-block)ᵀ(Sᵀ-block) on the upper triangle at least: BLAS syrk for a dense block (half the flops of a
    general product, no M × M temporary), the sparse product for a sparse one (O(CHUNK·s²) nonzeros)."""
    if not isinstance(St, np.ndarray):
        G = (St.T @ St).tocoo()
        SigmaF[G.row, G.col] += G.data  # sparse products carry no duplicate entries
        return SigmaF
    # a C-ordered block A (rows × M) is the Fortran matrix Aᵀ, so syrk(Aᵀ) adds AᵀA to one triangle.
    return dsyrk(1.0, St.T, beta=1.0, c=SigmaF, trans=0, lower=0, overwrite_c=1)


@dataclass
class Problem:
    """The reduced problem for one sketch: everything the exact and Monte Carlo engines need.

    Attributes (Σ = S H Sᵀ = U diag(mu) Uᵀ, eigenvalues in decreasing order):
      mu      eigenvalues μ_1 ≥ ... ≥ μ_M of Σ
      U       eigenvectors of Σ (columns), used to rotate sampled targets into the eigenbasis (None when
              loaded from a file saved without them)
      p0      prior-averaged initial error profile p_j(0) = (Uᵀ E[v* v*ᵀ] U)_jj (SGD starts at v_0 = 0)
      approx  prior-averaged approximation error E_{w*} Approx(S, w*)
      sigma2  label-noise variance σ²
      meta    parameters, seed and versions (provenance)
    """

    mu: np.ndarray
    U: np.ndarray
    p0: np.ndarray
    approx: float
    sigma2: float
    spectrum: Spectrum
    prior: Prior
    M: int
    seed: int
    meta: dict = field(default_factory=dict)
    sketch: str = "gaussian"

    @property
    def noise(self) -> float:
        """σ_M² = σ² + E Approx: the effective noise variance of the reduced problem (prior-averaged)."""
        return self.sigma2 + self.approx

    @property
    def trace(self) -> float:
        return float(np.sum(self.mu))

    def sample_targets(self, n: int, seed: int):
        """Draw n targets w* from the prior; return (Uᵀv* with shape (n, M), Approx(S, w*) with shape (n,)).

        Exact per draw: v* = Σ⁻¹ S H w* and Approx = ‖H^{1/2}w*‖² − cᵀΣ⁻¹c with c = S H w*, accumulated chunk by
        chunk over S (regenerated from the sketch seed), so memory stays O(M·CHUNK + n·CHUNK).
        """
        n = check_int("trials", n, minimum=1)
        M = self.M
        c, energy = self._project(lambda k: self.target_chunk(n, seed, k), n)
        if self.meta.get("tail") == "mean":  # the tail's part of c = S H w* is N(0, τ_H2L/M · I); its energy its mean
            c += np.sqrt(self.meta["tau_H2L"] / M) * seeds.rng(seed, seeds.TARGET, M, -1 % 2**32).standard_normal((M, n))
            energy += self.meta["tau_HL"]
        return self._in_eigenbasis(c, energy)

    def target(self, w: np.ndarray):
        """One given target w* (length d, no tail): (Uᵀv* with shape (M,), Approx(S, w*)), exact as in
        ``sample_targets``."""
        w = np.asarray(w, dtype=float).reshape(-1, 1)
        c, energy = self._project(lambda k: w[k * CHUNK:(k + 1) * CHUNK], 1)
        theta, approx = self._in_eigenbasis(c, energy)
        return theta[0], float(approx[0])

    def _project(self, chunk_of, n: int):
        """(c = S H W, ‖H^{1/2}W‖² per column) for n targets W given chunk by chunk (``chunk_of(k)``: width × n),
        accumulated over S's chunks (regenerated from the sketch seed): memory O(M·CHUNK + n·CHUNK)."""
        sp = self.spectrum
        c = np.zeros((self.M, n))
        energy = np.zeros(n)
        for start, stop, St in sketch_chunks(self.seed, self.M, sp.d, self.sketch):
            w = chunk_of(start // CHUNK)
            hw = sp.eigenvalues(start, stop)[:, None] * w
            c += St.T @ hw
            energy += np.einsum("ij,ij->j", w, hw)
        return c, energy

    def _in_eigenbasis(self, c: np.ndarray, energy: np.ndarray):
        """(Uᵀv* per target, shape (n, M); Approx per target) from c = S H w* and the targets' energies."""
        ct = self.U.T @ c  # (M, n) in Σ's eigenbasis
        v_eig = ct / self.mu[:, None]
        approx = energy - np.einsum("ij,ij->j", ct, v_eig)
        return v_eig.T.copy(), np.maximum(approx, 0.0)

    def target_chunk(self, n: int, seed: int, k: int) -> np.ndarray:
        """Coordinates [k·CHUNK, ...) of n prior draws of w* (shape width × n), from stream (seed, TARGET, M, k)."""
        start, stop = k * CHUNK, min(self.spectrum.d, (k + 1) * CHUNK)
        sd = np.sqrt(self.prior.variances(self.spectrum, start, stop))
        return seeds.rng(seed, seeds.TARGET, self.M, k).standard_normal((stop - start, n)) * sd[:, None]

    def targets(self, n: int, seed: int) -> np.ndarray:
        """The n full-dimensional draws of w* that ``sample_targets(n, seed)`` uses (shape d × n; tests only)."""
        return np.concatenate([self.target_chunk(n, seed, k) for k in range((self.spectrum.d + CHUNK - 1) // CHUNK)])

    # ---------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write one .npz atomically (a temp file renamed into place: no half-written output)."""
        meta = dict(self.meta, spectrum=asdict(self.spectrum), prior=asdict(self.prior), M=self.M,
                    seed=self.seed, sigma2=self.sigma2, approx=self.approx, format_version=FORMAT_VERSION)
        arrays = {"mu": self.mu, "U": self.U, "p0": self.p0, "meta": np.array(json.dumps(meta, sort_keys=True))}

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # uncompressed: U is incompressible noise, zlib only costs time

        atomic_write(path, write)

    @classmethod
    def load(cls, path) -> "Problem":
        """Read a problem written by ``save``."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(mu=z["mu"], U=z["U"], p0=z["p0"], approx=float(meta["approx"]), sigma2=float(meta["sigma2"]),
                       spectrum=Spectrum(**meta["spectrum"]), prior=Prior(**meta["prior"]), M=int(meta["M"]),
                       seed=int(meta["seed"]), meta=meta, sketch=meta.get("sketch", "gaussian"))


TAILS = ("mean", "none")


def build_problem(spectrum: Spectrum, M: int, sigma2: float, seed: int, prior: Prior | None = None,
                  tail: str = "none", sketch: str = "gaussian") -> Problem:
    """Draw the sketch of family ``sketch`` for ``seed`` and reduce it: Σ, its eigendecomposition, E Approx and E p(0).

    Two passes over S, block by block (memory O(M² + M·CHUNK); a dense S of at most ``_KEEP_BYTES`` is kept between
    the passes rather than drawn twice). The first accumulates Σ = S H Sᵀ and its
    eigendecomposition U diag(μ) Uᵀ. The second accumulates, with C = S H Λ_w^{1/2} (Λ_w the prior covariance),
    t_j = ‖u_jᵀ C‖² = (Uᵀ C Cᵀ U)_jj, a sum of squares: forming T = C Cᵀ first and then u_jᵀ T u_j would carry an
    absolute error ε‖T‖, which swamps t_j ~ μ_j² once μ_j < 1e-8 (a ≥ 3 at M ~ 1000 gave p(0) < 0). Then
    (docs/METHODS.md §3)   E Approx = tr(H Λ_w) − Σ_j t_j / μ_j,      p_j(0) = t_j / μ_j².
    """
    prior = prior or Prior()
    M = check_int("M", M, minimum=1)
    if M > spectrum.d:
        raise ParameterError("M", M, f"an integer with 1 <= M <= d = {spectrum.d}")
    sigma2 = check_real("sigma2", sigma2, ge=0.0)
    seed = check_int("seed", seed, minimum=0)
    if tail not in TAILS:
        raise ParameterError("tail", tail, f"one of {', '.join(TAILS)}")
    check_sketch(sketch, M)
    SigmaF = np.zeros((M, M), order="F")
    tr_HL = 0.0
    # A dense sketch small enough is kept from the first pass for the second instead of drawn again (the same numbers:
    # the blocks are scaled into a scratch buffer, not in place); a larger one is regenerated (memory O(M² + M·CHUNK)).
    kept = [] if sketch_family(sketch)[0] != "sparse" and M * spectrum.d * 8 <= _KEEP_BYTES else None
    scratch = None
    for start, stop, St in _sketch_blocks(seed, M, spectrum.d, sketch):
        lam = spectrum.eigenvalues(start, stop)
        if kept is None:
            scaled = _scaled_rows(St, np.sqrt(lam))
        else:
            kept.append((start, stop, St))
            scratch = np.empty_like(St) if scratch is None else scratch
            scaled = np.multiply(St, np.sqrt(lam)[:, None], out=scratch[:len(St)])
        SigmaF = _add_gram(SigmaF, scaled)
        tr_HL += float(np.dot(lam, prior.variances(spectrum, start, stop)))
    del scratch
    Sigma = np.triu(SigmaF)
    Sigma += np.triu(SigmaF, 1).T
    del SigmaF
    taus = tail_sums(spectrum, prior) if tail == "mean" else {"tau_H": 0.0, "tau_HL": 0.0, "tau_H2L": 0.0}
    # Mean-field tail: the coordinates i > d add Σ_{i>d} λ_i s_i s_iᵀ to Σ, whose mean is (τ_H / M)·I (for every
    # family: E[s_i s_iᵀ] = I/M) and whose fluctuation is smaller by sqrt(Σ λ_i²)/Σ λ_i (negligible for the d used
    # here); likewise for C Cᵀ and tr(HΛ_w).
    Sigma[np.diag_indices(M)] += taus["tau_H"] / M
    tr_HL += taus["tau_HL"]
    mu, U = np.linalg.eigh(Sigma)
    mu, U = mu[::-1].copy(), U[:, ::-1].copy()
    if not mu[-1] > 0:
        raise ParameterError("M", M, f"small enough that S H Sᵀ is positive definite (smallest eigenvalue {mu[-1]:.3g})")
    t_diag = np.full(M, taus["tau_H2L"] / M)  # uᵀ(cI)u = c for the tail's mean (U is orthonormal)
    for start, stop, St in kept if kept is not None else _sketch_blocks(seed, M, spectrum.d, sketch):
        lam = spectrum.eigenvalues(start, stop)
        G = np.asarray(St @ U)
        G *= (lam * np.sqrt(prior.variances(spectrum, start, stop)))[:, None]  # (Cᵀ U) rows of this block
        t_diag += np.einsum("ij,ij->j", G, G)
    approx = max(tr_HL - float(np.sum(t_diag / mu)), 0.0)
    p0 = t_diag / mu**2
    import numpy, scipy

    meta = {"sketchlaw": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "chunk_columns": CHUNK, "sketch_entries": "N(0, 1/M)", "tail": tail, **taus}
    if sketch != "gaussian":  # the Gaussian's metadata stay as they were (its problems' files are unchanged)
        meta.update(sketch=sketch, sketch_entries=f"family {sketch} (docs/METHODS.md §19)")
    return Problem(mu=mu, U=U, p0=p0, approx=approx, sigma2=sigma2, spectrum=spectrum, prior=prior, M=M, seed=seed,
                   meta=meta, sketch=sketch)


def _qr_in_place(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Q, R) of the reduced QR factorization of A (m × n, m ≥ n, Fortran order), Q overwriting A: LAPACK's dgeqrf and
    dorgqr with their optimal workspaces, as ``numpy.linalg.qr`` calls them (the same numbers, bit for bit), without
    the three working copies of A numpy makes. At d × M = 16384 × 2048 those copies are 0.8 GB of fresh memory, and
    on a VM that returns freed memory to its host, first touching fresh memory costs about as much as the QR itself."""
    from scipy.linalg import lapack

    m, n = A.shape
    qr, tau, _, info = lapack.dgeqrf(A, lwork=int(lapack.dgeqrf_lwork(m, n)[0]), overwrite_a=1)
    if info != 0 or qr is not A:
        raise np.linalg.LinAlgError(f"dgeqrf failed (info {info}) or did not factor in place")
    R = np.triu(qr[:n])
    lwork = int(lapack.dorgqr(qr, tau, lwork=-1)[1][0])
    Q, _, info = lapack.dorgqr(qr, tau, lwork=lwork, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dorgqr failed (info {info})")
    return Q, R


class NestedSketches:
    """Sketches of every size M ≤ M_max that share their rows: S_M is the first M rows of the M_max × d sketch of
    ``seed`` (``build_problem``'s, so ``problem(M_max)`` is that problem), rescaled to entries N(0, 1/M). Neighbouring
    sizes then differ by a few rows instead of being independent draws, so the risk is a smooth function of M for
    one family: what locating a minimum over M (the compute-optimal frontier, docs/METHODS.md §13) needs.

    One pass over the sketch factors B = S_max H^{1/2} as Bᵀ = Q R (Householder QR, d × M_max, memory O(d·M_max)).
    Since R is upper triangular, B's first M rows are R_Mᵀ Q_Mᵀ (R_M, Q_M the leading blocks), so with
    P = Qᵀ diag(λ s) Q, v_j = R_M u_j and c = M_max / M,
        Σ_M = c·R_Mᵀ R_M + (τ_H/M)·I,          t_j = ‖u_jᵀ C_M‖² = c·v_jᵀ P_M v_j + τ_H2L/M,
    and each size costs O(M³). The QR keeps t_j's error relative to ‖v_j‖² ∝ μ_j rather than to ‖C Cᵀ‖ (the reason
    ``build_problem`` never forms C Cᵀ), which a Gram matrix R_MᵀR_M formed from S would lose.
    """

    def __init__(self, spectrum: Spectrum, M_max: int, seed: int, prior: Prior | None = None, tail: str = "none"):
        self.prior = prior or Prior()
        self.M_max = check_int("M", M_max, minimum=1)
        if self.M_max > spectrum.d:
            raise ParameterError("M", M_max, f"an integer with 1 <= M <= d = {spectrum.d}")
        self.seed = check_int("seed", seed, minimum=0)
        if tail not in TAILS:
            raise ParameterError("tail", tail, f"one of {', '.join(TAILS)}")
        self.spectrum, self.tail = spectrum, tail
        Bt = np.empty((spectrum.d, self.M_max), order="F")  # Fortran order: factored in place
        weights = np.empty(spectrum.d)
        for start, stop, St in _sketch_blocks(self.seed, self.M_max, spectrum.d):
            lam = spectrum.eigenvalues(start, stop)
            Bt[start:stop] = St * np.sqrt(lam)[:, None]
            weights[start:stop] = lam * self.prior.variances(spectrum, start, stop)
        Q, self.R = _qr_in_place(Bt)
        del Bt
        Q *= np.sqrt(weights)[:, None]
        self.P = Q.T @ Q
        del Q
        self.taus = tail_sums(spectrum, self.prior) if tail == "mean" else {"tau_H": 0.0, "tau_HL": 0.0,
                                                                            "tau_H2L": 0.0}
        self.trace_HL = float(weights.sum()) + self.taus["tau_HL"]

    def problem(self, M: int) -> Problem:
        """The reduced problem of the family's sketch of size M (as ``build_problem`` returns it)."""
        M = check_int("M", M, minimum=1)
        if M > self.M_max:
            raise ParameterError("M", M, f"an integer with 1 <= M <= {self.M_max}, the family's largest sketch")
        c = self.M_max / M
        R = self.R[:M, :M]
        Sigma = c * (R.T @ R)
        Sigma[np.diag_indices(M)] += self.taus["tau_H"] / M
        mu, U = np.linalg.eigh(Sigma)
        mu, U = mu[::-1].copy(), U[:, ::-1].copy()
        if not mu[-1] > 0:
            raise ParameterError("M", M, f"small enough that S H Sᵀ is positive definite (smallest eigenvalue "
                                         f"{mu[-1]:.3g})")
        V = R @ U
        t_diag = c * np.einsum("ij,ij->j", V, self.P[:M, :M] @ V) + self.taus["tau_H2L"] / M
        approx = max(self.trace_HL - float(np.sum(t_diag / mu)), 0.0)
        meta = {"sketchlaw": __version__, "sketch_entries": "N(0, 1/M)", "nested_in": self.M_max,
                "tail": self.tail, **self.taus}
        return Problem(mu=mu, U=U, p0=t_diag / mu**2, approx=approx, sigma2=0.0, spectrum=self.spectrum,
                       prior=self.prior, M=M, seed=self.seed, meta=meta)
