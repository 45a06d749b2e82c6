"""Updates for the fleet: artifacts (models, software, config) and their staged rollouts."""
