"""How many photos a parity gate may lose on a sample of n, and how sure the sample is.

A share measured on a few dozen photos is coarse: on a 37-photo test split one photo is 2.7
points, so a plain "agreement >= 98%" would fail an artefact on a single photo whose float
scores sit near a tie. `edgetl verify` therefore gates on counts:

    an artefact fails only when its sample shows, at 95% one-sided confidence (the Wilson score
    interval), that the true share of photos it loses is above the allowed share.

`allowed_count(n, share)` is the largest count that passes; verify prints it beside the Wilson
interval of the agreement. The rule is the same at every sample size; it allows about
`share * n + 1.6 * sqrt(share * n)` photos (n = 37 at 2%: 2; n = 310: 10; n = 1000: 27), so a
bigger sample makes the gate sharper, never looser in share.
"""

from __future__ import annotations

import math

Z_ONE_SIDED_95 = 1.645
SMALL_SAMPLE = 200
"""Below this many photos the verify report prints the interval and the allowance on every row."""


def wilson_interval(successes: int, n: int, z: float = Z_ONE_SIDED_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share `successes / n` (z = 1.645: 90% two-sided).

    Returns (0.0, 1.0) for an empty sample.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 or 1 the bound on that side is exactly p; rounding would put it a hair inside.
    low = 0.0 if successes == 0 else (centre - half) / denom
    high = 1.0 if successes == n else (centre + half) / denom
    return low, high


def allowed_count(n: int, share: float) -> int:
    """Most photos out of `n` an artefact may lose before the sample shows it loses more than `share`.

    That is the largest k whose Wilson lower bound (`wilson_interval(k, n)[0]`) is at most
    `share`; 0 <= k <= n, or -1 when `share` is negative (a threshold above 100%: nothing passes).
    """
    if share < 0:
        return -1
    if n <= 0:
        return 0
    k = 0
    while k < n and wilson_interval(k + 1, n)[0] <= share + 1e-12:
        k += 1
    return k


__all__ = ["SMALL_SAMPLE", "allowed_count", "wilson_interval"]
