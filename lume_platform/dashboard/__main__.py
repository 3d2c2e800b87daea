"""`python -m lume_platform.dashboard`: serve the dashboard (loopback by default) with uvicorn."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lume_platform.dashboard.config import DEFAULT_HOST, DEFAULT_PORT, DashboardConfig
from lume_platform.errors import ConfigurationError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the address, read the environment, serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m lume_platform.dashboard", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        config = DashboardConfig.from_environ()
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import uvicorn

    from lume_platform.dashboard.app import create_app

    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
