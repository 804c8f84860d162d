"""The HTTP layer every service shares: app factory, the spec's error shape, body size limit."""

from libs.platform.http.app import create_app
from libs.platform.http.errors import ApiError

__all__ = ["ApiError", "create_app"]
