"""The reviewer web page at ``/audit`` (HTML, vanilla JS and CSS assets, session-cookie sign-in)."""

from __future__ import annotations

from guard.api.web.page import audit_page_router

__all__ = ["audit_page_router"]
