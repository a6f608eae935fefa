"""Per-member activity: the distribution of event rates across members, fitted through the
Poisson noise of the counts.

A member seen ``c`` times in ``T`` days did not act at rate ``c / T``: its count is a Poisson
draw around its rate, and members who happened not to act are missing from the log.  Fitting
the rates' histogram directly would widen the distribution (the simulation adds the Poisson
noise a second time) and lose the silent members.  So each family is fitted by maximum
likelihood of the compound model: ``c ~ Poisson(rate x T)``, ``rate ~ family``, conditioned on
``c >= 1``; and the world's population is inflated by the fitted chance of a silent member.

Families: gamma (then the counts are negative binomial: exact), lognormal and Pareto
(numerical integration over a log-spaced grid of rates for small counts; for large counts the
Poisson is narrow and the count's chance is the rate density at ``c / T``).  A family is kept
when the fitted count distribution passes a Kolmogorov-Smirnov test (alpha 0.01) against the
observed counts (and is believable: at least 30 members, a finite mean, at most as many silent
members as seen ones); the best likelihood among those wins, else the empirical quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special, stats

__all__ = ["ActivityFit", "fit_activity", "safe_quantiles"]

MIN_MEMBERS = 30  # fewer members: the empirical quantiles, not a family
MAX_SILENT = 0.5  # a fit implying more silent members than seen ones is not believed
_EXACT_MAX = 200  # counts up to this are integrated exactly; above, the Laplace approximation
_GRID = 800


@dataclass
class ActivityFit:
    """The chosen description of the rates (events per day) and how it was chosen."""

    family: str  # gamma, lognormal, pareto or quantiles
    params: dict[str, float]
    silent_share: float  # fitted share of members with no event in the log
    ks: dict[str, float] = field(default_factory=dict)  # family -> KS distance on the counts
    critical: float = 0.0
    loglik: dict[str, float] = field(default_factory=dict)
    quantiles: tuple[list[float], list[float]] | None = None  # (probabilities, rates), always computed
    mean_rate: float = 0.0

    def generator(self) -> dict[str, Any]:
        """The world file's generator of a member's events per day."""
        p = self.params
        if self.family == "gamma":
            return {"numpy": {"method": "gamma", "shape": _r(p["shape"]), "scale": _r(p["scale"])}}
        if self.family == "lognormal":
            return {"numpy": {"method": "lognormal", "mean": _r(p["mu"]), "sigma": _r(p["sigma"])}}
        if self.family == "pareto":  # numpy's pareto is Lomax: (x + 1) * xm is Pareto(alpha, xm)
            xm = _r(p["xm"])
            return {
                "mapped": {"generator": {"numpy": {"method": "pareto", "a": _r(p["alpha"])}}, "multiply": xm, "add": xm}
            }
        assert self.quantiles is not None
        probs, values = self.quantiles
        return {"quantiles": {"values": [_r(v) for v in values], "probabilities": [_r(q) for q in probs]}}


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def safe_quantiles(values: np.ndarray, k: int, points: int = 101) -> tuple[list[float], list[float]]:
    """Quantiles no fewer than ``k`` observations decide: interior probabilities in
    ``[k/n, 1 - k/n]`` (finer towards the tail, where heavy tails live), and the two ends the
    means of the ``k`` smallest and ``k`` largest values (not the raw extremes)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n == 0:
        raise ValueError("no values to describe")
    k = max(1, min(k, n))
    base = np.linspace(0, 1, points)
    tail = 1 - np.logspace(-2, -4, 5)  # 0.99 .. 0.9999
    probs = np.unique(np.round(np.concatenate([base, tail, 1 - tail]), 10))
    lo, hi = k / n, 1 - k / n
    inner = probs[(probs >= lo) & (probs <= hi) & (probs > 0) & (probs < 1)]
    q = np.quantile(v, inner) if len(inner) else np.zeros(0)
    low, high = float(v[:k].mean()), float(v[-k:].mean())
    values_out = np.concatenate([[low], q, [high]])
    values_out = np.maximum.accumulate(np.clip(values_out, low, high))
    probs_out = np.concatenate([[0.0], inner, [1.0]])
    return probs_out.tolist(), values_out.tolist()


# --- the compound likelihoods ------------------------------------------------------------------


