"""Alembic migrations of the model registry, shipped inside the package and run by ModelRegistry.migrate()."""
