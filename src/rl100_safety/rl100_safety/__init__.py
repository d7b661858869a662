"""The rl100 safety and intervention node package."""
