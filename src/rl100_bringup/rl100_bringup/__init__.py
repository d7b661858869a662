"""Bringup of the rl100 node graphs (launch files, parameters, and a launch-free supervisor)."""
