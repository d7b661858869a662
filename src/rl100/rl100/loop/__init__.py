"""RL-100's iterative offline RL as one resumable orchestration, and the scripted operator for human-in-the-loop
collection in simulation.

Modules: :mod:`~rl100.loop.run` (the round orchestrator, :func:`run_loop`), :mod:`~rl100.loop.ledger` (the
resumable step ledger), :mod:`~rl100.loop.steps` (the stages of a round), :mod:`~rl100.loop.collectors`
(the :class:`Collector` / :class:`Evaluator` interfaces and the in-process simulation implementation),
:mod:`~rl100.loop.operator` (the scripted operator, pure numpy), :mod:`~rl100.loop.config`,
:mod:`~rl100.loop.summary`, :mod:`~rl100.loop.cli` (``rl100 loop-sim``).
"""
