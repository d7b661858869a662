"""RL-100's reinforcement-learning core: the denoising MDP, IQL critics, PPO over denoising steps, GAE,
the OPE gate, the offline improvement round and online RL in simulation. Imports torch; never rclpy.

Modules: :mod:`~rl100.rl.denoising_mdp`, :mod:`~rl100.rl.critics`, :mod:`~rl100.rl.ppo`, :mod:`~rl100.rl.gae`,
:mod:`~rl100.rl.ope`, :mod:`~rl100.rl.transitions`, :mod:`~rl100.rl.offline`, :mod:`~rl100.rl.offline_cli`,
:mod:`~rl100.rl.online` (+ ``online_config``, ``online_rollout``, ``online_value``, ``online_cli``).
"""
