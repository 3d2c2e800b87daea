"""The LUME dashboard: a read-only web app over the platform's services, with a JSON API under /api."""

from lume_platform.dashboard.app import create_app
from lume_platform.dashboard.config import DashboardConfig
from lume_platform.dashboard.sources import DashboardData

__all__ = ["DashboardConfig", "DashboardData", "create_app"]
