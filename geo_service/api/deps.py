"""Typed dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Engine

from geo_service.api.locators import LocatorCache
from geo_service.api.routing_cache import RoutingCache
from geo_service.auth import KeyStore, Principal
from geo_service.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_locators(request: Request) -> LocatorCache:
    cache: LocatorCache = request.app.state.locators
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
LocatorsDep = Annotated[LocatorCache, Depends(get_locators)]


def get_routing(request: Request) -> RoutingCache:
    cache: RoutingCache = request.app.state.routing
    return cache


def get_principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` (401 when missing or unknown)."""
    keys: KeyStore = request.app.state.keys
    return keys.authenticate(authorization)


RoutingDep = Annotated[RoutingCache, Depends(get_routing)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
