"""`python -m lume_operator`: run the LUME operator (settings from LUME_OPERATOR_* and PREFECT_API_URL)."""

from __future__ import annotations

import logging
import os
import sys

# kopf imports both Kubernetes client libraries when they are installed (prefect-kubernetes brings them),
# only to recognise their model objects, which this operator never hands it: about 45 MB of memory for
# nothing. A None entry makes those imports fail, as if the libraries were absent.
for _unused in ("kubernetes", "kubernetes_asyncio"):
    sys.modules.setdefault(_unused, None)  # type: ignore[assignment]

import kopf  # noqa: E402


def main() -> int:
    """Run kopf with the operator's own registry until stopped."""
    if not os.environ.get("PREFECT_API_URL"):
        # Unset, Prefect would quietly start a throwaway in-process server and register flows there.
        print("error: PREFECT_API_URL must point at the platform's Prefect API", file=sys.stderr)
        return 2
    # No silent retries inside Prefect's client (2, 4, 8… s, up to a minute per request): kopf retries
    # instead, within a second or two when Prefect is only busy, and the status says why meanwhile.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "0")
    # Prefect configures logging when its client is first imported: let that happen now, then hand the
    # root logger to kopf alone (otherwise every line is printed twice, in two formats).
    from prefect import get_client  # noqa: F401

    logging.getLogger().handlers.clear()

    from lume_operator.handlers import SETTINGS, registry

    # INFO (one line per handled object); LUME_OPERATOR_DEBUG=1 for everything.
    kopf.configure(debug=bool(os.environ.get("LUME_OPERATOR_DEBUG")))
    liveness = f"http://0.0.0.0:{SETTINGS.liveness_port}/healthz" if SETTINGS.liveness_port else None
    kopf.run(
        registry=registry,
        # One replica by design (a Recreate Deployment): no peering objects, no extra RBAC for them.
        standalone=True,
        clusterwide=not SETTINGS.namespaces,
        namespaces=SETTINGS.namespaces,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
