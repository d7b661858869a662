"""Metric logging: one CSV (``metrics.csv``), TensorBoard event files, and a PNG learning curve.

Metric names are stable, cleanrl-style (``losses/train``, ``charts/lr``, ``charts/SPS``); the CSV gets a
column per name seen (rows written with the union of names so far; the header is rewritten when it grows).
"""

from __future__ import annotations

import csv
from pathlib import Path


class MetricLogger:
    def __init__(self, out_dir: str | Path, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        if self.csv_path.exists():  # resumed run: keep the history
            with open(self.csv_path, newline="") as f:
                self.rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out_dir / "tb"))
            except ImportError:  # tensorboard not installed: CSV only
                self.tb = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.rows = [r for r in self.rows if r.get("step", -1) < step]  # drop rows past a resume point
        self.rows.append({"step": float(step), **{k: float(v) for k, v in metrics.items()}})
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)
        self._write_csv()

    def _write_csv(self) -> None:
        names = ["step", *sorted({k for r in self.rows for k in r} - {"step"})]
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=names)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: (int(v) if k == "step" else v) for k, v in r.items()})
        tmp.replace(self.csv_path)

    def plot(self, keys: list[str], path: str | Path | None = None) -> Path | None:
        """PNG of ``keys`` against step (log-y); returns the path (None if matplotlib is missing or no data)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        path = Path(path) if path is not None else self.out_dir / "learning_curve.png"
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for k in keys:
            pts = [(r["step"], r[k]) for r in self.rows if k in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=k)
                drawn = True
        if not drawn:
            plt.close(fig)
            return None
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class NullLogger:
    """A :class:`MetricLogger` that writes nothing: the logger of the non-main ranks of a data-parallel run."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def plot(self, keys: list[str], path: str | Path | None = None) -> Path | None:
        return None

    def close(self) -> None:
        pass
