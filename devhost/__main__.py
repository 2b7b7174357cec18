"""`python -m devhost`: run function_app.py locally on http://localhost:7071/api until Ctrl+C.

Without --with-azurite, storage comes from the AzureWebJobsStorage setting (your own Azurite or
account). With it, a private Azurite keeps its data in .azurite/ and is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from devhost.azurite import Azurite, start_azurite
from devhost.host import FUNCTION_KEY_SETTING, DevHost
from devhost.tls import CERT_SETTING, CertificateError, HttpsCertificate

logger = logging.getLogger("devhost")

AZURITE_PORTS = (10000, 10001, 10002)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devhost", description="Run the function app locally (no Core Tools)."
    )
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the app")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="holds host.json")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port (0: any free port)")
    parser.add_argument(
        "--with-azurite",
        action="store_true",
        help=f"start Azurite on ports {AZURITE_PORTS} with data in <project>/.azurite",
    )
    parser.add_argument(
        "--key",
        type=_function_key,
        help="require this function key (default: DEVHOST_FUNCTION_KEY; unset: the API is open)",
    )
    parser.add_argument(
        "--cert",
        type=Path,
        help=f"serve HTTPS with this certificate: .pfx/.p12, or PEM (default: {CERT_SETTING})",
    )
    parser.add_argument("--cert-key", type=Path, help="the PEM private key of a PEM --cert")
    parser.add_argument("--password", help="the password of the .pfx (or of the PEM key)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if (args.cert_key or args.password) and not args.cert:
        parser.error("--cert-key and --password go with --cert")
    return args


def _function_key(value: str) -> str:
    """`--key ""` is refused (exit 2) rather than claiming a protection it would not give."""
    if not value.strip():
        raise argparse.ArgumentTypeError(
            "an empty key would leave the API open while saying it is protected; give the key "
            f"clients must send, or leave --key out (the API is then open unless "
            f"{FUNCTION_KEY_SETTING} is set)"
        )
    return value


async def serve(host: DevHost) -> None:
    """Run until SIGINT/SIGTERM, then stop gracefully."""
    await host.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = host.api_url.replace("127.0.0.1", "localhost")
    logger.info("API: %s  (press Ctrl+C to stop)", shown)
    try:
        await stop.wait()
    finally:
        logger.info("Stopping...")
        await host.stop()
        # Leaving the loop cancels the ASGI lifespan task AsgiFunctionApp started on the first
        # request, which it reports as an error. The real host never runs ASGI shutdown either.
        logging.getLogger("azure.functions.AsgiMiddleware").addFilter(_no_shutdown_failure)


def _no_shutdown_failure(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Failed ASGI shutdown")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("azure").setLevel(logging.WARNING)
    project_dir = args.project_dir.resolve()
    overrides = {}
    azurite: Azurite | None = None
    if args.with_azurite:
        try:
            azurite = start_azurite(location=project_dir / ".azurite", ports=AZURITE_PORTS)
        except RuntimeError as error:
            logger.error(
                "Could not start Azurite (%s). If your own Azurite already uses ports %s, "
                "run without --with-azurite.",
                error,
                AZURITE_PORTS,
            )
            return 1
        overrides["AzureWebJobsStorage"] = azurite.connection_string
        logger.info(
            "Azurite started (pid %d, data in %s)", azurite.process.pid, project_dir / ".azurite"
        )
    host = DevHost(
        args.app,
        project_dir=project_dir,
        settings_overrides=overrides,
        host=args.host,
        port=args.port,
        key=args.key,
        https=HttpsCertificate(args.cert, args.cert_key, args.password) if args.cert else None,
    )
    try:
        asyncio.run(serve(host))
    except KeyboardInterrupt:
        return 130
    except CertificateError as error:
        logger.error("Cannot serve HTTPS: %s", error)
        return 2
    except Exception:
        logger.exception("devhost stopped on an error")
        return 1
    finally:
        if azurite is not None:
            azurite.stop()
            logger.info("Azurite stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
