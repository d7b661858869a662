"""Time the policy node's per-tick cloud step: crop a 16,384-point cloud and sample 512 from it.

What a points model's observation costs before the model runs (``rl100.pointcloud.crop_and_sample``
with the shipped model's crop box and sampler), called 5 ms apart as in a control loop (code that
runs 100-200 times a second is colder than in a tight loop). Example::

    python scripts/bench_crop.py --points 16384 --calls 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16384, help="points in the incoming cloud")
    parser.add_argument("--n", type=int, default=512, help="points the model reads")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=5.0, help="sleep between calls")
    parser.add_argument("--finite-filter", action="store_true",
                        help="also drop non-finite points first (what the policy node did until 2026-11-27)")
    args = parser.parse_args()

    from rl100.pointcloud import crop_and_sample

    rng = np.random.default_rng(0)
    cloud = rng.uniform([0.0, -0.6, 0.0], [1.0, 0.6, 0.6], (args.points, 3)).astype(np.float32)
    cloud[::97] = np.nan  # pixels without depth
    lo, hi = np.array([0.05, -0.6, 0.004]), np.array([1.0, 0.6, 0.6])  # the shipped model's box
    times = []
    for i in range(args.calls + 20):
        time.sleep(args.gap_ms / 1e3)
        start = time.perf_counter()
        pts = cloud[np.all(np.isfinite(cloud), axis=1)] if args.finite_filter else cloud
        crop_and_sample(pts, None, lo, hi, args.n, rng, "random")
        if i >= 20:
            times.append((time.perf_counter() - start) * 1e3)
    print(f"crop_and_sample {args.points} -> {args.n} points, {args.gap_ms:g} ms apart: "
          f"p50 {np.median(times):.3f} ms, p95 {np.percentile(times, 95):.3f} ms")


if __name__ == "__main__":
    main()
