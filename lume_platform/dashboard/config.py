"""What the dashboard reads and where: Prefect, the Kubernetes namespace, the operator, an access token."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lume_platform.errors import ConfigurationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class DashboardConfig:
    """The dashboard's own settings (the services themselves come from the ``LUME_*`` environment).

    ``namespace`` set means cluster mode: Flows are the ``Flow`` resources of that namespace, read through
    the Kubernetes API. Unset means local mode: flows are the deployments of the Prefect server.
    """

    prefect_api_url: str
    prefect_ui_url: str
    namespace: str | None = None
    operator_health_url: str | None = None
    access_token: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def cluster_mode(self) -> bool:
        """Whether Flows come from the Kubernetes API."""
        return self.namespace is not None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DashboardConfig:
        """Read ``PREFECT_API_URL`` and ``LUME_DASHBOARD_*``; one error names every variable at fault.

        Raises
        ------
        ConfigurationError
            If ``PREFECT_API_URL`` is missing or a variable is malformed.
        """
        env = os.environ if environ is None else environ
        problems: list[tuple[str, str]] = []
        api_url = env.get("PREFECT_API_URL", "").rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            problems.append(("PREFECT_API_URL", f"must be an http(s) URL, got {api_url!r}"))
        # The UI link must be what the admin's browser reaches, which in a cluster is not the API's
        # in-cluster address; the API URL without /api is right for local mode.
        ui_url = env.get("LUME_DASHBOARD_PREFECT_UI_URL") or api_url.removesuffix("/api")
        timeout_text = env.get("LUME_DASHBOARD_TIMEOUT_SECONDS", str(DEFAULT_TIMEOUT_SECONDS))
        try:
            timeout = float(timeout_text)
            if not 0 < timeout <= 120:
                raise ValueError
        except ValueError:
            problems.append(
                ("LUME_DASHBOARD_TIMEOUT_SECONDS", f"must be seconds in (0, 120], got {timeout_text!r}")
            )
            timeout = DEFAULT_TIMEOUT_SECONDS
        if problems:
            lines = "\n".join(f"  {name}: {what}" for name, what in problems)
            raise ConfigurationError(
                f"the dashboard environment is not usable:\n{lines}", [n for n, _ in problems]
            )
        return cls(
            prefect_api_url=api_url,
            prefect_ui_url=ui_url.rstrip("/"),
            namespace=env.get("LUME_DASHBOARD_NAMESPACE") or None,
            operator_health_url=env.get("LUME_DASHBOARD_OPERATOR_URL") or None,
            access_token=env.get("LUME_DASHBOARD_TOKEN") or None,
            timeout_seconds=timeout,
        )
