"""The dashboard web app: server-rendered pages, a JSON API under ``/api``, and its own static assets."""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import plotly
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import StringConstraints

from lume_platform.dashboard.config import DashboardConfig
from lume_platform.dashboard.models import (
    ErrorDocument,
    FlowView,
    ModelsOverview,
    Overview,
    ResultDetail,
    ResultFields,
    ResultList,
    RunView,
    Series,
    ServiceHealth,
)
from lume_platform.dashboard.sources import HASH_PATTERN, STATE_TYPES, DashboardData, SourceUnavailable
from lume_platform.errors import QueryError

HERE = Path(__file__).resolve().parent
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
TOKEN_COOKIE = "lume_dashboard_token"
MAX_FILTER_LENGTH = 10_000

# Printable text only: names travel on to Prefect and the results store, which need not accept control bytes.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
FieldPath = Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$")]
StateType = Literal[STATE_TYPES]  # type: ignore[valid-type]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDocument, "description": "A filter or field outside the safe filter language."},
    422: {"model": ErrorDocument, "description": "A malformed parameter."},
    503: {"model": ErrorDocument, "description": "A service the answer needs does not answer."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorDocument, "description": "No such object."}}


class NotFoundError(LookupError):
    """The object a URL names does not exist."""


def parse_filter_text(text: str | None) -> dict[str, Any] | None:
    """The ``filter`` query parameter: a JSON object of the results store's safe filter language.

    Raises
    ------
    QueryError
        If it is not JSON or not an object (its content is checked by the store's own validator).
    """
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise QueryError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise QueryError(f"filter is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise QueryError(f"filter must be a JSON object, got {type(document).__name__}")
    return document


def as_utc(moment: datetime | None) -> datetime | None:
    """A query-string time as aware UTC; a time without zone is taken to be UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _describe_validation(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("query", "path", "body"))
        kind = item.get("loc", ("?",))[0]
        parts.append(f"{kind} parameter {where!r}: {item.get('msg')}")
    return "; ".join(parts) or "malformed request"


def _format_time(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def _format_bytes(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _api_router(data: DashboardData) -> APIRouter:
    api = APIRouter(prefix="/api", responses=ERRORS)

    @api.get("/health", response_model=list[ServiceHealth], summary="Health of every service")
    async def health() -> list[ServiceHealth]:
        return await data.health()

    @api.get("/overview", response_model=Overview, summary="Health, flows by phase, runs of the last 24 h")
    async def overview() -> Overview:
        return await data.overview()

    @api.get("/flows", response_model=list[FlowView], summary="Flows with phase, conditions and last runs")
    async def flows() -> list[FlowView]:
        return await data.flows()

    @api.get("/flows/{name}", response_model=FlowView, responses=NOT_FOUND, summary="One flow")
    async def flow(name: Annotated[Name, PathParam()]) -> FlowView:
        found = await data.flow(name)
        if found is None:
            raise NotFoundError(f"no flow named {name!r}")
        return found

    @api.get("/runs", response_model=list[RunView], summary="Recent flow runs, newest first")
    async def runs(
        flow: Annotated[Name | None, Query(description="Only runs of this flow name.")] = None,
        state: Annotated[StateType | None, Query(description="Only runs in this state type.")] = None,
        hours: Annotated[
            int | None, Query(ge=1, le=24 * 31, description="Only runs of the last hours.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[RunView]:
        since = None
        if hours is not None:
            since = datetime.now(UTC) - timedelta(hours=hours)
        return await data.runs(flow_name=flow, state_type=state, since=since, limit=limit)

    @api.get("/runs/{run_id}", response_model=RunView, responses=NOT_FOUND, summary="One flow run")
    async def run(run_id: UUID) -> RunView:
        found = await data.run(run_id)
        if found is None:
            raise NotFoundError(f"no flow run {run_id}")
        return found

    @api.get("/results", response_model=ResultList, summary="Stored results, newest first")
    async def results(
        flow: Annotated[Name | None, Query(description="Only results of this flow name.")] = None,
        since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601).")] = None,
        until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
        filter: Annotated[
            str | None, Query(description="A JSON filter in the results store's safe language.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> ResultList:
        return await data.results(
            flow=flow,
            since=as_utc(since),
            until=as_utc(until),
            filter_document=parse_filter_text(filter),
            limit=limit,
            skip=skip,
        )

    @api.get("/results/flows", response_model=list[str], summary="Flow names that have results")
    async def result_flows() -> list[str]:
        return await data.result_flows()

    @api.get("/results/fields", response_model=ResultFields, summary="Numeric fields of a flow's results")
    async def result_fields(flow: Annotated[Name, Query()]) -> ResultFields:
        return await data.result_fields(flow)

    @api.get("/results/series", response_model=Series, summary="A numeric output against time or an input")
    async def series(
        flow: Annotated[Name, Query()],
        y: Annotated[FieldPath, Query(description="inputs.<name> or outputs.<name>")],
        x: Annotated[FieldPath, Query(description="created, inputs.<name> or outputs.<name>")] = "created",
        since: datetime | None = None,
        until: datetime | None = None,
        filter: str | None = None,
    ) -> Series:
        return await data.series(
            flow=flow,
            x=x,
            y=y,
            since=as_utc(since),
            until=as_utc(until),
            filter_document=parse_filter_text(filter),
        )

    @api.get("/results/{unique_hash}", response_model=ResultDetail, responses=NOT_FOUND, summary="One result")
    async def result(unique_hash: Annotated[str, PathParam(pattern=HASH_PATTERN)]) -> ResultDetail:
        found = await data.result(unique_hash)
        if found is None:
            raise NotFoundError(f"no stored result has unique_hash {unique_hash}")
        return found

    @api.get("/models", response_model=ModelsOverview, summary="Projects, models and deployments")
    async def models() -> ModelsOverview:
        return await data.models()

    return api


def _page_router(data: DashboardData, templates: Jinja2Templates) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    def render(
        request: Request, name: str, context: Mapping[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"config": data.config, **context}, status_code=status_code
        )

    async def attempt(call: Callable[[], Awaitable[Any]]) -> tuple[Any, str | None]:
        # A page shows what it could read and says what it could not; it never fails as a whole.
        try:
            return await call(), None
        except SourceUnavailable as error:
            return None, str(error)

    @pages.get("/", response_class=HTMLResponse)
    async def overview_page(request: Request) -> HTMLResponse:
        return render(request, "overview.html", {"page": "overview", "overview": await data.overview()})

    @pages.get("/flows", response_class=HTMLResponse)
    async def flows_page(request: Request) -> HTMLResponse:
        flows, error = await attempt(data.flows)
        return render(request, "flows.html", {"page": "flows", "flows": flows or [], "error": error})

    @pages.get("/runs", response_class=HTMLResponse)
    async def runs_page(
        request: Request,
        flow: Annotated[Name | None, Query()] = None,
        state: Annotated[StateType | None, Query()] = None,
    ) -> HTMLResponse:
        runs, error = await attempt(lambda: data.runs(flow_name=flow, state_type=state, limit=200))
        return render(
            request,
            "runs.html",
            {
                "page": "runs",
                "runs": runs or [],
                "error": error,
                "flow": flow or "",
                "state": state or "",
                "states": STATE_TYPES,
            },
        )

    @pages.get("/results", response_class=HTMLResponse)
    async def results_page(
        request: Request,
        flow: Annotated[Name | None, Query()] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        filter: str | None = None,
        x: Annotated[FieldPath, Query()] = "created",
        y: Annotated[FieldPath | None, Query()] = None,
    ) -> HTMLResponse:
        flows, error = await attempt(data.result_flows)
        listing = None
        if error is None:
            listing, error = await attempt(
                lambda: data.results(
                    flow=flow,
                    since=as_utc(since),
                    until=as_utc(until),
                    filter_document=parse_filter_text(filter),
                    limit=100,
                    skip=0,
                )
            )
        return render(
            request,
            "results.html",
            {
                "page": "results",
                "flows": flows or [],
                "listing": listing,
                "error": error,
                "flow": flow or "",
                "since": since.isoformat() if since else "",
                "until": until.isoformat() if until else "",
                "filter": filter or "",
                "x": x,
                "y": y or "",
            },
        )

    @pages.get("/results/{unique_hash}", response_class=HTMLResponse)
    async def result_page(
        request: Request, unique_hash: Annotated[str, PathParam(pattern=HASH_PATTERN)]
    ) -> HTMLResponse:
        result, error = await attempt(lambda: data.result(unique_hash))
        if result is None and error is None:
            raise NotFoundError(f"no stored result has unique_hash {unique_hash}")
        pretty = json.dumps(jsonable_encoder(result), indent=2) if result is not None else ""
        return render(
            request, "result.html", {"page": "results", "result": result, "pretty": pretty, "error": error}
        )

    @pages.get("/models", response_class=HTMLResponse)
    async def models_page(request: Request) -> HTMLResponse:
        models, error = await attempt(data.models)
        return render(request, "models.html", {"page": "models", "models": models, "error": error})

    return pages


def create_app(config: DashboardConfig | None = None, data: DashboardData | None = None) -> FastAPI:
    """The dashboard app; ``config`` defaults to the environment (see DashboardConfig.from_environ)."""
    config = config or DashboardConfig.from_environ()
    data = data or DashboardData(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        data.close()

    app = FastAPI(
        title="LUME dashboard",
        version="1",
        description="Read-only view of the LUME platform: service health, flows, runs, results and models.",
        lifespan=lifespan,
        # Swagger's page loads its scripts from a CDN; the OpenAPI document itself is enough.
        docs_url=None,
        redoc_url=None,
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["time"] = _format_time
    templates.env.filters["duration"] = _format_duration
    templates.env.filters["bytes"] = _format_bytes

    def error_response(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api") or request.url.path == "/openapi.json":
            return JSONResponse({"detail": message}, status_code=status)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"config": config, "page": "", "status": status, "message": message},
            status_code=status,
        )

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, error: QueryError) -> Response:
        return error_response(request, 400, str(error))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, error: RequestValidationError) -> Response:
        return error_response(request, 422, _describe_validation(error))

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> Response:
        return error_response(request, 404, str(error))

    @app.exception_handler(SourceUnavailable)
    async def unavailable(request: Request, error: SourceUnavailable) -> Response:
        return error_response(request, 503, str(error))

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        token = config.access_token
        if token is None or request.url.path in ("/healthz", "/login"):
            return await call_next(request)
        offered = request.cookies.get(TOKEN_COOKIE, "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            offered = header[7:].strip()
        if hmac.compare_digest(offered.encode(), token.encode()):
            return await call_next(request)
        return error_response(request, 401, "this dashboard needs its access token: open /login?token=…")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", include_in_schema=False)
    async def login(token: str = "") -> Response:
        if config.access_token is None or not hmac.compare_digest(
            token.encode(), config.access_token.encode()
        ):
            return JSONResponse({"detail": "wrong or missing token"}, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(_api_router(data))
    app.include_router(_page_router(data, templates))
    return app
