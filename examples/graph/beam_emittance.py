"""Example workflow graph: a particle beam's emittances and sizes, plain functions run as a Prefect flow.

The module-level ``graph_flow`` is what the Flow manifest ``graph-flow.yaml`` points at: every flow run
re-imports this module, rebuilds the graph and reads unchanged nodes from the graph storage (on the
mounted filesystem when one is configured, so all runs of a cluster share it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lume_platform.graph import GraphStorage, Workflow, graph_input, node
from lume_platform.tasks import task_result_dir


@node
def make_beam(n_particles: int, seed: int, sigma_x: float, sigma_y: float) -> dict[str, np.ndarray]:
    """A Gaussian beam: positions (m) and angles (rad) in both transverse planes."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(0.0, sigma_x, n_particles),
        "px": rng.normal(0.0, sigma_x * 1e-1, n_particles),
        "y": rng.normal(0.0, sigma_y, n_particles),
        "py": rng.normal(0.0, sigma_y * 1e-1, n_particles),
    }


@node
def drift(beam: dict[str, np.ndarray], length: float) -> dict[str, np.ndarray]:
    """The beam after a field-free drift of ``length`` metres."""
    return {**beam, "x": beam["x"] + length * beam["px"], "y": beam["y"] + length * beam["py"]}


@node
def emittance(position: np.ndarray, angle: np.ndarray) -> float:
    """RMS emittance of one plane: sqrt(det(covariance)) in m·rad."""
    covariance = np.cov(position, angle)
    return float(math.sqrt(max(float(np.linalg.det(covariance)), 0.0)))


@node
def beam_sizes(beam: dict[str, np.ndarray]) -> tuple[float, float]:
    """RMS sizes (m) in x and y."""
    return float(np.std(beam["x"])), float(np.std(beam["y"]))


@node
def summarize(emittance_x: float, emittance_y: float, size_x: float, size_y: float) -> dict[str, float]:
    """The figures a scientist looks at, in convenient units (nm·rad, mm)."""
    return {
        "emittance_x_nm": emittance_x * 1e9,
        "emittance_y_nm": emittance_y * 1e9,
        "size_x_mm": size_x * 1e3,
        "size_y_mm": size_y * 1e3,
    }


def build_workflow() -> Workflow:
    """The graph: beam → drift → (emittance_x ∥ emittance_y ∥ sizes) → summary."""
    n_particles = graph_input("n_particles", 10_000, annotation=int, description="macro-particles")
    seed = graph_input("seed", 1, annotation=int, description="random seed of the beam")
    sigma_x = graph_input("sigma_x", 1e-3, annotation=float, description="initial RMS size in x (m)")
    sigma_y = graph_input("sigma_y", 2e-3, annotation=float, description="initial RMS size in y (m)")
    length = graph_input("length", 2.0, annotation=float, description="drift length (m)")

    beam = make_beam(n_particles, seed, sigma_x, sigma_y).set_name("beam")
    drifted = drift(beam, length).set_name("drifted")
    emittance_x = emittance(drifted["x"], drifted["px"]).set_name("emittance_x")
    emittance_y = emittance(drifted["y"], drifted["py"]).set_name("emittance_y")
    sizes = beam_sizes(drifted).set_name("sizes")
    summary = summarize(emittance_x, emittance_y, sizes[0], sizes[1]).set_name("summary")

    workflow = Workflow(summary, name="beam-emittance", description="Emittances and sizes of a drifted beam.")
    # Task options per node, by regex (the same as workflow.query(...).set_task_args(...) in code).
    return workflow.apply_task_rules(Path(__file__).with_name("task-rules.yaml"))


workflow = build_workflow().set_storage(GraphStorage.from_services())
# The summary is persisted as JSON where `lume run`, flows of flows and tests can read it (as @lume_flow).
workflow.set_flow_options(
    {"persist_result": True, "result_serializer": "json", "result_storage": task_result_dir()}
)
graph_flow = workflow.generate_flow()


if __name__ == "__main__":
    print(workflow.run())
