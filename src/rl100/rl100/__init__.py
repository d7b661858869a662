"""RL-100 learning core.

Diffusion-policy imitation, iterative offline RL and online RL over the denoising MDP,
consistency distillation, ONNX export, the shared policy runtime and the simulated tasks.
Nothing in this package imports rclpy: the ROS packages are thin wiring over it.
"""

__version__ = "0.1.0"
