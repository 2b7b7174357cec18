"""The Functions app: registers the HTTP API, the dispatch timer, the dispatch-slice consumer and
the executor, nothing else.

The HTTP API is one ASGI app behind two kinds of function: a catch-all that needs a function
key, and anonymous ones for the IoT Hub paths (/api/devices, /api/twins, /api/jobs/v2), where
IoT Hub's shared access signature decides, and the dashboard's page (/api/dashboard), which
holds no secret and asks the person for the key (shared/api/functions.py).

All behaviour lives in the `shared` package. The app settings are checked as the host loads
this module: a bad one stops the app here, with a `ConfigError` naming it.
"""

from __future__ import annotations

import azure.functions as func

from shared import triggers
from shared.api.app import create_api
from shared.api.functions import CATCH_ALL_FUNCTION, serve_dashboard_page, serve_iot_hub_paths
from shared.config import Settings
from shared.kinds.code import register_handler
from shared.samples.feed_poll import feed_poll

Settings.from_env()  # the runtime parses them again when first used, in its own event loop

# Action kinds beyond the built-in ones (Http, Https, StorageQueue, ServiceBusQueue,
# ServiceBusTopic, Code) are added here, before the API is built, one line each
# (docs/ARCHITECTURE.md "How to add an action kind"):
#     from shared.runtime import register_kind
#     register_kind(MY_KIND)

# Code-job handlers, by name (README "Code jobs"); your own go here too, e.g. with
#     from shared.kinds.code import handler
#     @handler("nightly-report")
#     async def nightly_report(ctx: CodeContext) -> dict: ...
register_handler("feed-poll", feed_poll)

app = func.AsgiFunctionApp(
    app=create_api(), http_auth_level=func.AuthLevel.FUNCTION, function_name=CATCH_ALL_FUNCTION
)
serve_iot_hub_paths(app)
serve_dashboard_page(app)


@app.timer_trigger(schedule="%DISPATCH_SCHEDULE%", arg_name="timer", use_monitor=True)
async def dispatch_due_jobs(timer: func.TimerRequest) -> None:
    await triggers.dispatch_due_jobs(timer)


@app.queue_trigger(
    arg_name="message",
    queue_name="%SCHEDULER_DISPATCH_QUEUE%",
    connection="AzureWebJobsStorage",
)
async def dispatch_slice(message: func.QueueMessage) -> None:
    await triggers.dispatch_slice(message)


@app.queue_trigger(
    arg_name="message",
    queue_name="%SCHEDULER_EXECUTION_QUEUE%",
    connection="AzureWebJobsStorage",
)
async def execute_attempt(message: func.QueueMessage) -> None:
    await triggers.execute_attempt(message)


@app.queue_trigger(
    arg_name="message",
    queue_name="%SCHEDULER_DEVICE_WORK_QUEUE%",
    connection="AzureWebJobsStorage",
)
async def run_device_work(message: func.QueueMessage) -> None:
    await triggers.run_device_work(message)
