"""Training loops of rl100: imitation (``rl100 train-il``: :mod:`rl100.train.il`), consistency distillation
(``rl100 distill``: :mod:`rl100.train.distill`), simulated evaluation (``rl100 eval``: :mod:`rl100.train.evaluate`).
Shared pieces: :mod:`~rl100.train.config` (dataclass configs + YAML presets), :mod:`~rl100.train.lr` (the LR
schedule), :mod:`~rl100.train.logger` (CSV + TensorBoard + PNG), :mod:`~rl100.train.state` (exact-resume files),
:mod:`~rl100.train.distributed` (data-parallel runs under torchrun)."""
