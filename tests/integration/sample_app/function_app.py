"""A small app that exercises what the local host must honour: route templates and
constraints, methods, sync and async functions, `context`, an unhandled exception,
a timer, and a Cosmos DB trigger with a retry policy."""

import json
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# What the timer and trigger functions saw, for the tests to read.
TIMER_RUNS: list[dict[str, object]] = []
FEED_BATCHES: list[list[dict[str, object]]] = []
FAIL_DOCUMENTS_WITH = "poison"
FAILED_ATTEMPTS: list[int] = []


def _json(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.route(route="items/{id:guid}", methods=["GET"])
async def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "guid", "id": req.route_params["id"], "q": req.params.get("q")})


@app.route(route="items/{id:int}", methods=["GET"])
def get_numbered_item(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json(
        {
            "route": "int",
            "id": req.route_params["id"],
            "function": context.function_name,
            "invocationId": context.invocation_id,
            "thread": threading.current_thread().name,
        }
    )


@app.route(route="items/special", methods=["GET"])
def get_special_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "literal"})


@app.route(route="items", methods=["POST"])
async def create_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"received": req.get_json(), "contentType": req.headers.get("content-type")}, status=201)


@app.route(route="files/{*path}", methods=["GET"])
def get_file(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"path": req.route_params.get("path")})


@app.route(route="pages/{page?}", methods=["GET"])
def get_page(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"page": req.route_params.get("page")})


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the sample function failed on purpose")


@app.timer_trigger(schedule="%SAMPLE_TIMER_SCHEDULE%", arg_name="timer", run_on_startup=False)
def every_second(timer: func.TimerRequest, context: func.Context) -> None:
    TIMER_RUNS.append({"pastDue": timer.past_due, "function": context.function_name})


@app.cosmos_db_trigger(
    arg_name="documents",
    connection="CosmosDB",
    database_name="%SAMPLE_DATABASE%",
    container_name="watched",
    lease_container_name="leases",
    lease_container_prefix="sample-",
    feed_poll_delay=100,
    start_from_beginning=False,  # type: ignore[arg-type]  # the SDK's hint says time; the host reads a bool
)
@app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:00.100")
async def on_watched_change(documents: func.DocumentList) -> None:
    items = [json.loads(document.to_json()) for document in documents]
    if any(item.get("kind") == FAIL_DOCUMENTS_WITH for item in items):
        FAILED_ATTEMPTS.append(len(items))
        raise RuntimeError("a poison document")
    FEED_BATCHES.append(items)
