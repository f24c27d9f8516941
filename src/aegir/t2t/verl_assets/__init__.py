"""Files handed to VERL: `reward.py` is the custom reward module (`custom_reward_function.path`)."""
