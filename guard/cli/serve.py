"""``guard serve``: run the gateway under uvicorn, after the policies and models have loaded."""

from __future__ import annotations

import os
import signal
from types import FrameType

import click

from guard.cli.common import fail
from guard.cli.common import settings as load_settings
from guard.logs import configure_logging
from guard.settings import Profile

__all__ = ["serve"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")), show_default="$PORT or 8000")
@click.option("--profile", type=click.Choice([p.value for p in Profile]), help="Overrides GUARD_PROFILE.")
def serve(host: str, port: int, profile: str | None) -> None:
    """Run the gateway (production profile unless GUARD_PROFILE=dev)."""
    settings = load_settings(profile)
    log_config = configure_logging(settings.observability.log_format)
    if settings.observability.log_format == "json":  # model-loading progress bars are not JSON lines
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

    import uvicorn

    from guard.api.connections import protocol_for
    from guard.app import create_app
    from guard.errors import GuardError
    from guard.models import load_models
    from guard.policy import PolicyError, PolicyRegistry

    try:
        PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default)
        models = load_models(settings)
        app = create_app(settings, models=models)
    except PolicyError as exc:
        fail(f"invalid policy: {exc}")
    except (GuardError, FileNotFoundError) as exc:
        fail(f"cannot start ({settings.profile.value} profile): {exc}")
    # SIGTERM: uvicorn stops accepting, lets in-flight requests finish (bounded), runs the app shutdown, then re-raises
    # the signal under the handler that was there before. Ignoring it then makes a completed drain exit 0.
    signal.signal(signal.SIGTERM, _drained)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=log_config,
        log_level="info",
        timeout_graceful_shutdown=settings.api.shutdown_timeout_s,
        # header, body and send timeouts and the bound on open connections (README, Connection limits)
        http=protocol_for(settings.connections),
        timeout_keep_alive=settings.connections.keep_alive_timeout_s,
    )


def _drained(_signum: int, _frame: FrameType | None) -> None:
    """The SIGTERM uvicorn re-raises after its graceful shutdown: nothing left to do."""
