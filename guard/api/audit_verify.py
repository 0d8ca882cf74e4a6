"""``GET /v1/audit/verify``: walk every audit chain and report the first broken link of each (as ``guard audit
verify`` does, without a checkpoint). Chains span tenants, so only a reviewer key without a tenant may ask."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException

from guard.api.auth import principal_of, require_scope
from guard.api.errors import ERROR_RESPONSES
from guard.audit.verify import verify_audit

__all__ = ["verify_audit_log"]


@get(
    "/audit/verify",
    operation_id="verifyAuditLog",
    tags=["audit"],
    guards=[require_scope("audit:read")],
    responses=ERROR_RESPONSES,
)
async def verify_audit_log(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """Every chain's rows, head and first broken row, and the admin-events chain; ``ok`` is false on any break."""
    if principal_of(request).tenant is not None:
        raise PermissionDeniedException("verifying the audit log needs a key without a tenant")
    report = await verify_audit(state.db_engine)
    return report.as_dict()
