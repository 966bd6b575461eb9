"""``massalia serve``: run the HTTP API (uvicorn) over a ``MASSALIA_HOME``."""

from __future__ import annotations

from typing import Annotated

import typer

from massalia.cli.common import HomeOption

serve_app = typer.Typer(help="Serve the HTTP API (OpenAPI at /api/v1/openapi.json).")


@serve_app.callback(invoke_without_command=True)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    home_dir: HomeOption = None,
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-* from --forwarded-allow-ips (behind a reverse proxy).")
    ] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="Proxy addresses whose X-Forwarded-* headers are trusted.")
    ] = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="Server log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve the HTTP API with uvicorn (one process; put TLS in front, then set MASSALIA_API_HTTPS=true)."""
    import uvicorn

    from massalia.api import create_app
    from massalia.config import home

    app = create_app(home(home_dir))
    typer.echo(f"Massalia API on http://{host}:{port}/api/v1 (OpenAPI: /api/v1/openapi.json)")
    uvicorn.run(
        app, host=host, port=port, proxy_headers=proxy_headers, forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level, server_header=False,
    )  # fmt: skip
