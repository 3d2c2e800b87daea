"""Migration scripts of the model registry, oldest first by revision chain."""
