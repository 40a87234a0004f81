"""The HTTP API at /api/v1/: the NinjaAPI instance with the plumbing of config/api.py
(auth, error format) and every app's router. Only config/urls.py imports this module."""

from accounts.api import router as accounts_router
from audiences.api import router as audiences_router
from audiences.import_api import router as audience_imports_router
from campaigns.api import router as campaigns_router
from campaigns.flows.api import router as flows_router
from channels.api import router as channels_router
from channels.list_api import router as channel_lists_router
from config.api import (
    ApiKeyAuth,
    EvaluationKeyAuth,
    HeraldAPI,
    StorableTextParser,
    install_exception_handlers,
)
from people.api import router as people_router
from segments.api import router as segments_router
from segments.ofrep import router as ofrep_router
from segments.rules.openapi import COMPONENTS as RULE_TREE_COMPONENTS

api = HeraldAPI(
    title="Herald API",
    version="1",
    description="Audiences, segments and campaigns. Contract: shared/API.md.",
    urls_namespace="api",
    auth=ApiKeyAuth(),
    parser=StorableTextParser(),
    components=RULE_TREE_COMPONENTS,
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_exception_handlers(api)

api.add_router("/", accounts_router)
api.add_router("/", people_router)
# Audience imports before audiences: /audiences/imports must never be read as
# /audiences/{id}.
api.add_router("/", audience_imports_router)
api.add_router("/", audiences_router)
api.add_router("/", segments_router)
api.add_router("/", channels_router)
api.add_router("/", channel_lists_router)
api.add_router("/", campaigns_router)
api.add_router("/", flows_router)

# OpenFeature Remote Evaluation Protocol at /ofrep/v1/ (segments.ofrep): its own paths, the
# same keys (a read-only one is enough: an evaluation only reads).
ofrep_api = HeraldAPI(
    title="Herald OFREP",
    version="1",
    description="Feature flags on Herald segments: flag key segment-<id>.",
    urls_namespace="ofrep",
    auth=EvaluationKeyAuth(),
    docs_url=None,
    openapi_url="/openapi.json",
)
install_exception_handlers(ofrep_api)
ofrep_api.add_router("/", ofrep_router)
