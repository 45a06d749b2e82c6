"""Routes of the update manager: artifacts and rollouts."""