def _log_density(family: str, theta: np.ndarray, rate: np.ndarray) -> np.ndarray:
    if family == "lognormal":
        mu, sigma = theta[0], np.exp(theta[1])
        return stats.norm.logpdf(np.log(rate), mu, sigma) - np.log(rate)
    if family == "pareto":
        alpha, xm = np.exp(theta[0]), np.exp(theta[1])
        out = np.log(alpha) + alpha * np.log(xm) - (alpha + 1) * np.log(np.maximum(rate, xm))
        return np.where(rate >= xm, out, -np.inf)
    raise ValueError(family)


def _cdf_rate(family: str, theta: np.ndarray, rate: np.ndarray) -> np.ndarray:
    if family == "lognormal":
        return stats.norm.cdf(np.log(rate), theta[0], np.exp(theta[1]))
    alpha, xm = np.exp(theta[0]), np.exp(theta[1])
    return np.where(rate >= xm, 1 - (xm / np.maximum(rate, xm)) ** alpha, 0.0)


def _log_pmf(family: str, theta: np.ndarray, counts: np.ndarray, span: float, grid: np.ndarray) -> np.ndarray:
    """log P(count = c) under the compound model, for each c in ``counts`` (0 allowed)."""
    if family == "gamma":
        k, scale = np.exp(theta[0]), np.exp(theta[1])
        p = 1.0 / (1.0 + scale * span)
        return stats.nbinom.logpmf(counts, k, p)
    out = np.empty(len(counts))
    small = counts <= _EXACT_MAX
    if small.any():
        if family == "pareto":  # its density jumps at xm: start the grid there, not across it
            xm = float(np.exp(theta[1]))
            grid = np.geomspace(xm, max(grid[-1], xm * 10), len(grid))
        c = counts[small][:, None].astype(float)
        log_grid = np.log(grid)
        lam = grid[None, :] * span
        log_pois = c * np.log(lam) - lam - special.gammaln(c + 1)
        dens = _log_density(family, theta, grid)[None, :]
        # trapezoid rule in log(rate) (d rate = rate d log(rate)): half weights at both ends
        gaps = np.diff(log_grid)
        trap = np.concatenate([[gaps[0] / 2], (gaps[:-1] + gaps[1:]) / 2, [gaps[-1] / 2]])
        out[small] = special.logsumexp(log_pois + dens + log_grid[None, :] + np.log(trap)[None, :], axis=1)
    if (~small).any():
        c = counts[~small].astype(float)
        out[~small] = _log_density(family, theta, c / span) - np.log(span)
    return out


def _truncated_loglik(
    family: str, theta: np.ndarray, values: np.ndarray, weights: np.ndarray, span: float, grid: np.ndarray
) -> float:
    lp = _log_pmf(family, theta, values, span, grid)
    p0 = float(np.exp(_log_pmf(family, theta, np.zeros(1, dtype=np.int64), span, grid)[0]))
    if not np.isfinite(lp).all() or p0 >= 1 - 1e-12:
        return -np.inf
    return float((weights * lp).sum() - weights.sum() * np.log1p(-p0))


def _count_cdf(family: str, theta: np.ndarray, values: np.ndarray, span: float, grid: np.ndarray) -> np.ndarray:
    """The fitted distribution function of counts (given c >= 1) at each value."""
    top = int(min(values.max(), _EXACT_MAX))
    exact = np.exp(_log_pmf(family, theta, np.arange(0, top + 1), span, grid))
    p0 = exact[0]
    cum = np.cumsum(exact)
    out = np.empty(len(values))
    small = values <= _EXACT_MAX
    out[small] = cum[values[small]]
    if (~small).any():
        if family == "gamma":
            k, scale = np.exp(theta[0]), np.exp(theta[1])
            out[~small] = stats.nbinom.cdf(values[~small], k, 1.0 / (1.0 + scale * span))
        else:
            base = _cdf_rate(family, theta, np.array([(_EXACT_MAX + 0.5) / span]))[0]
            out[~small] = cum[-1] + _cdf_rate(family, theta, (values[~small] + 0.5) / span) - base
    return np.clip((out - p0) / max(1 - p0, 1e-300), 0.0, 1.0)


