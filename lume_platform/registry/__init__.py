"""The model registry: projects, models, deployments, flows and flows of flows in MySQL or SQLite."""

from lume_platform.registry.registry import Deployment, Flow, Model, ModelRegistry, Project

__all__ = ["Deployment", "Flow", "Model", "ModelRegistry", "Project"]
