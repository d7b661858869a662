"""The MuJoCo simulated robot behind the real robot's topics."""
