"""The rl100 policy node package."""