def _start(family: str, rates: np.ndarray) -> np.ndarray:
    logs = np.log(rates)
    if family == "gamma":
        m, v = rates.mean(), max(rates.var(), 1e-12)
        return np.log([max(m * m / v, 1e-3), v / m])
    if family == "lognormal":
        return np.array([logs.mean(), np.log(max(logs.std(), 1e-3))])
    xm = np.quantile(rates, 0.02)
    alpha = 1.0 / max(np.mean(np.log(rates[rates >= xm] / xm)), 1e-3)
    return np.log([alpha, xm])


def _params(family: str, theta: np.ndarray) -> dict[str, float]:
    if family == "gamma":
        return {"shape": float(np.exp(theta[0])), "scale": float(np.exp(theta[1]))}
    if family == "lognormal":
        return {"mu": float(theta[0]), "sigma": float(np.exp(theta[1]))}
    return {"alpha": float(np.exp(theta[0])), "xm": float(np.exp(theta[1]))}


def _mean(family: str, params: dict[str, float]) -> float:
    if family == "gamma":
        return params["shape"] * params["scale"]
    if family == "lognormal":
        return float(np.exp(params["mu"] + params["sigma"] ** 2 / 2))
    a = params["alpha"]
    return float(a * params["xm"] / (a - 1)) if a > 1 else float("inf")


def fit_activity(counts: np.ndarray, span_days: float, k: int = 5, alpha: float = 0.01) -> ActivityFit:
    """Fit the rates behind ``counts`` (events of each seen member in ``span_days``)."""
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    values, weights = np.unique(counts, return_counts=True)
    weights = weights.astype(float)
    rates = counts / span_days
    lo, hi = rates.min(), rates.max()
    grid = np.logspace(np.log10(lo / 1e3), np.log10(max(hi, _EXACT_MAX / span_days) * 10), _GRID)
    critical = float(np.sqrt(-np.log(alpha / 2) / 2) / np.sqrt(n))  # KS critical value, large n
    emp_cdf = np.cumsum(weights) / n
    fit = ActivityFit(family="quantiles", params={}, silent_share=0.0, critical=critical)
    best: tuple[float, str, np.ndarray] | None = None
    for family in ("gamma", "lognormal", "pareto"):
        x0 = _start(family, rates)

        def nll(theta: np.ndarray, family: str = family) -> float:
            ll = _truncated_loglik(family, theta, values, weights, span_days, grid)
            return 1e300 if not np.isfinite(ll) else -ll

        res = optimize.minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-6, "maxiter": 2000})
        theta = res.x
        ll = -float(res.fun)
        if not np.isfinite(ll) or ll < -1e299:
            continue
        model = _count_cdf(family, theta, values, span_days, grid)
        before = np.concatenate([[0.0], emp_cdf[:-1]])
        model_before = np.concatenate([[0.0], model[:-1]])
        d = float(max(np.abs(emp_cdf - model).max(), np.abs(before - model_before).max()))
        fit.ks[family], fit.loglik[family] = d, ll
        # a family is believable when it passes the test on enough members, has a finite mean,
        # and does not put most members among the unseen (an extrapolation the log cannot check)
        p0 = float(np.exp(_log_pmf(family, theta, np.zeros(1, dtype=np.int64), span_days, grid)[0]))
        believable = n >= MIN_MEMBERS and np.isfinite(_mean(family, _params(family, theta))) and p0 <= MAX_SILENT
        if d <= critical and believable and (best is None or ll > best[0]):
            best = (ll, family, theta)
    fit.quantiles = safe_quantiles(rates, k)
    if best is not None:
        _, family, theta = best
        fit.family, fit.params = family, _params(family, theta)
        p0 = float(np.exp(_log_pmf(family, theta, np.zeros(1, dtype=np.int64), span_days, grid)[0]))
        fit.silent_share = p0
        fit.mean_rate = _mean(family, fit.params)
    else:
        probs, qs = fit.quantiles
        # the silent share of members drawn from these quantiles: the mean of exp(-rate x T)
        u = np.linspace(0, 1, 10_001)
        r = np.interp(u, probs, qs)
        fit.silent_share = float(np.mean(np.exp(-r * span_days)))
        fit.mean_rate = float(np.trapezoid(r, u))
    return fit
